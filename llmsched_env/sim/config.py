"""The run configuration: one typed dataclass tree, fed alike by Python, YAML and keyword arguments.

A :class:`SimConfig` holds the engine (:class:`~llmsched_env.sim.engine.EngineConfig`), the
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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from .engine_config import EngineConfig
from .predictors import PredictorConfig
from .validation import ConfigError, check_known_keys, check_nonnegative, check_positive
from .workload import WorkloadConfig


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

    def __post_init__(self) -> None:
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
        check_nonnegative("decision_interval", self.decision_interval, integer=True)
        if not isinstance(self.keep_records, bool):
            raise ConfigError(f"keep_records={self.keep_records!r} is invalid: expected true or false")

    @property
    def max_time(self) -> float:
        return math.inf if self.max_time_s is None else self.max_time_s

    # -- dict / YAML ---------------------------------------------------------------------------
    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: str = "config") -> "SimConfig":
        """Build from nested plain data (as loaded from YAML), rejecting unknown keys."""
        if not isinstance(data, Mapping):
            raise ConfigError(f"{where}: expected a mapping of settings, got {type(data).__name__}")
        check_known_keys(where, data.keys(), [f.name for f in dataclasses.fields(cls)])
        kwargs: dict[str, Any] = dict(data)
        for name, sub in (("engine", EngineConfig), ("workload", WorkloadConfig), ("predictor", PredictorConfig)):
            if name in kwargs:
                kwargs[name] = dataclass_from_dict(sub, kwargs[name], f"{where}.{name}")
        return cls(**kwargs)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def replace(self, **changes: Any) -> "SimConfig":
        """A copy with top-level fields changed (``engine=...`` etc. take dataclasses)."""
        return dataclasses.replace(self, **changes)


def dataclass_from_dict(cls: type, data: Any, where: str) -> Any:
    """Instantiate a config dataclass from a mapping, naming unknown keys and bad values."""
    if isinstance(data, cls):
        return data
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where}: expected a mapping of settings, got {data!r}")
    check_known_keys(where, data.keys(), [f.name for f in dataclasses.fields(cls)])
    try:
        return cls(**data)
    except ConfigError as err:
        raise ConfigError(f"{where}.{err}") from None


def load_config(path: str | Path) -> SimConfig:
    """Read a :class:`SimConfig` from a YAML file."""
    import yaml  # type: ignore[import-untyped]

    path = Path(path)
    try:
        text = path.read_text()
    except OSError as err:
        raise ConfigError(f"config file {str(path)!r} cannot be read: {err.strerror}") from None
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as err:
        raise ConfigError(f"config file {str(path)!r} is not valid YAML: {err}") from None
    return SimConfig.from_dict(data, where=str(path))
