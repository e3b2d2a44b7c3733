"""The run configuration: one typed dataclass tree, fed alike by Python, YAML and keyword arguments.

A :class:`SimConfig` holds the engine (:class:`~llmsched_env.sim.engine_config.EngineConfig`), the
workload (:class:`~llmsched_env.sim.workload.WorkloadConfig`), the predictor
(:class:`~llmsched_env.sim.predictors.PredictorConfig`) and the run itself (load or rate, seed,
time limit, SLO). Each dataclass validates its fields on construction, so a bad value fails where
it is given, with its name, the value and what is allowed.

YAML layout (every key optional; unknown keys are errors)::

    engine:    {hardware: llama2-7b/a100, batching: sarathi, max_num_seqs: 256, ...}
    workload:  {lengths: sharegpt, arrival: poisson, num_requests: 1000, ...}
    predictor: {kind: lognormal, sigma: 0.5}
    load: 0.9          # or rate: 12.5 (requests/s)
    seed: 0
"""

from __future__ import annotations

import dataclasses
import math
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from .engine_config import EngineConfig
from .predictors import PredictorConfig
from .validation import ConfigError, check_known_keys, check_nonnegative, check_positive
from .workload import WorkloadConfig


@dataclass(frozen=True)
class SLOClass:
    """A request class with its own SLO targets (e.g. interactive chat against batch jobs).

    A workload's mixture components name their class (``LengthComponent.slo_class``); every
    request of the class is held to these targets (None: that target is not checked), and the run
    summary reports each class's attainment (``slo_attainment_<name>``).
    """

    name: str
    ttft_s: float | None = None
    tpot_s: float | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name or not self.name.replace("-", "_").isidentifier():
            raise ConfigError(f"slo_classes.name={self.name!r} is invalid: expected a name of letters, digits, '_' or '-'")
        for target in ("ttft_s", "tpot_s"):
            if getattr(self, target) is not None:
                check_positive(f"slo_classes[{self.name}].{target}", getattr(self, target))


@dataclass(frozen=True)
class SimConfig:
    """Everything that defines one simulation run.

    Attributes:
        engine: the inference engine (hardware preset, batching rule, limits, KV, preemption).
        workload: arrivals and request lengths.
        predictor: the output-length predictor the policy sees.
        load: arrival rate as a fraction of the engine's sustainable rate for this length mix
            (see :func:`llmsched_env.sim.capacity.sustainable_rate`); ignored if ``rate`` is set.
        rate: arrival rate in requests/s (overrides ``load``). For trace replay, the trace is
            time-scaled to this mean rate; with neither set, a trace keeps its own timing.
        seed: master seed; arrivals, lengths and predictions use independent child streams, so
            every policy sees the same requests and predictions for a seed.
        max_time_s: stop at this simulated time; requests still in the system are reported as
            unfinished (never dropped).
        slo_ttft_s, slo_tpot_s: SLO targets for attainment and goodput (None: not used).
        decision_interval: also take a decision epoch every this many iterations (0: only at events).
        keep_records: keep every per-request record in memory (False: stream them into the summary).
        slo_classes: request classes with their own targets (:class:`SLOClass`), named by the
            workload's mixture components; requests without a class use ``slo_ttft_s`` /
            ``slo_tpot_s``.
    """

    engine: EngineConfig = field(default_factory=EngineConfig)
    workload: WorkloadConfig = field(default_factory=WorkloadConfig)
    predictor: PredictorConfig = field(default_factory=PredictorConfig)
    load: float | None = 0.9
    rate: float | None = None
    seed: int = 0
    max_time_s: float | None = None
    slo_ttft_s: float | None = None
    slo_tpot_s: float | None = None
    decision_interval: int = 0
    keep_records: bool = True
    slo_classes: tuple[SLOClass, ...] = ()

    def __post_init__(self) -> None:
        classes = []
        for i, c in enumerate(self.slo_classes if isinstance(self.slo_classes, (list, tuple)) else [self.slo_classes]):
            if isinstance(c, Mapping):
                c = from_dict(SLOClass, c, f"slo_classes[{i}]", nested=True)
            if not isinstance(c, SLOClass):
                raise ConfigError(f"slo_classes[{i}]={c!r} is invalid: expected a mapping with name, ttft_s, tpot_s")
            classes.append(c)
        object.__setattr__(self, "slo_classes", tuple(classes))
        names = [c.name for c in classes]
        if len(set(names)) != len(names):
            raise ConfigError(f"slo_classes={names!r} is invalid: expected distinct class names")
        for name, cls in (("engine", EngineConfig), ("workload", WorkloadConfig), ("predictor", PredictorConfig)):
            if not isinstance(getattr(self, name), cls):
                raise ConfigError(f"{name}={getattr(self, name)!r} is invalid: expected a {cls.__name__}")
        if self.load is not None:
            check_positive("load", self.load)
        if self.rate is not None:
            check_positive("rate", self.rate)
        if self.load is None and self.rate is None and self.workload.arrival != "trace":
            raise ConfigError("load=None and rate=None: give a load (fraction of capacity) or a rate (requests/s)")
        if not isinstance(self.seed, int) or isinstance(self.seed, bool) or self.seed < 0:
            raise ConfigError(f"seed={self.seed!r} is invalid: expected an integer >= 0")
        if self.max_time_s is not None:
            check_positive("max_time_s", self.max_time_s)
        if self.slo_ttft_s is not None:
            check_positive("slo_ttft_s", self.slo_ttft_s)
        if self.slo_tpot_s is not None:
            check_positive("slo_tpot_s", self.slo_tpot_s)
        object.__setattr__(self, "decision_interval", check_nonnegative("decision_interval", self.decision_interval, integer=True))
        if not isinstance(self.keep_records, bool):
            raise ConfigError(f"keep_records={self.keep_records!r} is invalid: expected true or false")
        missing = [name for name in self.workload.class_names() if name not in names]
        if missing:
            raise ConfigError(
                f"workload.components name the request class(es) {missing}, which slo_classes does not define: "
                f"expected slo_classes entries for them (defined: {names})"
            )

    @property
    def class_names(self) -> tuple[str, ...]:
        """The request classes of the workload, indexed as ``Request.slo_class``."""
        return self.workload.class_names()

    def class_targets(self) -> tuple[list[float], list[float]]:
        """(TTFT, TPOT) targets in seconds of each request class (inf: none), then of requests
        without a class (the last entry: ``slo_ttft_s`` / ``slo_tpot_s``)."""
        by_name = {c.name: c for c in self.slo_classes}
        inf = math.inf
        ttft = [by_name[n].ttft_s if by_name[n].ttft_s is not None else inf for n in self.class_names]
        tpot = [by_name[n].tpot_s if by_name[n].tpot_s is not None else inf for n in self.class_names]
        ttft.append(self.slo_ttft_s if self.slo_ttft_s is not None else inf)
        tpot.append(self.slo_tpot_s if self.slo_tpot_s is not None else inf)
        return ttft, tpot

    @property
    def max_time(self) -> float:
        return math.inf if self.max_time_s is None else self.max_time_s

    # -- dict / YAML ---------------------------------------------------------------------------
    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: str = "config") -> "SimConfig":
        """Build from nested plain data (as loaded from YAML), rejecting unknown keys."""
        return from_dict(cls, data, where)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def replace(self, **changes: Any) -> "SimConfig":
        """A copy with top-level fields changed (``engine=...`` etc. take dataclasses)."""
        return dataclasses.replace(self, **changes)


def from_dict(cls: type, data: Any, where: str = "config", *, nested: bool = False) -> Any:
    """Build the config dataclass ``cls`` from plain data (as loaded from YAML).

    The one reader of every config of the project (simulation, scenario, evaluation, training):
    unknown keys are errors naming the known ones; a field whose type is a config dataclass (or
    ``X | None``, or ``tuple[X, ...]``) is built from its mapping (or list of mappings) in turn;
    a list given for a tuple field becomes a tuple; every error names the field's path in
    ``where``. Missing keys keep the dataclass defaults; an instance of ``cls`` passes through.
    ``nested``: ``where`` is a field path, and a bad value reads ``<where>.<field>=...``.
    """
    if isinstance(data, cls):
        return data
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where}: expected a mapping of settings, got {data!r}")
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    check_known_keys(where, data.keys(), list(fields))
    hints = typing.get_type_hints(cls)
    kwargs = {name: _field_value(hints[name], value, f"{where}.{name}") for name, value in data.items()}
    try:
        return cls(**kwargs)
    except ConfigError as err:
        if not nested:
            raise
        raise ConfigError(f"{where}.{err}") from None


def _field_value(hint: Any, value: Any, where: str) -> Any:
    """``value`` converted for a field annotated ``hint`` (see :func:`from_dict`)."""
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    if dataclasses.is_dataclass(hint):
        return from_dict(hint, value, where, nested=True) if value is not None else value
    if typing.get_origin(hint) in (typing.Union, types.UnionType) and len(args) == 1:
        return None if value is None else _field_value(args[0], value, where)
    if typing.get_origin(hint) is tuple and isinstance(value, list):
        item = args[0] if args else Any
        return tuple(_field_value(item, v, f"{where}[{i}]") for i, v in enumerate(value))
    return value


def dataclass_from_dict(cls: type, data: Any, where: str) -> Any:
    """:func:`from_dict` for a nested config whose field path is ``where``."""
    return from_dict(cls, data, where, nested=True)


def load_yaml(path: str | Path) -> dict[str, Any]:
    """The mapping in a YAML config file, the one reader of the project's YAML.

    YAML 1.2 numbers: ``3e-4`` is a float (PyYAML's YAML 1.1 would read a string), as rl-zoo3 users
    write learning rates. An empty file is an empty mapping; errors name the file.
    """
    import yaml  # type: ignore[import-untyped]

    path = Path(path)
    try:
        text = path.read_text()
    except OSError as err:
        raise ConfigError(f"config file {str(path)!r} cannot be read: {err.strerror}") from None
    try:
        data = yaml_load(text)
    except yaml.YAMLError as err:
        reason = " ".join(str(err).split())
        raise ConfigError(f"config file {str(path)!r} is not valid YAML: {reason}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {str(path)!r}: expected a mapping of settings, got {type(data).__name__}")
    return data


def yaml_load(text: str) -> Any:
    """``yaml.safe_load`` with YAML 1.2 floats (``3e-4`` is a number)."""
    import yaml  # type: ignore[import-untyped]

    class Loader(yaml.SafeLoader):
        pass

    Loader.add_implicit_resolver(
        "tag:yaml.org,2002:float",
        re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
        list("-+0123456789"),
    )
    return yaml.load(text, Loader=Loader)  # noqa: S506  (a SafeLoader)


def load_config(path: str | Path) -> SimConfig:
    """Read a :class:`SimConfig` from a YAML file."""
    return SimConfig.from_dict(load_yaml(path), where=str(path))
