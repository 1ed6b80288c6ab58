"""`stateful-lab probe`: measure what a stateful RNN's state does in Keras 3.

The articles assert how state behaves; each check here measures it on a tiny
seeded model and compares the measurement with the assertion, for a cell of
choice (LSTM, GRU, SimpleRNN). The same functions are the test suite's checks
(tests/test_probe.py), so CI guards every one for every cell.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass

import keras
import numpy as np
import tensorflow as tf

from stateful_lab.config.experiment import parse_experiment
from stateful_lab.runs.seeding import deterministic_kernels, seed_everything
from stateful_lab.tasks import make_dataset
from stateful_lab.tasks.batching import continuous_lanes, lane_source_positions
from stateful_lab.training.compiled import KerasTwin
from stateful_lab.training.models import CELLS, build_model, get_states, recurrent_layer, reset_states
from stateful_lab.training.trainers import train_fit

BATCH, TIMESTEPS, FEATURES, UNITS = 3, 4, 2, 5
CLOSE = 1e-5  # outputs that must be equal agree within float32 round-off
DIFFERENT = 1e-3  # outputs that must differ, differ by at least this


@dataclass(frozen=True)
class Check:
    name: str
    measured: str
    """The measurement in words and numbers."""
    passed: bool
    claim: str
    """What the articles assert, which the measurement tests."""

    def __post_init__(self) -> None:
        # Measurements compare NumPy values, whose numpy.bool_ JSON cannot write.
        object.__setattr__(self, "passed", bool(self.passed))

    def as_dict(self) -> dict:
        return asdict(self)


def _pair(cell: str, seed: int = 0) -> tuple[keras.Model, keras.Model]:
    """A stateful model and a stateless twin with the same weights; the twin
    takes sequences of any length, so it can see two windows joined in time."""
    seed_everything(seed)

    def build(stateful: bool) -> keras.Model:
        shape = (BATCH, TIMESTEPS, FEATURES) if stateful else (None, None, FEATURES)
        inputs = keras.Input(batch_shape=shape)
        hidden = recurrent_layer(cell, UNITS, stateful=stateful)(inputs)
        return keras.Model(inputs, keras.layers.Dense(1)(hidden))

    stateful, stateless = build(True), build(False)
    stateless.set_weights(stateful.get_weights())
    return stateful, stateless


def _batches(count: int = 2, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    # Inputs of unit scale 2: large enough that carried state visibly moves outputs.
    return [rng.normal(scale=2.0, size=(BATCH, TIMESTEPS, FEATURES)).astype(np.float32) for _ in range(count)]


def check_state_carry(cell: str = "lstm") -> Check:
    stateful, stateless = _pair(cell)
    batch_k, batch_next = _batches()
    reset_states(stateful)
    stateful(batch_k)
    carried = np.asarray(stateful(batch_next))
    joined = np.asarray(stateless(np.concatenate([batch_k, batch_next], axis=1)))
    reset_states(stateful)
    from_reset = np.asarray(stateful(batch_next))
    equal_to_joined = float(np.abs(carried - joined).max())
    apart_from_reset = float(np.abs(carried - from_reset).max())
    return Check(
        "state carry",
        f"max |stateful(batch k+1) - stateless(lane's windows k, k+1 joined)| = {equal_to_joined:.1e}; "
        f"vs after a reset: {apart_from_reset:.3f}",
        equal_to_joined < CLOSE and apart_from_reset > DIFFERENT,
        "lane i of batch k+1 starts from the state lane i ended batch k with",
    )


def check_lane_mapping(cell: str = "lstm", lane: int = 1) -> Check:
    stateful, _ = _pair(cell)
    batch_k, batch_next = _batches()
    reset_states(stateful)
    stateful(batch_k)
    baseline = np.asarray(stateful(batch_next))[:, 0]
    perturbed_k = batch_k.copy()
    perturbed_k[lane] += 3.0
    reset_states(stateful)
    stateful(perturbed_k)
    changed = np.abs(np.asarray(stateful(batch_next))[:, 0] - baseline)
    moved = [index for index in range(BATCH) if changed[index] > 0]
    return Check(
        "lane mapping",
        f"perturbing lane {lane} of batch k moved lanes {moved} of batch k+1 "
        f"(change {changed[lane]:.3f}; largest elsewhere {np.delete(changed, lane).max():.1e})",
        moved == [lane] and changed[lane] > DIFFERENT,
        "sample i of a batch feeds only sample i of the next (sample i -> i + batch size)",
    )


def check_gradient_boundary(cell: str = "lstm") -> Check:
    stateful, stateless = _pair(cell)
    batch_k, batch_next = (tf.constant(batch) for batch in _batches())
    reset_states(stateful)
    with tf.GradientTape() as tape:
        tape.watch(batch_k)
        stateful(batch_k)  # writes the state variables that batch k+1 starts from
        loss = tf.reduce_sum(stateful(batch_next))
    through_state = tape.gradient(loss, batch_k)
    state_norm = 0.0 if through_state is None else float(tf.norm(through_state))
    joined = tf.concat([batch_k, batch_next], axis=1)
    with tf.GradientTape() as tape:
        tape.watch(joined)
        loss = tf.reduce_sum(stateless(joined))
    joined_norm = float(tf.norm(tape.gradient(loss, joined)[:, :TIMESTEPS]))
    return Check(
        "gradient boundary",
        f"|d loss(batch k+1) / d batch k| = {state_norm:.1e} through the state; "
        f"{joined_norm:.3f} through the joined 2T-step stateless model",
        state_norm == 0.0 and joined_norm > DIFFERENT,
        "backprop does not cross the batch boundary (truncated BPTT)",
    )


def check_reset(cell: str = "lstm") -> Check:
    stateful, _ = _pair(cell)
    batch_k, batch_next = _batches()
    stateful(batch_k)
    stateful(batch_next)
    reset_states(stateful)
    largest_state = max(float(np.abs(value).max()) for layer in get_states(stateful) for value in layer)
    after_reset = np.asarray(stateful(batch_next))
    fresh, _ = _pair(cell, seed=1)
    fresh.set_weights(stateful.get_weights())
    difference = float(np.abs(after_reset - np.asarray(fresh(batch_next))).max())
    return Check(
        "reset",
        f"largest state value after reset = {largest_state:.1e}; "
        f"max |output - fresh model's output| = {difference:.1e}",
        largest_state == 0.0 and difference == 0.0,
        "a reset zeroes the state: the model then acts as if freshly built",
    )


def check_evaluation_leaves_training_alone(cell: str = "lstm") -> Check:
    """Keras 3 evaluate moves the state; the lab's protocol keeps training exact."""
    experiment = parse_experiment(
        {
            "data": {"task": "first_timestep", "train_samples": 48, "test_samples": 24},
            "model": {"cell": cell},
            "train": {"epochs": 3, "batch_size": BATCH},
            "variants": ["stateful"],
        }
    )
    dataset = make_dataset(experiment.data, BATCH, seed=0)
    deterministic_kernels()  # build_model draws from explicit seeds (runs.seeding.seed_run)
    model = build_model(experiment, "stateful", BATCH, seed=0)
    model.fit(dataset.x_train, dataset.y_train, batch_size=BATCH, epochs=1, shuffle=False, verbose=0)
    before = get_states(model)
    model.evaluate(dataset.x_test, dataset.y_test, batch_size=BATCH, verbose=0)
    moved = max(float(np.abs(a - b).max()) for old, new in zip(before, get_states(model)) for a, b in zip(old, new))

    differences = {}
    for policy in ("epoch", "never"):
        policy_experiment = experiment.override(f"train.reset={policy}")
        lab = _trained_weights(policy_experiment, dataset, lambda *args: list(train_fit(*args, "stateful")))
        plain = _trained_weights(policy_experiment, dataset, _fit_epochs)
        raw = _trained_weights(policy_experiment, dataset, _fit_epochs_with_raw_evaluation)
        differences[policy] = (_max_difference(lab, plain), _max_difference(raw, plain))
    passed = moved > 0 and all(lab == 0.0 for lab, _ in differences.values()) and differences["never"][1] > 0
    per_policy = "; ".join(
        f"reset {policy}: lab protocol {lab:.1e}, raw evaluate {raw:.1e}" for policy, (lab, raw) in differences.items()
    )
    return Check(
        "evaluation leaves training alone",
        f"Keras evaluate moves the state by {moved:.3f}; max weight difference from training "
        f"without evaluation: {per_policy}",
        passed,
        "evaluating between epochs must not change what training does",
    )


def _fit_epochs_with_raw_evaluation(model, experiment, dataset) -> None:
    _fit_epochs(model, experiment, dataset, raw_evaluate=True)


def _fit_epochs(model, experiment, dataset, raw_evaluate: bool = False) -> None:
    """Reset per policy and fit, epoch by epoch, with none of the lab's protocol;
    optionally a bare Keras evaluate between epochs, as a user would naively write
    it. Trains the shape's kept model started from `model` (`KerasTwin`, equal to a
    fresh model bit for bit), so that Keras traces once per shape, not per call."""
    twin = KerasTwin.for_run(experiment, "stateful").start(model)
    for epoch in range(experiment.train.epochs):
        if experiment.train.reset == "epoch" or epoch == 0:
            reset_states(twin)
        twin.fit(dataset.x_train, dataset.y_train, batch_size=BATCH, epochs=1, shuffle=False, verbose=0)
        if raw_evaluate:
            twin.evaluate(dataset.x_test, dataset.y_test, batch_size=BATCH, verbose=0)
    model.set_weights(twin.get_weights())


def _trained_weights(experiment, dataset, train: Callable[..., object]) -> list[np.ndarray]:
    """Weights after `train(model, experiment, dataset)` from the same start."""
    deterministic_kernels()  # build_model draws from explicit seeds (runs.seeding.seed_run)
    model = build_model(experiment, "stateful", BATCH, seed=0)
    train(model, experiment, dataset)
    return model.get_weights()


def _max_difference(first: list[np.ndarray], second: list[np.ndarray]) -> float:
    return max(float(np.abs(a - b).max()) for a, b in zip(first, second, strict=True))


def check_no_partial_batch(cell: str = "lstm") -> Check:
    """keras-team/keras#21183: a last batch of 1 broadcasts against the state."""
    samples = 3 * BATCH + 1
    rng = np.random.default_rng(0)
    x = rng.normal(size=(samples, TIMESTEPS, FEATURES)).astype(np.float32)
    stateful, _ = _pair(cell)
    raw_outputs = len(stateful.predict(x, batch_size=BATCH, verbose=0))
    experiment = parse_experiment(
        {
            "data": {
                "task": "first_timestep",
                "train_samples": samples,
                "test_samples": samples,
                "timesteps": TIMESTEPS,
            },
            "model": {"cell": cell},
            "train": {"batch_size": BATCH},
        }
    )
    dataset = make_dataset(experiment.data, BATCH, seed=0)
    deterministic_kernels()  # build_model draws from explicit seeds (runs.seeding.seed_run)
    model = build_model(experiment, "stateful", BATCH, seed=0)
    lab_outputs = len(model.predict(dataset.x_train, batch_size=BATCH, verbose=0))
    kept = len(dataset.x_train)
    return Check(
        "no partial batch",
        f"raw Keras: {samples} samples in, {raw_outputs} outputs out; "
        f"lab: trimmed to {kept} samples, {lab_outputs} outputs out",
        raw_outputs != samples and lab_outputs == kept and kept % BATCH == 0,
        "a stateful model must only see whole batches",
    )


def check_layout_continuity(batch_size: int = 8, timesteps: int = 5, length: int = 1000) -> Check:
    counts = {}
    for layout, lanes in (("streams", batch_size), ("blocks", batch_size), ("blocks", 1)):
        starts = lane_source_positions(length, timesteps, lanes, layout)
        counts[(layout, lanes)] = continuous_lanes(starts, timesteps, lanes)
    return Check(
        "layout continuity",
        f"lanes of batch k+1 that continue batch k: streams {counts[('streams', batch_size)]} of {batch_size}, "
        f"blocks {counts[('blocks', batch_size)]} of {batch_size}, blocks with B=1 {counts[('blocks', 1)]} of 1",
        counts == {("streams", batch_size): batch_size, ("blocks", batch_size): 0, ("blocks", 1): 1},
        "the custom-loop article's block layout breaks the continuity stateful needs",
    )


CELL_CHECKS: tuple[Callable[[str], Check], ...] = (
    check_state_carry,
    check_lane_mapping,
    check_gradient_boundary,
    check_reset,
    check_evaluation_leaves_training_alone,
    check_no_partial_batch,
)
"""Checks on a model, run for the chosen cell."""
CHECKS: tuple[Callable[..., Check], ...] = (*CELL_CHECKS, check_layout_continuity)
"""Every check; layout continuity is about batching alone, with no model."""


def run_checks(cell: str = "lstm") -> list[Check]:
    if cell not in CELLS:
        raise ValueError(f"cell {cell!r}: use one of {', '.join(CELLS)}")
    return [check(cell) if check in CELL_CHECKS else check() for check in CHECKS]


def checks_for(cells: list[str]) -> list[tuple[str, Check]]:
    """Every check for each cell: (cell, check) pairs."""
    return [(cell, check) for cell in cells for check in run_checks(cell)]
