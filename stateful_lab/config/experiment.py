"""The experiment config: one typed, strict object loaded from YAML.

Loading runs in three steps, each reporting every problem it finds: types and
ranges (pydantic; the `data:` section is the chosen task's own schema, from the
task registry), derived values (filled in one place, `Experiment._resolve`),
then cross-field checks (`_consistency_problems`, plus the task's size checks).
Library code raises `ConfigError`; the CLI turns it into exit status 2.
"""

from __future__ import annotations

import copy
import itertools
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any, Literal, Union

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    Field,
    PrivateAttr,
    TypeAdapter,
    ValidationError,
    ValidationInfo,
    model_validator,
)

from stateful_lab.config.checks import consistency_problems, sweep_key_problems
from stateful_lab.config.claims import Claim, claim_problems
from stateful_lab.config.files import (
    MAX_PROBLEMS,
    ConfigError,
    TaggedUnion,
    apply_overrides,
    format_validation_errors,
    parse_yaml,
    read_yaml,
    section_of,
    set_dotted,
)
from stateful_lab.schema import StrictModel
from stateful_lab.tasks import DEFAULT_TASK, TASKS, TaskData
from stateful_lab.userfiles import echo

"""A config's name names its results folder: a plain name, never a path."""

MAX_RUNS = 100_000
"""The most runs one config may make (`run --max-runs` raises it)."""
FULL_CHECK_POINTS = 10_000
"""Sweeps of up to this many points have every point validated when loaded."""
RUN_LEVEL_KEYS = frozenset({"name", "description", "sweep", "claims", "seeds", "variants"})
"""Keys that name or shape the whole experiment, not one run of it: a sweep may
not vary them, and a run's settings (its cache key) leave them out."""

__all__ = ["ConfigError", "Experiment", "load_experiment", "parse_experiment", "read_yaml"]


def _default_task(value: Any) -> Any:
    """A `data:` mapping without `task` is the default task's."""
    if isinstance(value, dict) and "task" not in value:
        return {"task": DEFAULT_TASK, **value}
    return value


DataConfig = Annotated[
    Union[tuple(TASKS.values())],  # noqa: UP007  (a union built from the registry)
    Field(discriminator="task"),
    BeforeValidator(_default_task),
]
"""What the model sees: one task's section, chosen by `data.task`."""


class ModelConfig(StrictModel):
    """The recurrent stack shared by every variant."""

    cell: Literal["lstm", "gru", "simple_rnn"] = "lstm"
    """The recurrent layer: Keras' LSTM, GRU or SimpleRNN."""
    units: int | Annotated[list[int], Field(min_length=1)] = 3
    """Units per recurrent layer: one number for every layer, or a list, one per layer."""
    layers: int | None = Field(None, ge=1)
    """Stacked recurrent layers (default: the length of `units`, or 1)."""
    recurrent_activation: Literal["sigmoid", "hard_sigmoid", "hard_sigmoid_keras2"] = "sigmoid"
    """The gates' activation (LSTM and GRU): sigmoid, Keras 3's default;
    hard_sigmoid, Keras 3's (x/6 + 0.5, clipped); hard_sigmoid_keras2, Keras 2's
    (0.2x + 0.5, clipped), the LSTM's default before Keras 2.3."""
    output_activation: Literal["sigmoid", "linear", "tanh", "softmax"] | None = None
    """Activation of the one-unit Dense output (default: sigmoid for bit tasks,
    linear for regression)."""
    loss: Literal["mse", "mae", "binary_crossentropy", "sparse_categorical_crossentropy"] | None = None
    """Training loss; default mse, what the blog used, also for bits (the table
    task's binary labels: binary_crossentropy)."""


class TrainConfig(StrictModel):
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
    epsilon: float | None = Field(None, gt=0)
    """Adam's or RMSprop's epsilon (default: Keras 3's, 1e-7; Keras 2.0 used 1e-8)."""
    reset: Literal["epoch", "never", "sequence", "batch"] = "epoch"
    """When stateful layers are reset: at the start of every epoch; never after the
    first (the gradient-flow article's "incorrect" example); at every sequence
    boundary (needs data.sequence_length); or before every batch (as stateless)."""
    shuffle: bool = False
    """Shuffle training samples (never allowed with a stateful variant)."""
    isolate: bool = False
    """Run each seed and variant in a fresh process, so that its peak memory
    (peak_memory_mb in runs.csv) is its own; costs a TensorFlow import per run."""
    group: bool = True
    """With the loop trainer: train the runs whose compiled program is the same
    (the seeds, stateless and stateful, sweep points, and other configs' runs in
    the same `run`; grouped.program_settings) together, in one program vectorized
    over runs; the same figures within 1e-5, many times
    faster. A grouped run's epoch_seconds is its share of the group's time (after
    epoch 0, of the time of the epochs trained in one call, evaluation included),
    so a config that times single runs sets this to false."""
    trainer: Literal["fit", "train_on_batch", "loop"] = "loop"
    """Training procedure: loop (a GradientTape loop, one XLA-compiled function per
    epoch; the default, being the fastest), fit (model.fit(epochs=1) per epoch) or
    train_on_batch (one call per batch). All three give the same numbers."""


class Experiment(StrictModel):
    """One experiment: a task, a model, a training procedure, variants and seeds."""

    name: str | None = None
    """Name of the experiment and of its results folder (default: the file name)."""
    description: str = ""
    """What the experiment tests, in a sentence or two."""
    data: DataConfig = Field(default_factory=lambda: TASKS[DEFAULT_TASK]())
    """The task and its sizes: data.task names it (first_timestep, collocated,
    random_series or lag_copy; see docs/design.md), its other keys are the task's."""
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

    _source: dict[str, Any] = PrivateAttr(default_factory=dict)
    """The mapping this experiment was validated from, for sweep points and overrides."""
    _config_dir: Path | None = PrivateAttr(default=None)
    """The config file's folder: data file paths are relative to it."""
    _points: list | None = PrivateAttr(default=None)
    """The sweep points, validated once, on first use."""

    @model_validator(mode="after")
    def _resolve(self, info: ValidationInfo) -> Experiment:
        """Fill every derived value, so the saved config.yaml says exactly what ran."""
        model = self.model
        units = model.units if isinstance(model.units, list) else [model.units] * (model.layers or 1)
        context = info.context or {}
        self.name = self.name or context.get("default_name", "experiment")
        self.data = self.data.resolved(context.get("config_dir"))
        self.model = model.model_copy(
            update={
                "units": units,
                "layers": model.layers or len(units),
                "output_activation": model.output_activation or self.data.default_activation,
                "loss": model.loss or self.data.default_loss,
            }
        )
        return self

    def model_copy(self, *, update=None, deep: bool = False) -> Experiment:
        """A copy; changed settings must go through `override`, which validates
        them and re-derives the sweep points."""
        if update:
            raise TypeError(
                "Experiment settings change through experiment.override('train.reset=never', ...), "
                "which validates them; model_copy(update=...) would skip the checks"
            )
        return super().model_copy(deep=deep)

    def override(self, *settings: str) -> Experiment:
        """This experiment with `--set`-style KEY=VALUE settings applied, validated anew."""
        raw = copy.deepcopy(self._source)
        apply_overrides(raw, settings)
        return parse_experiment(raw, default_name=self.name, config_dir=self._config_dir)

    @property
    def points(self) -> list[tuple[dict[str, Any], Experiment]]:
        """Each sweep point (swept key -> value) with its resolved experiment;
        one point, {} and the experiment itself, without a sweep."""
        if not self.sweep:
            return [({}, self)]
        if self._points is None:
            self._points = [
                (point, _parse_one(source, self.name, self._config_dir)) for point, source in self._point_sources()
            ]
        return self._points

    def _point_sources(self) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
        """Each sweep point with the mapping it is validated from."""
        for values in itertools.product(*self.sweep.values()):
            point = dict(zip(self.sweep, values))
            yield point, _point_source(self._source, point)

    def _value_sources(self) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
        """Each swept value alone, the other keys as the config sets them."""
        for key, values in self.sweep.items():
            for value in values:
                yield {key: value}, _point_source(self._source, {key: value})

    @property
    def point_count(self) -> int:
        """How many sweep points there are, without making them."""
        return math.prod(len(values) for values in self.sweep.values())

    @property
    def run_count(self) -> int:
        return self.point_count * len(self.seed_list) * len(self.variants)

    @property
    def seed_list(self) -> list[int]:
        return list(range(self.seeds)) if isinstance(self.seeds, int) else list(self.seeds)

    @property
    def classification(self) -> bool:
        return self.data.classification

    @property
    def per_step_targets(self) -> bool:
        """The model returns one prediction per time step (lag_copy)."""
        return self.data.per_step_targets

    @property
    def windows_per_sequence(self) -> int:
        return self.data.windows_per_sequence

    @property
    def batches_between_resets(self) -> int | None:
        """How often a reset falls inside an epoch, in batches; None if never."""
        return {"batch": 1, "sequence": self.windows_per_sequence}.get(self.train.reset)

    def run_settings(self) -> dict[str, Any]:
        """Everything that decides one run's numbers, given its variant and seed."""
        return self.model_dump(mode="json", exclude=set(RUN_LEVEL_KEYS))

    def graph_settings(self) -> dict[str, Any]:
        """The run's settings less the task's data values (`TaskData.value_keys`):
        runs that agree on these (and on their variant and array shapes) can share
        one compiled training function."""
        settings = self.run_settings()
        settings["data"] = {key: value for key, value in settings["data"].items() if key not in self.data.value_keys}
        return settings

    def typed(self, key: str, value: Any) -> Any:
        """`value` read back as config key `key` types it, whatever text or number
        a CSV made of it (a float key's "1" or 1 is 1.0; a list is a tuple, so that
        it can be grouped by); unchanged for names that are not config keys (variant)."""
        *parents, leaf = key.split(".")
        section: Any = type(self)
        for part in parents:
            section = type(self.data) if part == "data" and section is type(self) else section_of(section, part)
            if not isinstance(section, type):
                return value
        if leaf not in section.model_fields:
            return value
        if isinstance(value, str):
            value = parse_yaml(value)
        elif hasattr(value, "item"):  # a NumPy scalar from a DataFrame
            value = value.item()
        try:
            value = TypeAdapter(section.model_fields[leaf].annotation).validate_python(value, strict=False)
        except ValidationError:
            return value
        return _hashable(value)

    def to_yaml(self) -> str:
        raw = self.model_dump(mode="json", exclude_none=True)
        data = raw["data"]  # the task, its own keys, then the keys every task has
        raw["data"] = {
            "task": data["task"],
            **{key: value for key, value in data.items() if key not in TaskData.model_fields},
            **data,
        }
        return yaml.safe_dump(raw, sort_keys=False)


# --- loading -----------------------------------------------------------------


def load_experiment(path: str | Path, overrides: tuple[str, ...] | list[str] = ()) -> Experiment:
    """Read, override, validate and resolve a YAML config file."""
    path = Path(path)
    raw = read_yaml(path)
    apply_overrides(raw, overrides)
    return parse_experiment(raw, default_name=path.stem, config_dir=path.resolve().parent)


def parse_experiment(
    raw: dict[str, Any], default_name: str = "experiment", config_dir: Path | None = None
) -> Experiment:
    """Validate a raw mapping into a resolved Experiment, with every sweep point
    validated and resolved too, or raise ConfigError listing every problem."""
    experiment = _parse_one(raw, default_name, config_dir)
    sweepable = [key for key in config_keys() if key not in RUN_LEVEL_KEYS]
    problems = claim_problems(experiment.claims, list(experiment.sweep)) + sweep_key_problems(
        experiment.sweep, sweepable
    )
    if problems:
        raise ConfigError(problems)
    for claim in experiment.claims:  # select as the runs' columns will hold the values
        expect = claim.expect
        expect.select = {key: experiment.typed(key, value) for key, value in expect.select.items()}
        if expect.versus is not None:
            expect.versus = {key: experiment.typed(key, value) for key, value in expect.versus.items()}
    # Every point checked where that is cheap; in a larger sweep each swept value
    # once (linear in the values, not their product), its combinations when run.
    checked = (
        experiment._point_sources() if experiment.point_count <= FULL_CHECK_POINTS else experiment._value_sources()
    )
    for point, source in checked:
        try:
            _parse_one(source, experiment.name, config_dir)
        except ConfigError as error:
            label = ", ".join(f"{key}={echo(value)}" for key, value in point.items())
            problems += [f"sweep point {label}: {problem}" for problem in error.problems]
            if len(problems) >= MAX_PROBLEMS:
                problems = [*problems[:MAX_PROBLEMS], "later sweep points not checked: fix these first"]
                break
    if problems:
        raise ConfigError(problems)
    return experiment


def _hashable(value: Any) -> Any:
    return tuple(_hashable(item) for item in value) if isinstance(value, list) else value


def _point_source(raw: dict[str, Any], point: dict[str, Any]) -> dict[str, Any]:
    """The mapping of one sweep point: the experiment's, with the point's values
    set and no sweep or claims of its own."""
    point_raw = copy.deepcopy(raw)
    point_raw.pop("sweep", None)
    point_raw.pop("claims", None)
    for key, value in point.items():
        set_dotted(point_raw, key, value)
    return point_raw


def _parse_one(raw: dict[str, Any], default_name: str, config_dir: Path | None = None) -> Experiment:
    try:
        experiment = Experiment.model_validate(raw, context={"default_name": default_name, "config_dir": config_dir})
    except ValidationError as error:
        raise ConfigError(format_validation_errors(error, Experiment)) from None
    problems = consistency_problems(experiment)
    if problems:
        raise ConfigError(problems)
    experiment._source = copy.deepcopy(raw)
    experiment._config_dir = config_dir
    return experiment


def config_keys(model: type[BaseModel] | None = None, prefix: str = "") -> list[str]:
    """Every dotted leaf key of the schema, e.g. train.batch_size; a task's keys
    appear once, whichever tasks have them."""
    keys: list[str] = []
    model = model or Experiment
    for name in model.model_fields:
        section = section_of(model, name)
        members = list(section.values()) if isinstance(section, TaggedUnion) else [section]
        for member in members:
            keys += config_keys(member, f"{prefix}{name}.") if member else [prefix + name]
    return list(dict.fromkeys(keys))
