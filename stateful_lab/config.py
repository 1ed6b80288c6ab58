"""The experiment config: one typed, strict object loaded from YAML.

Loading runs in three steps, each reporting every problem it finds:
types and ranges (pydantic), derived values (filled in one place, `_resolve`),
then cross-field checks (`_consistency_problems`). Library code raises
`ConfigError`; the CLI turns it into exit status 2.
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

BIT_TASKS = ("first_timestep", "collocated")
SERIES_TASKS = ("random_series",)
STATEFUL_VARIANTS = ("stateful",)

# Keys that only one family of tasks reads; setting them for another is a mistake.
_SERIES_ONLY_KEYS = ("series_length", "layout", "target")
_BIT_ONLY_KEYS = ("train_samples", "test_samples")


class ConfigError(ValueError):
    """A config that cannot run; `problems` has one line per problem."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("\n".join(problems))


class _Strict(BaseModel):
    # strict: a YAML string "3" is not an int, `true` is not 1.
    model_config = ConfigDict(extra="forbid", strict=True, validate_assignment=False)


class DataConfig(_Strict):
    """What the model sees: one synthetic task and its sizes."""

    task: Literal["first_timestep", "collocated", "random_series"] = "first_timestep"
    """Task name (DESIGN section 2): first_timestep, collocated or random_series."""
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
    """How windows fill batches (random_series; default streams): streams keeps lane i
    continuous across batches, blocks puts consecutive windows side by side."""
    target: Literal["last_value", "noise"] | None = None
    """What to predict (random_series; default last_value): the first feature of the
    window's last step, or independent uniform noise."""
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
    reset: Literal["epoch", "never"] = "epoch"
    """When stateful layers are reset: at the start of every epoch, or never after
    the first (the gradient-flow article's "incorrect" example)."""
    shuffle: bool = False
    """Shuffle training samples (never allowed with a stateful variant)."""
    trainer: Literal["fit", "train_on_batch", "loop"] = "loop"
    """Training procedure: loop (a GradientTape loop, one XLA-compiled function per
    epoch; the default, being the fastest), fit (model.fit(epochs=1) per epoch) or
    train_on_batch (one call per batch). All three give the same numbers."""


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

    @property
    def seed_list(self) -> list[int]:
        return list(range(self.seeds)) if isinstance(self.seeds, int) else list(self.seeds)

    @property
    def classification(self) -> bool:
        return self.data.task in BIT_TASKS

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.model_dump(mode="json", exclude_none=True), sort_keys=False)


# --- loading -----------------------------------------------------------------


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
        raw = yaml.safe_load(text)
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
            value = yaml.safe_load(text)
        except yaml.YAMLError:
            raise ConfigError([f"--set {item!r}: the value is not valid YAML"]) from None
        node = raw
        parts = key.split(".")
        for depth, part in enumerate(parts[:-1]):
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                prefix = ".".join(parts[: depth + 1])
                raise ConfigError([f"--set {item!r}: {prefix} is a value, not a section"])
            node = child
        node[parts[-1]] = value


def parse_experiment(raw: dict[str, Any], default_name: str = "experiment") -> Experiment:
    """Validate a raw mapping into a resolved Experiment, or raise ConfigError."""
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


def _resolve(experiment: Experiment, default_name: str) -> Experiment:
    """Fill every derived value, so the saved config.yaml says exactly what ran."""
    data, model = experiment.data, experiment.model
    data_update: dict[str, Any] = {}
    if experiment.data.task in BIT_TASKS:
        data_update["train_samples"] = data.train_samples or 1024
        data_update["test_samples"] = data.test_samples or 256
    else:
        data_update["series_length"] = data.series_length or 1000
        data_update["layout"] = data.layout or "streams"
        data_update["target"] = data.target or "last_value"
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


def samples_per_set(experiment: Experiment) -> tuple[int, int]:
    """Train and test sample counts after trimming to whole batches."""
    data, batch = experiment.data, experiment.train.batch_size
    if data.task in BIT_TASKS:
        return (data.train_samples // batch) * batch, (data.test_samples // batch) * batch
    windows = series_windows(data.series_length, data.timesteps, batch, data.layout)
    return windows, windows


def series_windows(length: int, timesteps: int, batch_size: int, layout: str) -> int:
    """How many whole windows a series of `length` steps yields in `layout`."""
    if layout == "streams":
        return batch_size * ((length // batch_size) // timesteps)
    return batch_size * (length // (timesteps * batch_size))


def _task_key_problems(experiment: Experiment) -> list[str]:
    task, given = experiment.data.task, experiment.data.model_fields_set
    unused = _SERIES_ONLY_KEYS if task in BIT_TASKS else _BIT_ONLY_KEYS
    return [
        f"data.{key}: not used by task {task}; remove it"
        for key in unused
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
    if data.task in BIT_TASKS and data.features != 1:
        problems.append(f"data.features: task {data.task} has exactly 1 feature, got {data.features}")
    problems += _batch_problems(experiment)
    return problems


def _batch_problems(experiment: Experiment) -> list[str]:
    data, batch = experiment.data, experiment.train.batch_size
    if data.task in SERIES_TASKS:
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
