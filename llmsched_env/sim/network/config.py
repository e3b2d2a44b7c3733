"""An agent network's configuration: engines, workflow classes, their calls and delays, the YAML
layout (``configs/network/``), and the network's buffers (its queueing classes).

See :mod:`llmsched_env.sim.network` for the model.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from ..config import dataclass_from_dict, load_yaml
from ..cost import CostModel, LinearCostModel, StaircaseCostModel
from ..engine_config import EngineConfig
from ..predictors import PredictorConfig
from ..validation import ConfigError, check_choice, check_known_keys, check_nonnegative, check_number, check_positive, fail
from ..workload import WorkloadConfig, mean_lengths

DELAY_KINDS = ("constant", "exponential", "lognormal")
COST_KINDS = {"linear": LinearCostModel, "staircase": StaircaseCostModel}
_INF = math.inf


@dataclass(frozen=True)
class DelayConfig:
    """Tool-call or think time before each stage after the first (seconds).

    Attributes:
        kind: ``constant`` (always ``mean_s``), ``exponential`` or ``lognormal`` (with log-std
            ``sigma`` and mean ``mean_s``).
        mean_s: mean delay before clipping (>= 0).
        sigma: lognormal only: std of the log delay (>= 0).
        max_s: clip delays at this value (None: no clip).
    """

    kind: str = "constant"
    mean_s: float = 0.0
    sigma: float = 1.0
    max_s: float | None = None

    def __post_init__(self) -> None:
        check_choice("delay.kind", self.kind, DELAY_KINDS)
        check_nonnegative("delay.mean_s", self.mean_s)
        check_nonnegative("delay.sigma", self.sigma)
        if self.max_s is not None:
            check_nonnegative("delay.max_s", self.max_s)

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """``n`` delays (float64 seconds)."""
        if self.kind == "constant":
            x = np.full(n, float(self.mean_s))
        elif self.kind == "exponential":
            x = rng.standard_exponential(n) * self.mean_s
        else:
            x = self.mean_s * np.exp(self.sigma * rng.standard_normal(n) - self.sigma**2 / 2)
        return x if self.max_s is None else np.minimum(x, self.max_s)

    def mean(self) -> float:
        """Expected delay after clipping."""
        m, c = float(self.mean_s), self.max_s
        if c is None or m == 0.0:
            return m
        if self.kind == "constant":
            return min(m, c)
        if self.kind == "exponential":
            return m * (1.0 - math.exp(-c / m))
        if c == 0.0:
            return 0.0
        s = self.sigma
        if s == 0.0:
            return min(m, c)
        z = (math.log(c / m) + s * s / 2) / s  # standardised log of the clip point
        return m * _normal_cdf(z - s) + c * (1.0 - _normal_cdf(z))


def _normal_cdf(x: float) -> float:
    return 0.5 * math.erfc(-x / math.sqrt(2))


# the WorkloadConfig fields a call's lengths are drawn with
_LENGTH_FIELDS = ("lengths", "prompt_mean", "output_mean", "prompt_sigma", "output_sigma", "max_prompt_len", "max_output_len")


@dataclass(frozen=True)
class CallConfig:
    """One LLM call of a workflow stage: where it runs and how long it is.

    The length fields mean what they mean in :class:`~llmsched_env.sim.workload.WorkloadConfig`
    (``lengths`` is a length kind such as ``poisson``, ``lognormal``, ``fixed`` or a preset name);
    they describe the call's *own* prompt tokens and its output tokens.

    Attributes:
        engine: name of the engine that serves the call.
        context: fraction in [0, 1] of the previous stage's prompt + output tokens (summed over
            its calls) added to this call's prompt (rounded down). 0 for the first stage.
    """

    engine: str
    lengths: str = "poisson"
    prompt_mean: float = 32.0
    output_mean: float = 32.0
    prompt_sigma: float = 1.0
    output_sigma: float = 1.0
    max_prompt_len: int | None = None
    max_output_len: int | None = None
    context: float = 0.0
    workload: WorkloadConfig = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.engine, str) or not self.engine:
            raise fail("engine", self.engine, "the name of an engine of the network")
        check_number("context", self.context, low=0, high=1)
        fields = {f: getattr(self, f) for f in _LENGTH_FIELDS}
        object.__setattr__(self, "workload", WorkloadConfig(**fields, num_requests=1))


@dataclass(frozen=True)
class WorkflowClass:
    """A class of jobs: its arrival process, its stages and the delay between them.

    Attributes:
        name: class name (unique in the network).
        stages: the workflow, a tuple of stages, each a tuple of one call (chain) or several
            parallel calls (fork; the next stage starts when all of them finish).
        rate: Poisson arrival rate (jobs/s). Exactly one of ``rate`` and ``arrival_times``.
        arrival_times: explicit, nondecreasing job arrival times (s), replayed once.
        delay: tool-call / think time before each stage after the first (each call of a stage
            draws its own).
    """

    name: str
    stages: tuple[tuple[CallConfig, ...], ...]
    rate: float | None = None
    arrival_times: tuple[float, ...] | None = None
    delay: DelayConfig = field(default_factory=DelayConfig)

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name or ":" in self.name:
            raise fail("name", self.name, "a non-empty class name without ':'")
        if not isinstance(self.stages, tuple) or not self.stages:
            raise fail("stages", self.stages, "a non-empty tuple of stages")
        for s, stage in enumerate(self.stages):
            if not isinstance(stage, tuple) or not stage or not all(isinstance(c, CallConfig) for c in stage):
                raise fail(f"stages[{s}]", stage, "a non-empty tuple of CallConfig")
            if s == 0 and any(c.context > 0 for c in stage):
                raise fail("stages[0][*].context", [c.context for c in stage], "0 (the first stage has no previous call)")
        if (self.rate is None) == (self.arrival_times is None):
            raise fail("rate", self.rate, "a Poisson rate (jobs/s) or arrival_times, exactly one of them")
        if self.rate is not None:
            check_positive("rate", self.rate)
        if self.arrival_times is not None:
            times = tuple(float(check_nonnegative(f"arrival_times[{i}]", t)) for i, t in enumerate(self.arrival_times))
            if any(b < a for a, b in zip(times, times[1:])):
                raise fail("arrival_times", self.arrival_times, "nondecreasing times")
            object.__setattr__(self, "arrival_times", times)
        if not isinstance(self.delay, DelayConfig):
            raise fail("delay", self.delay, "a DelayConfig")


@dataclass(frozen=True)
class EngineSpec:
    """A named engine of the network: its :class:`EngineConfig` and, optionally, a cost model
    that replaces its hardware preset's (e.g. the constant 1-second iteration of Li–Dai–Peng)."""

    name: str
    engine: EngineConfig = field(default_factory=EngineConfig)
    cost: CostModel | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise fail("name", self.name, "a non-empty engine name")
        if not isinstance(self.engine, EngineConfig):
            raise fail("engine", self.engine, "an EngineConfig")
        if self.cost is not None and not isinstance(self.cost, CostModel):
            raise fail("cost", self.cost, "a CostModel or None")


@dataclass(frozen=True)
class NetworkConfig:
    """A whole network run.

    Attributes:
        engines: the engines, by name.
        classes: the job classes.
        predictor: the output-length predictor the policies see (for every call).
        num_jobs: jobs in the run over all classes (None: until ``max_time_s``).
        max_time_s: stop at this simulated time (None: until every job is done); jobs still in the
            system are reported unfinished, never dropped.
        seed: master seed (each class has its own random streams; common random numbers).
    """

    engines: tuple[EngineSpec, ...]
    classes: tuple[WorkflowClass, ...]
    predictor: PredictorConfig = field(default_factory=PredictorConfig)
    num_jobs: int | None = 1000
    max_time_s: float | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        for name, kind in (("engines", EngineSpec), ("classes", WorkflowClass)):
            value = getattr(self, name)
            if not isinstance(value, tuple) or not value or not all(isinstance(v, kind) for v in value):
                raise fail(name, value, f"a non-empty tuple of {kind.__name__}")
        for name, items in (("engines", self.engines), ("classes", self.classes)):
            names = [item.name for item in items]
            if len(set(names)) != len(names):
                raise fail(f"{name}[*].name", names, "unique names")
        engines = [e.name for e in self.engines]
        for i, wf in enumerate(self.classes):
            for s, stage in enumerate(wf.stages):
                for k, call in enumerate(stage):
                    if call.engine not in engines:
                        raise fail(f"classes[{i}].stages[{s}][{k}].engine", call.engine, "one of " + ", ".join(map(repr, engines)))
        if not isinstance(self.predictor, PredictorConfig):
            raise fail("predictor", self.predictor, "a PredictorConfig")
        if self.num_jobs is not None:
            object.__setattr__(self, "num_jobs", check_positive("num_jobs", self.num_jobs, integer=True))
        if self.max_time_s is not None:
            check_positive("max_time_s", self.max_time_s)
        if self.num_jobs is None and self.max_time_s is None and any(c.rate is not None for c in self.classes):
            raise fail("num_jobs", None, "a job count or a max_time_s (Poisson classes never stop arriving)")
        if not isinstance(self.seed, int) or isinstance(self.seed, bool) or self.seed < 0:
            raise fail("seed", self.seed, "an integer >= 0")

    @property
    def max_time(self) -> float:
        return _INF if self.max_time_s is None else float(self.max_time_s)

    def replace(self, **changes: Any) -> "NetworkConfig":
        return dataclasses.replace(self, **changes)

    def scaled(self, rate_scale: float) -> "NetworkConfig":
        """A copy with every Poisson class rate multiplied by ``rate_scale``."""
        check_positive("rate_scale", rate_scale)
        classes = tuple(
            c if c.rate is None else dataclasses.replace(c, rate=c.rate * rate_scale) for c in self.classes
        )
        return self.replace(classes=classes)

    # -- plain data / YAML -----------------------------------------------------------------------
    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: str = "network") -> "NetworkConfig":
        """Build from nested plain data (as loaded from YAML; see ``configs/network/*.yaml``).

        A stage is a list of calls or a single call (a mapping); an engine is a mapping of its
        name, any :class:`EngineConfig` field and an optional ``cost: {kind: linear | staircase,
        ...}`` with the cost model's fields.
        """
        _check_mapping(data, where)
        check_known_keys(where, data.keys(), [f.name for f in dataclasses.fields(cls)])
        kwargs: dict[str, Any] = dict(data)
        kwargs["engines"] = tuple(_engine_from_dict(e, f"{where}.engines[{i}]") for i, e in enumerate(_seq(data, "engines", where)))
        kwargs["classes"] = tuple(_class_from_dict(c, f"{where}.classes[{i}]") for i, c in enumerate(_seq(data, "classes", where)))
        if "predictor" in data:
            kwargs["predictor"] = dataclass_from_dict(PredictorConfig, data["predictor"], f"{where}.predictor")
        try:
            return cls(**kwargs)
        except ConfigError as err:
            raise ConfigError(f"{where}.{err}") from None

    def to_dict(self) -> dict[str, Any]:
        """Plain data that :meth:`from_dict` turns back into an equal config."""
        engines = []
        for spec in self.engines:
            entry: dict[str, Any] = {"name": spec.name, **dataclasses.asdict(spec.engine)}
            if spec.cost is not None:
                assert dataclasses.is_dataclass(spec.cost)
                kind = next(k for k, v in COST_KINDS.items() if isinstance(spec.cost, v))
                fields = {f.name: getattr(spec.cost, f.name) for f in dataclasses.fields(spec.cost) if f.init}
                if fields.get("decode_only_ms") is not None:
                    fields["decode_only_ms"] = list(fields["decode_only_ms"])
                entry["cost"] = {"kind": kind, **fields}
            engines.append(entry)
        classes = []
        for wf in self.classes:
            entry = {"name": wf.name}
            if wf.rate is not None:
                entry["rate"] = wf.rate
            if wf.arrival_times is not None:
                entry["arrival_times"] = list(wf.arrival_times)
            entry["delay"] = dataclasses.asdict(wf.delay)
            entry["stages"] = [
                [{f.name: getattr(c, f.name) for f in dataclasses.fields(c) if f.init} for c in stage] for stage in wf.stages
            ]
            classes.append(entry)
        return {
            "engines": engines,
            "classes": classes,
            "predictor": dataclasses.asdict(self.predictor),
            "num_jobs": self.num_jobs,
            "max_time_s": self.max_time_s,
            "seed": self.seed,
        }


def _check_mapping(data: Any, where: str) -> None:
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where}: expected a mapping of settings, got {data!r}")


def _seq(data: Mapping[str, Any], key: str, where: str) -> list:
    value = data.get(key)
    if not isinstance(value, (list, tuple)) or not value:
        raise ConfigError(f"{where}.{key}={value!r} is invalid: expected a non-empty list")
    return list(value)


def _engine_from_dict(data: Any, where: str) -> EngineSpec:
    _check_mapping(data, where)
    engine_fields = [f.name for f in dataclasses.fields(EngineConfig)]
    check_known_keys(where, data.keys(), ["name", "cost", *engine_fields])
    rest = {k: v for k, v in data.items() if k not in ("name", "cost")}
    cost = None
    if data.get("cost") is not None:
        spec = data["cost"]
        _check_mapping(spec, f"{where}.cost")
        kind = spec.get("kind")
        if kind not in COST_KINDS:
            raise fail(f"{where}.cost.kind", kind, "one of " + ", ".join(map(repr, COST_KINDS)))
        cost = dataclass_from_dict(COST_KINDS[kind], {k: v for k, v in spec.items() if k != "kind"}, f"{where}.cost")
    try:
        return EngineSpec(name=data.get("name"), engine=dataclass_from_dict(EngineConfig, rest, where), cost=cost)
    except ConfigError as err:
        raise ConfigError(f"{where}.{err}") from None


def _class_from_dict(data: Any, where: str) -> WorkflowClass:
    _check_mapping(data, where)
    check_known_keys(where, data.keys(), [f.name for f in dataclasses.fields(WorkflowClass)])
    stages = []
    for s, stage in enumerate(_seq(data, "stages", where)):
        calls = [stage] if isinstance(stage, Mapping) else stage
        if not isinstance(calls, (list, tuple)) or not calls:
            raise ConfigError(f"{where}.stages[{s}]={stage!r} is invalid: expected a call (mapping) or a list of calls")
        stages.append(tuple(dataclass_from_dict(CallConfig, c, f"{where}.stages[{s}][{k}]") for k, c in enumerate(calls)))
    kwargs = dict(data, stages=tuple(stages))
    if "delay" in data:
        kwargs["delay"] = dataclass_from_dict(DelayConfig, data["delay"], f"{where}.delay")
    if data.get("arrival_times") is not None:
        kwargs["arrival_times"] = tuple(data["arrival_times"])
    try:
        return WorkflowClass(**kwargs)
    except ConfigError as err:
        raise ConfigError(f"{where}.{err}") from None


def load_network_config(path: str | Path) -> NetworkConfig:
    """Read a :class:`NetworkConfig` from a YAML file (layout: ``configs/network/*.yaml``)."""
    return NetworkConfig.from_dict(load_yaml(path), where=str(path))


# ------------------------------------------------------------------------------------------------
# Buffers: the queueing classes of the network


@dataclass(frozen=True)
class Buffer:
    """One buffer (queueing class) of the network: the calls of one class at one stage and fork
    position. ``label`` is ``class:stage`` (1-based), or ``class:stage.call`` inside a fork."""

    index: int
    cls: int
    stage: int
    call: int
    engine: int
    label: str
    last: bool  # the job's last stage
    downstream: tuple[int, ...]  # buffers of the next stage
    mean_prompt: float  # expected prompt tokens, context included
    mean_output: float


def network_buffers(config: NetworkConfig) -> list[Buffer]:
    """The buffers of a network, class by class, stage by stage (their ``index`` order)."""
    engines = {e.name: i for i, e in enumerate(config.engines)}
    buffers: list[Buffer] = []
    for c, wf in enumerate(config.classes):
        first = len(buffers)
        offsets = np.cumsum([0] + [len(stage) for stage in wf.stages]).tolist()
        previous_total = 0.0  # expected prompt + output tokens of the previous stage
        for s, stage in enumerate(wf.stages):
            total = 0.0
            for k, call in enumerate(stage):
                own, output = mean_lengths(call.workload)
                prompt = own + call.context * previous_total
                total += prompt + output
                last = s == len(wf.stages) - 1
                downstream = () if last else tuple(range(first + offsets[s + 1], first + offsets[s + 2]))
                label = f"{wf.name}:{s + 1}" if len(stage) == 1 else f"{wf.name}:{s + 1}.{k + 1}"
                buffers.append(Buffer(len(buffers), c, s, k, engines[call.engine], label, last, downstream, prompt, output))
            previous_total = total
    return buffers
