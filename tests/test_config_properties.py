"""Property-based checks of config loading (hypothesis): any mapping and any
`--set` text either loads or raises the lab's ConfigError, never anything else;
and whatever loads (and fits in memory) can be built for one tiny step.

The example budget is the profile's (tests/conftest.py): `ci` by default, a few
seconds; `--hypothesis-profile long` or STATEFUL_LAB_HYPOTHESIS_PROFILE=long for a
longer search.
"""

import contextlib
import math

import numpy as np
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from stateful_lab.config.experiment import ConfigError, config_keys, parse_experiment
from stateful_lab.config.files import apply_overrides, set_dotted
from stateful_lab.tasks import TASKS

from .conftest import EXAMPLES

KEYS = config_keys()
WORDS = [
    "stateless",
    "stateful",
    "wide_window",
    "streams",
    "blocks",
    "epoch",
    "never",
    "sequence",
    "batch",
    "loop",
    "fit",
    "train_on_batch",
    "adam",
    "sgd",
    "mse",
    "sigmoid",
    "last_value",
    "noise",
    *TASKS,
]
EDGE_NUMBERS = [0, -1, 1, 2**31, 10**12, 10**9, math.inf, -math.inf, math.nan, 1e-300, 0.5]

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-3, 64),
    st.sampled_from(EDGE_NUMBERS),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=6),
    st.sampled_from(WORDS),
)
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from(WORDS) | st.text(max_size=4), inner, max_size=3)
    ),
    max_leaves=6,
)
keys = st.sampled_from(KEYS) | st.sampled_from([f"{key}x" for key in KEYS[:8]]) | st.text(max_size=10)


@st.composite
def mappings(draw):
    """A config mapping: a few dotted keys, real or not, set to any values."""
    raw = {}
    for key, value in draw(st.lists(st.tuples(keys, values), max_size=6)):
        with contextlib.suppress(ValueError):  # a section given as a value first: no YAML file says that
            set_dotted(raw, key, value)
    return raw


def load_or_config_error(raw):
    try:
        return parse_experiment(raw)
    except ConfigError as error:
        assert error.problems and all(isinstance(line, str) and line for line in error.problems)
        return None


@given(mappings())
def test_any_mapping_loads_or_raises_config_error(raw):
    load_or_config_error(raw)


@given(st.lists(st.tuples(keys, st.text(max_size=12) | values.map(repr)), max_size=4))
def test_any_set_text_loads_or_raises_config_error(settings_given):
    raw = {"data": {"train_samples": 16, "test_samples": 8}}
    try:
        apply_overrides(raw, [f"{key}={text}" for key, text in settings_given])
    except ConfigError:
        return
    load_or_config_error(raw)


def mostly(valid: list, *edges) -> st.SearchStrategy:
    """One of `valid`, and now and then one of `edges`."""
    return st.sampled_from(valid * 4 + list(edges))


@st.composite
def plausible(draw):
    """Mostly valid configs (small sizes, real choices) with edge values mixed in,
    so that many load and the build property has something to build."""
    task = draw(st.sampled_from(list(TASKS)))
    fields = TASKS[task].model_fields
    data = {"task": task, "timesteps": draw(st.integers(1, 6))}
    for key in ("train_samples", "test_samples", "series_length", "stream_length"):
        if key in fields:
            data[key] = draw(mostly([8, 16, 30, 64, 80], 1, 10**12))
    if "lag" in fields:
        data["lag"] = draw(mostly([0, 1, 2, 3], 10**9))
    if "sequence_length" in fields and draw(st.booleans()):
        data["sequence_length"] = data["timesteps"] * draw(mostly([1, 2, 3], 10**9))
    for key in ("layout", "target"):
        if key in fields and task != "table":
            data[key] = draw(mostly(list(fields[key].annotation.__args__), "sideways"))
    if task == "table":  # a real table: examples/tank.csv, a target and inputs among its columns
        data["csv"] = str(EXAMPLES / "tank.csv")
        data["target"] = draw(mostly(["level", "inflow"], "no such column"))
        data["inputs"] = draw(st.lists(st.sampled_from(["inflow", "temperature", "level"]), min_size=1, unique=True))
        data["horizon"] = draw(mostly([0, 1, 2], 10**9))
    if task == "random_series":
        data["features"] = draw(st.integers(1, 3))
    return {
        "data": data,
        "model": {
            "units": draw(st.integers(1, 4) | st.lists(st.integers(1, 4), max_size=3) | st.sampled_from([0, -1])),
            "layers": draw(st.none() | st.integers(1, 3)),
        },
        "train": {
            "batch_size": draw(st.integers(1, 8)),
            "epochs": 1,
            "reset": draw(mostly(["epoch", "never", "batch"], "sequence")),
            "learning_rate": draw(mostly([0.001], math.inf, 0.0)),
        },
        "variants": draw(
            st.lists(mostly(["stateless", "stateful"], "wide_window"), min_size=1, max_size=3, unique=True)
        ),
        "seeds": 1,
    }


@settings(
    max_examples=max(10, settings().max_examples // 5),
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
@given(plausible())
def test_whatever_loads_and_fits_can_be_built_for_one_step(raw):
    from stateful_lab.execution.resources import ResourceError, check_resources
    from stateful_lab.tasks import for_variant, make_dataset
    from stateful_lab.training.models import build_model

    experiment = load_or_config_error({key: value for key, value in raw.items() if value is not None})
    assume(experiment is not None)
    try:
        check_resources(experiment)
    except ResourceError:
        assume(False)
    batch = experiment.train.batch_size
    dataset = make_dataset(experiment.data, batch, seed=0)
    for variant in experiment.variants:
        inputs = for_variant(dataset, variant, batch)
        model = build_model(experiment, variant, batch, seed=0)
        predictions = model(inputs.x_train[:batch])
        targets = inputs.y_train[:batch].reshape(predictions.shape)
        assert np.isfinite(float(model.loss(targets, predictions)))
