"""The experiment config: one typed, strict object loaded from YAML.

Loading runs in three steps, each reporting every problem it finds:
types and ranges (pydantic), derived values (filled in one place, `_resolve`),
then cross-field checks (`_consistency_problems`). Library code raises
`ConfigError`; the CLI turns it into exit status 2.
"""

from __future__ import annotations

import copy
import difflib
import itertools
import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError

# The data keys each task reads, with their defaults. Setting a key that the
# chosen task does not read is an error, so a config never says something ignored.
TASK_DEFAULTS: dict[str, dict[str, Any]] = {
    "first_timestep": {"train_samples": 1024, "test_samples": 256, "sequence_length": None},
    "collocated": {"train_samples": 1024, "test_samples": 256},
    "random_series": {"series_length": 1000, "layout": "streams", "target": "last_value"},
    "lag_copy": {"stream_length": 1000, "lag": 1, "layout": "streams"},
}
TASK_KEYS = {key for defaults in TASK_DEFAULTS.values() for key in defaults}
CLASSIFICATION_TASKS = ("first_timestep", "collocated", "lag_copy")
STATEFUL_VARIANTS = ("stateful",)
# Keys a sweep may not vary: they name or shape the whole run, not a point of it.
UNSWEEPABLE = ("name", "description", "sweep", "claims", "seeds", "variants")


class ConfigError(ValueError):
    """A config that cannot run; `problems` has one line per problem."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("\n".join(problems))


class _Strict(BaseModel):
    # strict: a YAML string "3" is not an int, `true` is not 1.
    model_config = ConfigDict(extra="forbid", strict=True)


class DataConfig(_Strict):
    """What the model sees: one synthetic task and its sizes."""

    task: Literal["first_timestep", "collocated", "random_series", "lag_copy"] = "first_timestep"
    """Task name (DESIGN section 2): first_timestep, collocated, random_series or lag_copy."""
    train_samples: int | None = Field(None, ge=1)
    """Training samples (bit tasks; default 1024, the blog's figure)."""
    test_samples: int | None = Field(None, ge=1)
    """Test samples (bit tasks; default 256)."""
    timesteps: int = Field(5, ge=1)
    """Time steps per sample, the window length T."""
    features: int = Field(1, ge=1)
    """Features per time step (bit tasks have exactly 1)."""
    series_length: int | None = Field(None, ge=1)
    """Steps in each of the train and test series (random_series; default 1000)."""
    layout: Literal["streams", "blocks"] | None = None
    """How windows fill batches (random_series, lag_copy; default streams): streams
    keeps lane i continuous across batches, blocks puts consecutive windows side by side."""
    target: Literal["last_value", "noise"] | None = None
    """What to predict (random_series; default last_value): the first feature of the
    window's last step, or independent uniform noise."""
    sequence_length: int | None = Field(None, ge=1)
    """Steps per sample sequence (first_timestep; default: timesteps). Longer
    sequences are cut into windows of `timesteps` fed as consecutive batches."""
    stream_length: int | None = Field(None, ge=1)
    """Steps in each of the B train and B test bit streams (lag_copy; default 1000)."""
    lag: int | None = Field(None, ge=0)
    """How far back the copied bit is (lag_copy; default 1): target[t] = bit[t - lag]."""
    strict: bool = False
    """Reject the config instead of trimming samples to a multiple of the batch size."""


class ModelConfig(_Strict):
    """The LSTM stack shared by every variant."""

    units: int | list[int] = 3
    """Units per LSTM layer: one number for every layer, or a list, one per layer."""
    layers: int | None = Field(None, ge=1)
    """Stacked LSTM layers (default: the length of `units`, or 1)."""
    output_activation: Literal["sigmoid", "linear", "tanh"] | None = None
    """Activation of the one-unit Dense output (default: sigmoid for bit tasks,
    linear for regression)."""
    loss: Literal["mse", "mae", "binary_crossentropy"] = "mse"
    """Training loss; mse is what the blog used, also for bits."""


class TrainConfig(_Strict):
    """How the model is trained and evaluated."""

    batch_size: int = Field(4, ge=1)
    """Samples per batch; for stateful models, the number of lanes."""
    epochs: int = Field(5, ge=1)
    """Training epochs; evaluation runs after each one."""
    optimizer: Literal["adam", "sgd", "rmsprop"] = "adam"
    """Keras optimizer."""
    learning_rate: float = Field(0.001, gt=0)
    """Optimizer learning rate (0.001 is Keras' Adam default, which the articles use)."""
    clipnorm: float | None = Field(None, gt=0)
    """Clip each gradient to this norm (off by default)."""
    reset: Literal["epoch", "never", "sequence", "batch"] = "epoch"
    """When stateful layers are reset: at the start of every epoch; never after the
    first (the gradient-flow article's "incorrect" example); at every sequence
    boundary (needs data.sequence_length); or before every batch (as stateless)."""
    shuffle: bool = False
    """Shuffle training samples (never allowed with a stateful variant)."""
    isolate: bool = False
    """Run each seed and variant in a fresh process, so that its peak memory
    (peak_memory_mb in runs.csv) is its own; costs a TensorFlow import per run."""
    trainer: Literal["fit", "train_on_batch", "loop"] = "loop"
    """Training procedure: loop (a GradientTape loop, one XLA-compiled function per
    epoch; the default, being the fastest), fit (model.fit(epochs=1) per epoch) or
    train_on_batch (one call per batch). All three give the same numbers."""


class Expectation(_Strict):
    """A machine-checkable expectation about the final-epoch results."""

    metric: Literal["test_accuracy", "test_loss", "train_accuracy", "train_loss",
                    "epoch_seconds", "peak_memory_mb"]
    """What is compared, per run (one value per seed)."""
    select: dict[str, Any] = Field(default_factory=dict)
    """The runs compared: `variant` and/or swept keys with their values."""
    test: Literal["at_least", "at_most", "between", "greater", "less", "similar", "gap_shrinks"]
    """at_least/at_most/between: the selected runs' mean against value/low/high.
    greater/less: selected vs `versus`, Welch's t-test at p < 0.05 in that direction.
    similar: the 95% interval of the difference from `versus` lies within ±margin.
    gap_shrinks: the per-seed gap (selected minus versus) is smaller at the largest
    value of the swept key `over` than at its smallest (Welch, p < 0.05)."""
    value: float | None = None
    low: float | None = None
    high: float | None = None
    versus: dict[str, Any] | None = None
    """The runs the selected ones are compared with (two-group tests)."""
    margin: float | None = Field(None, gt=0)
    over: str | None = None


class Claim(_Strict):
    """One thing a source article says, with the expectation that tests it."""

    id: str
    kind: Literal["claim", "result"]
    """claim: an assertion (supported / not supported); result: the article's own
    measurement (reproduced / not reproduced)."""
    source: str
    """The article's title."""
    statement: str
    """The claim, in our words."""
    article: str = ""
    """The article's own figure, shown beside ours."""
    expect: Expectation


class Experiment(_Strict):
    """One experiment: a task, a model, a training procedure, variants and seeds."""

    name: str | None = None
    """Name of the experiment and of its results folder (default: the file name)."""
    description: str = ""
    """What the experiment tests, in a sentence or two."""
    data: DataConfig = DataConfig()
    model: ModelConfig = ModelConfig()
    train: TrainConfig = TrainConfig()
    variants: list[Literal["stateless", "stateful", "wide_window"]] = Field(
        default_factory=lambda: ["stateless", "stateful"], min_length=1
    )
    """Model variants to train, each on the same data and seeds: stateless, stateful,
    or wide_window (stateless, seeing its lane's previous window joined in front)."""
    seeds: int | list[int] = 3
    """Seeds: N means 0..N-1, or an explicit list."""
    sweep: dict[str, list[Any]] = Field(default_factory=dict)
    """Dotted keys mapped to lists of values; every combination is run."""
    claims: list[Claim] = Field(default_factory=list)
    """What this experiment tests, each with a checkable expectation."""

    @property
    def points(self) -> list[tuple[dict[str, Any], "Experiment"]]:
        """Each sweep point (swept key -> value) with its resolved experiment;
        one point, {} and the experiment itself, without a sweep."""
        return self._points or [({}, self)]

    @property
    def seed_list(self) -> list[int]:
        return list(range(self.seeds)) if isinstance(self.seeds, int) else list(self.seeds)

    @property
    def classification(self) -> bool:
        return self.data.task in CLASSIFICATION_TASKS

    @property
    def per_step_targets(self) -> bool:
        """The model returns one prediction per time step (lag_copy)."""
        return self.data.task == "lag_copy"

    @property
    def windows_per_sequence(self) -> int:
        return (self.data.sequence_length or self.data.timesteps) // self.data.timesteps

    @property
    def batches_between_resets(self) -> int | None:
        """How often a reset falls inside an epoch, in batches; None if never."""
        return {"batch": 1, "sequence": self.windows_per_sequence}.get(self.train.reset)

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.model_dump(mode="json", exclude_none=True), sort_keys=False)

    _points: list = PrivateAttr(default_factory=list)


# --- loading -----------------------------------------------------------------


class _Loader(yaml.SafeLoader):
    """YAML 1.1's safe loader, but reading 1e-3 and 1e6 as floats (YAML 1.2 does;
    PyYAML alone reads them as strings, which the strict schema would reject)."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:\d+\.?\d*|\.\d+)[eE][-+]?\d+$"),
    list("-+0123456789."),
)


def _parse_yaml(text: str) -> Any:
    return yaml.load(text, Loader=_Loader)



def load_experiment(path: str | Path, overrides: tuple[str, ...] | list[str] = ()) -> Experiment:
    """Read, override, validate and resolve a YAML config file."""
    path = Path(path)
    raw = read_yaml(path)
    apply_overrides(raw, overrides)
    return parse_experiment(raw, default_name=path.stem)


def read_yaml(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text()
    except OSError as error:
        raise ConfigError([f"{path}: cannot read the config file ({error.strerror})"]) from None
    try:
        raw = _parse_yaml(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(error, "problem", None) or str(error)
        raise ConfigError([f"{path}:{where}: YAML syntax error: {problem}"]) from None
    if raw is None:
        raise ConfigError([f"{path}: the config file is empty; start from a file in configs/"])
    if not isinstance(raw, dict):
        raise ConfigError(
            [f"{path}: the top level must be a mapping of keys (name:, data:, ...), "
             f"not a {type(raw).__name__}"]
        )
    return raw


def apply_overrides(raw: dict[str, Any], overrides) -> None:
    """Apply `--set a.b=value` overrides in place; values are parsed as YAML."""
    for item in overrides:
        key, sep, text = item.partition("=")
        if not sep or not key:
            raise ConfigError([f"--set {item!r}: expected KEY=VALUE, e.g. --set train.epochs=3"])
        try:
            value = _parse_yaml(text)
        except yaml.YAMLError:
            raise ConfigError([f"--set {item!r}: the value is not valid YAML"]) from None
        try:
            _set_dotted(raw, key, value)
        except ValueError as error:
            raise ConfigError([f"--set {item!r}: {error}"]) from None


def parse_experiment(raw: dict[str, Any], default_name: str = "experiment") -> Experiment:
    """Validate a raw mapping into a resolved Experiment, with every sweep point
    validated and resolved too, or raise ConfigError listing every problem."""
    experiment = _parse_one(raw, default_name)
    problems = _claim_problems(experiment) + _sweep_key_problems(experiment.sweep)
    if problems:
        raise ConfigError(problems)
    if not experiment.sweep:
        return experiment
    keys = list(experiment.sweep)
    points = []
    for values in itertools.product(*experiment.sweep.values()):
        point = dict(zip(keys, values))
        point_raw = copy.deepcopy(raw)
        point_raw.pop("sweep", None)
        point_raw.pop("claims", None)
        for key, value in point.items():
            _set_dotted(point_raw, key, value)
        try:
            points.append((point, _parse_one(point_raw, default_name)))
        except ConfigError as error:
            label = ", ".join(f"{key}={value!r}" for key, value in point.items())
            problems += [f"sweep point {label}: {problem}" for problem in error.problems]
    if problems:
        raise ConfigError(problems)
    experiment._points = points
    return experiment


def _parse_one(raw: dict[str, Any], default_name: str) -> Experiment:
    try:
        experiment = Experiment.model_validate(raw)
    except ValidationError as error:
        raise ConfigError(_format_validation_errors(error)) from None
    problems = _task_key_problems(experiment)
    experiment = _resolve(experiment, default_name)
    problems += _consistency_problems(experiment)
    if problems:
        raise ConfigError(problems)
    return experiment


def config_keys(model: type[BaseModel] = None, prefix: str = "") -> list[str]:
    """Every dotted leaf key of the schema, e.g. train.batch_size."""
    keys = []
    for name in (model or Experiment).model_fields:
        section = _section(model or Experiment, name)
        keys += config_keys(section, f"{prefix}{name}.") if section else [prefix + name]
    return keys


def _sweep_key_problems(sweep: dict[str, list[Any]]) -> list[str]:
    known = [key for key in config_keys() if key not in UNSWEEPABLE]
    problems = []
    for key, values in sweep.items():
        if key not in known:
            guess = difflib.get_close_matches(key, known, n=1)
            hint = f"; did you mean {guess[0]}?" if guess else "; give a dotted key such as train.batch_size"
            problems.append(f"sweep.{key}: not a key that can be swept{hint}")
        elif not values:
            problems.append(f"sweep.{key}: the list of values is empty; give at least one")
    return problems


def _set_dotted(raw: dict[str, Any], key: str, value: Any) -> None:
    """raw[a][b] = value for key "a.b", creating sections on the way."""
    *parents, leaf = key.split(".")
    node = raw
    for depth, part in enumerate(parents):
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise ValueError(f"{'.'.join(parents[: depth + 1])} is a value, not a section")
    node[leaf] = value


def _resolve(experiment: Experiment, default_name: str) -> Experiment:
    """Fill every derived value, so the saved config.yaml says exactly what ran."""
    data, model = experiment.data, experiment.model
    data_update = {
        key: default if getattr(data, key) is None else getattr(data, key)
        for key, default in TASK_DEFAULTS[data.task].items()
    }
    units = model.units if isinstance(model.units, list) else [model.units] * (model.layers or 1)
    model_update = {
        "units": units,
        "layers": model.layers or len(units),
        "output_activation": model.output_activation
        or ("sigmoid" if experiment.classification else "linear"),
    }
    return experiment.model_copy(
        update={
            "name": experiment.name or default_name,
            "data": data.model_copy(update=data_update),
            "model": model.model_copy(update=model_update),
        }
    )


def series_windows(length: int, timesteps: int, batch_size: int, layout: str) -> int:
    """How many whole windows a series of `length` steps yields in `layout`."""
    if layout == "streams":
        return batch_size * ((length // batch_size) // timesteps)
    return batch_size * (length // (timesteps * batch_size))


def _task_key_problems(experiment: Experiment) -> list[str]:
    task, given = experiment.data.task, experiment.data.model_fields_set
    return [
        f"data.{key}: not used by task {task}; remove it"
        for key in sorted(TASK_KEYS - set(TASK_DEFAULTS[task]))
        if key in given
    ]


def _consistency_problems(experiment: Experiment) -> list[str]:
    data, model, train = experiment.data, experiment.model, experiment.train
    problems = []
    if model.layers != len(model.units):
        problems.append(
            f"model.layers: {model.layers} does not match the {len(model.units)} entries of "
            "model.units; give one units value per layer, or a single number"
        )
    if any(units < 1 for units in model.units):
        problems.append(f"model.units: {model.units} must all be at least 1")
    if train.shuffle and any(v in STATEFUL_VARIANTS for v in experiment.variants):
        problems.append(
            "train.shuffle: true cannot be used with a stateful variant (shuffling breaks the "
            "lane-to-lane order the state relies on); set shuffle: false or drop the variant"
        )
    if train.shuffle and train.trainer == "loop":
        problems.append(
            "train.shuffle: true needs train.trainer fit or train_on_batch; the compiled loop "
            "feeds batches in order"
        )
    if len(set(experiment.variants)) != len(experiment.variants):
        problems.append(f"variants: {experiment.variants} lists a variant twice")
    seeds = experiment.seeds
    if isinstance(seeds, int) and seeds < 1:
        problems.append(f"seeds: {seeds} must be at least 1 (N means seeds 0..N-1)")
    if isinstance(seeds, list):
        if not seeds:
            problems.append("seeds: the list is empty; give at least one seed")
        if any(seed < 0 for seed in seeds):
            problems.append(f"seeds: {seeds} must be non-negative")
        if len(set(seeds)) != len(seeds):
            problems.append(f"seeds: {seeds} lists a seed twice")
    if data.task in CLASSIFICATION_TASKS and data.features != 1:
        problems.append(f"data.features: task {data.task} has exactly 1 feature, got {data.features}")
    if data.sequence_length is not None and data.sequence_length % data.timesteps:
        problems.append(
            f"data.sequence_length: {data.sequence_length} is not a multiple of data.timesteps "
            f"{data.timesteps}; sequences are cut into whole windows"
        )
    if train.reset == "sequence" and data.sequence_length is None:
        problems.append(
            "train.reset: sequence needs data.sequence_length (sequences longer than one window); "
            "use epoch, never or batch"
        )
    if "wide_window" in experiment.variants and (experiment.per_step_targets or experiment.windows_per_sequence > 1):
        problems.append(
            "variants: wide_window predicts one label per window; it cannot be used with "
            "lag_copy or data.sequence_length"
        )
    problems += _batch_problems(experiment)
    return problems


def _expectation_problems(expect: Expectation, keys: list[str]) -> list[str]:
    """What an expectation lacks for its test, or selects that does not exist."""
    needs = {
        "at_least": ["value"], "at_most": ["value"], "between": ["low", "high"],
        "greater": ["versus"], "less": ["versus"], "similar": ["versus", "margin"],
        "gap_shrinks": ["versus", "over"],
    }[expect.test]
    problems = [f"test {expect.test} needs expect.{name}" for name in needs if getattr(expect, name) is None]
    for select in (expect.select, expect.versus or {}):
        problems += [f"selects by {key!r}, which is neither variant nor a swept key"
                     for key in select if key not in ("variant", *keys)]
    if expect.over is not None and expect.over not in keys:
        problems.append(f"expect.over {expect.over!r} is not a swept key")
    return problems


def _claim_problems(experiment: Experiment) -> list[str]:
    keys = list(experiment.sweep)
    problems = []
    for index, claim in enumerate(experiment.claims):
        problems += [f"claims[{index}] ({claim.id}): {problem}"
                     for problem in _expectation_problems(claim.expect, keys)]
    ids = [claim.id for claim in experiment.claims]
    if len(set(ids)) != len(ids):
        problems.append(f"claims: ids {ids} are not unique")
    return problems


def _batch_problems(experiment: Experiment) -> list[str]:
    data, batch = experiment.data, experiment.train.batch_size
    if data.task == "lag_copy":
        if data.stream_length < data.timesteps:
            return [
                f"data.stream_length: {data.stream_length} is shorter than one window of "
                f"data.timesteps {data.timesteps}; lengthen the streams"
            ]
        if data.lag >= data.stream_length:
            return [f"data.lag: {data.lag} must be shorter than data.stream_length {data.stream_length}"]
        return []
    if data.task == "random_series":
        if series_windows(data.series_length, data.timesteps, batch, data.layout) == 0:
            needed = batch * data.timesteps
            return [
                f"train.batch_size: {batch} windows of {data.timesteps} steps need a series of at "
                f"least {needed} steps, but data.series_length is {data.series_length}; "
                "lower the batch size or lengthen the series"
            ]
        return []
    problems = []
    for key in ("train_samples", "test_samples"):
        count = getattr(data, key)
        if batch > count:
            problems.append(
                f"train.batch_size: {batch} is larger than data.{key} ({count}); "
                f"use a batch size of at most {count}"
            )
        elif data.strict and count % batch:
            problems.append(
                f"data.{key}: {count} is not a multiple of train.batch_size {batch} and "
                f"data.strict is true; use {count - count % batch} or {count - count % batch + batch}"
            )
    return problems


# --- error messages ----------------------------------------------------------


def _format_validation_errors(error: ValidationError) -> list[str]:
    """One line per offending key: the dotted key, the bad value, what is allowed."""
    by_key: dict[str, list[dict]] = {}
    for item in error.errors():
        by_key.setdefault(_dotted_key(item), []).append(item)
    lines = []
    for key, items in by_key.items():
        if any(other.startswith(key + "[") for other in by_key):
            continue  # a union branch failed deeper down; that line says more
        first = items[0]
        if first["type"] == "extra_forbidden":
            lines.append(_unknown_key_message(key))
            continue
        value = first.get("input")
        allowed = " or ".join(dict.fromkeys(_allowed(item) for item in items))
        lines.append(f"{key}: got {value!r}; {allowed}")
    return lines


def _dotted_key(item: dict) -> str:
    """Turn a pydantic location into a dotted key, dropping union-branch labels
    such as 'list[int]' (they are pydantic's, not the user's)."""
    loc, parts, model = item["loc"], [], Experiment
    for position, part in enumerate(loc):
        fields = model.model_fields if model else {}
        is_unknown_key = item["type"] == "extra_forbidden" and position == len(loc) - 1
        if isinstance(part, int):
            parts[-1] += f"[{part}]"
            model = None
        elif part in fields or is_unknown_key:
            parts.append(part)
            model = _section(model, part)
    return ".".join(parts)


def _section(model: type[BaseModel] | None, key: str) -> type[BaseModel] | None:
    annotation = model.model_fields[key].annotation if model and key in model.model_fields else None
    return annotation if isinstance(annotation, type) and issubclass(annotation, BaseModel) else None


def _allowed(item: dict) -> str:
    message = item["msg"]
    for prefix in ("Input should be", "Input should"):
        if message.startswith(prefix):
            return "must be" + message[len(prefix):]
    return message[0].lower() + message[1:]


def _unknown_key_message(key: str) -> str:
    *parents, leaf = key.split(".")
    model: type[BaseModel] | None = Experiment
    for parent in parents:
        model = _section(model, parent)
    allowed = list(model.model_fields) if model else []
    guess = difflib.get_close_matches(leaf, allowed, n=1)
    hint = f"did you mean {'.'.join([*parents, guess[0]])}? " if guess else ""
    section = ".".join(parents) or "the top level"
    return f"{key}: unknown key; {hint}allowed under {section}: {', '.join(allowed)}"
