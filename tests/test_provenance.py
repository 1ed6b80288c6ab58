"""What meta.json and the bench say of the CPU: enough to tell apart two CPUs of
one model name, whose compiled programs round differently."""

import os
import subprocess
import sys

from stateful_lab.diagnostics.bench import nominal_peak_gflops
from stateful_lab.provenance import cpu_fields, cpu_id, host

# /proc/cpuinfo fields of the two CPUs this lab has run on, both "AMD EPYC": Zen 4's as
# this machine gives them; first-generation Zen's family and clock as the earlier benches
# recorded them, with a model and stepping of that generation (below 0x30).
ZEN1 = {
    "vendor_id": "AuthenticAMD",
    "cpu family": "23",
    "model": "1",
    "stepping": "2",
    "cpu MHz": "1996.249",
    "flags": "fpu sse4_2 avx fma avx2",
}
ZEN4 = {
    "vendor_id": "AuthenticAMD",
    "cpu family": "25",
    "model": "17",
    "stepping": "1",
    "cpu MHz": "2596.144",
    "flags": "fpu sse4_2 avx fma avx2 avx512f avx512_bf16",
}


def test_two_cpus_of_one_model_name_are_told_apart_by_family_and_vector_width():
    assert cpu_id(ZEN1) == "AuthenticAMD family 23 model 1 stepping 2, avx2"
    assert cpu_id(ZEN4) == "AuthenticAMD family 25 model 17 stepping 1, avx512f"
    assert cpu_id({"model name": "a CPU that says no more"}) is None


def test_the_nominal_peak_counts_first_generation_zen_at_half_rate():
    cores = os.cpu_count()
    assert nominal_peak_gflops(ZEN1) == (cores * 1996.249e6 * 16 / 1e9, 16)
    assert nominal_peak_gflops(ZEN4) == (cores * 2596.144e6 * 32 / 1e9, 32)
    assert nominal_peak_gflops({"vendor_id": "AuthenticAMD"}) is None


def test_meta_json_host_names_this_machines_cpu():
    fields = cpu_fields()
    assert host()["cpu_id"] == cpu_id(fields)
    if "cpu family" in fields:  # Linux on x86: the family and model as /proc/cpuinfo has them
        assert f"family {fields['cpu family']} model {fields['model']}" in host()["cpu_id"]


def test_a_measured_rate_above_the_nominal_peak_is_reported_as_a_faster_clock_not_as_over_100_percent():
    from stateful_lab.diagnostics.bench_report import _against_nominal

    cores = os.cpu_count()
    peak = cores * 2596e6 * 32 / 1e9
    below = _against_nominal(achieved=5.0, matmul=peak * 0.9, nominal=(peak, 32))
    assert f"{100 * 5.0 / peak:.2f}% of their nominal peak" in below and "2596 MHz" in below
    above = _against_nominal(achieved=5.0, matmul=peak * 1.2, nominal=(peak, 32))
    assert "%" not in above and f"at least {2596 * 1.2:.0f} MHz" in above
    assert _against_nominal(5.0, 100.0, None) == "."


def test_a_child_of_a_large_parent_reports_its_own_peak_memory():
    """ru_maxrss survives exec: a child of a large `run` process over many configs
    would report the parent's peak as its own (it did: 1752.3 MB for every cost run)."""
    ballast = bytearray(300 * 1024 * 1024)  # the parent's peak grows by 300 MB
    ballast[::4096] = b"x" * len(ballast[::4096])  # touch every page
    script = "from stateful_lab.provenance import peak_memory_mb; print(peak_memory_mb())"
    child = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert float(child.stdout) < 200, child.stdout
    del ballast
