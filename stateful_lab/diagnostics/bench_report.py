"""results/bench.md: the text of `make bench`'s figures."""

from __future__ import annotations

import os

from stateful_lab.diagnostics.bench import EPOCHS, GROUP, REPEATS
from stateful_lab.diagnostics.shell import CONFIG
from stateful_lab.provenance import cpu_id, cpu_model


def report(plain, tuned, loop, loop_with_evaluation, groups, side, flops, best, achieved, matmul, nominal) -> str:
    """The comparison with Keras, the growth table and the floating-point rate."""
    per_run = groups[GROUP] / GROUP
    lines = [
        "# Benchmark: Keras fit, plain and tuned, against the lab's single and grouped runs",
        "",
        "The blog's stateful first_timestep setup: 1024 samples, batch 4, 5 steps, 3 units, "
        f"{EPOCHS} epochs. Median ms of training per epoch over {REPEATS} trainings after a warm-up, "
        "all in one process (`make bench`).",
        "",
        "| measurement | ms per epoch | per run | tuned fit / this |",
        "|---|---|---|---|",
        f"| plain Keras: reset + fit(epochs=1, shuffle=False) per epoch | {plain:.1f} | {plain:.1f} | "
        f"{tuned / plain:.2f}x |",
        "| Keras tuned: jit_compile=True, steps_per_execution=256 (every batch of an epoch in one call) | "
        f"{tuned:.1f} | {tuned:.1f} | 1x |",
        f"| lab `loop` trainer, one run per program | {loop:.2f} | {loop:.2f} | {tuned / loop:.1f}x |",
        f"| lab grouped runs, {GROUP} in one program | {groups[GROUP]:.2f} | {per_run:.3f} | "
        f"**{tuned / per_run:.0f}x** |",
        "",
        f"Grouped, per run: {plain / per_run:.0f}x the plain fit loop. The lab's single-run loop with its "
        f"per-epoch test evaluation: {loop_with_evaluation:.2f} ms/epoch.",
        "",
        "Per-run cost as the group grows, as one program, and cut into one shard per core trained side by "
        "side, each its own program in a thread of its own (`run` does so where each shard has enough work, "
        "marked *):",
        "",
        "| runs in the group | one program: ms per epoch | ms per run | tuned fit / this | side by side: ms per "
        "epoch | ms per run | tuned fit / this |",
        "|---|---|---|---|---|---|---|",
    ]
    for runs, ms in groups.items():
        shards = side.get(runs)
        beside = (
            f"{shards['ms']:.2f}{' *' if shards['run_shards'] else ''} | {shards['ms'] / runs:.3f} | "
            f"{tuned * runs / shards['ms']:.0f}x"
            if shards
            else "- | - | -"
        )
        lines.append(f"| {runs} | {ms:.2f} | {ms / runs:.3f} | {tuned * runs / ms:.0f}x | {beside} |")
    lines += [
        "",
        f"Floating-point work: {flops / 1e6:.2f} million operations per run and epoch (the matrix products, "
        f"forward and backward; a floor). At {best} runs the group does {achieved:.2f} GFLOP/s: "
        f"{100 * achieved / matmul:.1f}% of what one large float32 matrix product reaches on these cores "
        f"({matmul:.1f} GFLOP/s, the best of 5 measurements)" + _against_nominal(achieved, matmul, nominal),
        "",
    ]
    return "\n".join(lines)


def report_tail(memory, one, ten) -> str:
    """A 100-run group's memory, the CLI's own times and the machine."""
    lines = [
        "",
        "Memory of a 100-run group, in a fresh process that compiles its program: peak "
        f"{memory['peak_mb']:.0f} MB, of which {memory['before_mb']:.0f} MB before the group (Python, TensorFlow).",
        "",
        f"`stateful-lab run {CONFIG} --seeds 1` (2 variants, import and compile included): {one:.1f} s; "
        f"`--seeds 10`: {ten:.1f} s ({ten / one:.2f}x one seed).",
        "",
        f"Machine: {cpu_model()} ({cpu_id()}), {os.cpu_count()} cores.",
        "",
    ]
    return "\n".join(lines)


def scale_report(tuned, groups, side, busy, memory_1000, memory_side, parts, achieved_1000, matmul, sweep) -> str:
    """The bench's figures at scale: 1,000 runs in a group, where an epoch goes,
    and a 10,000-run sweep from the shell."""
    one = groups[1000] / 1000
    lines = ["", "## At scale", ""]
    if 1000 in side:
        shards = side[1000]
        per_run = shards["ms"] / 1000
        lines += [
            f"A group of 1,000 runs as `run` trains it, {shards['shards']} shards side by side: {shards['ms']:.2f} "
            f"ms per epoch, {per_run:.4f} ms per run: **{tuned / per_run:.0f}x** below tuned Keras fit "
            f"({tuned:.1f} ms) in the same bench run, with {shards['cores']:.2f} cores busy; peak memory "
            f"{memory_side['peak_mb']:.0f} MB in a fresh process that compiles its programs "
            f"({memory_side['before_mb']:.0f} MB before the group). As one program: {groups[1000]:.2f} ms per "
            f"epoch, {one:.4f} ms per run ({tuned / one:.0f}x), "
            f"with {busy:.2f} cores busy, peak memory {memory_1000['peak_mb']:.0f} MB "
            f"({memory_1000['before_mb']:.0f} MB before)."
            f" {achieved_1000:.2f} GFLOP/s side by side: {100 * achieved_1000 / matmul:.1f}% of the measured "
            f"matrix-product rate ({matmul:.1f} GFLOP/s).",
        ]
    else:
        lines += [
            f"A group of 1,000 runs: {groups[1000]:.2f} ms per epoch, {one:.4f} ms per run: "
            f"**{tuned / one:.0f}x** below tuned Keras fit ({tuned:.1f} ms) in the same bench run; peak memory "
            f"{memory_1000['peak_mb']:.0f} MB in a fresh process that compiles its program "
            f"({memory_1000['before_mb']:.0f} MB before the group). {achieved_1000:.2f} GFLOP/s: "
            f"{100 * achieved_1000 / matmul:.1f}% of the measured "
            f"matrix-product rate ({matmul:.1f} GFLOP/s).",
        ]
    lines += [
        "",
        "Where one program's epoch goes (measured: a least-squares line through the growth table, "
        f"{parts['fixed_ms']:.2f} ms fixed per epoch + {parts['per_run_ms']:.4f} ms per run; the evaluation "
        "timed as the difference between an epoch with the lab's evaluation and one without):",
        "",
        "| runs | epoch with evaluation, ms | evaluation | of training: fixed (loop steps, dispatch) | "
        "of training: per-run arithmetic |",
        "|---|---|---|---|---|",
    ]
    lines += [
        f"| {size} | {shares['epoch_with_evaluation_ms']:.2f} | {shares['evaluation_share']:.0%} | "
        f"{shares['fixed_share']:.0%} | {shares['per_run_share']:.0%} |"
        for size, shares in parts["at"].items()
    ]
    phases = ", ".join(f"{name.replace('_', ' ')} {seconds:.1f} s" for name, seconds in sweep["phases"].items())
    lines += [
        "",
        f"A sweep of {2 * sweep['seeds']:,} runs from the shell (`stateful-lab run {CONFIG} --seeds {sweep['seeds']}`, "
        f"import and compilation or loading from the compilation cache included): **{sweep['seconds']:.1f} s**, "
        f"peak memory {sweep['peak_mb']:.0f} MB; "
        f"phases from its meta.json: {phases}; the rest (TensorFlow's import, writing the result files) "
        f"{sweep['seconds'] - sum(sweep['phases'].values()):.1f} s.",
        "",
    ]
    return "\n".join(lines)


def _against_nominal(achieved: float, matmul: float, nominal: tuple[float, int] | None) -> str:
    """The end of the floating-point sentence: the share of the nominal peak, or,
    where the measured product beats that peak, why it is no ceiling (a virtual
    machine's /proc/cpuinfo gives its base clock; its cores may run faster)."""
    if not nominal:
        return "."
    peak, per_cycle = nominal
    cores = os.cpu_count() or 1
    mhz = peak * 1e3 / (cores * per_cycle)
    if matmul <= peak:
        return (
            f" and {100 * achieved / peak:.2f}% of their nominal peak ({peak:.0f} GFLOP/s: "
            f"{cores} cores x {mhz:.0f} MHz x {per_cycle} float32 operations per cycle)."
        )
    return (
        f". Their nominal peak at the clock /proc/cpuinfo gives ({cores} cores x {mhz:.0f} MHz x {per_cycle} "
        f"float32 operations per cycle = {peak:.0f} GFLOP/s) is below the measured product, so the cores ran "
        f"faster than that clock (at least {matmul * 1e3 / (cores * per_cycle):.0f} MHz); the measured "
        "product is the ceiling here."
    )
