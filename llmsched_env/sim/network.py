"""Networks of LLM engines serving agent workflows (``llmsched/AgentNetwork-v1``).

A *job* is a workflow of LLM calls: a sequence of *stages*, each stage one call (a chain) or
several calls running in parallel (a fork, joined when all of them finish). Every call runs on a
named engine, a full :class:`~llmsched_env.sim.engine.Engine` with its own cost model and KV
cache. Between stages the job waits for a tool call or think time drawn from its class's delay
distribution. A call's prompt is its own tokens plus ``context`` x the prompt + output tokens of
the previous stage's calls (``context = 1``: the whole conversation so far is sent again).

Queueing view (Li, Dai & Peng 2025, "Throughput-Optimal Scheduling Algorithms for LLM Inference
and AI Agents", §5): every (class, stage, call) is a *buffer* of a multiclass network; a policy
ranks the calls waiting at each engine. On a single engine every work-conserving policy is
throughput-optimal, but in a network the priorities decide stability: in the Rybko–Stolyar
network (preset ``rybko-stolyar``) giving priority to the last stage of each route makes the
backlog grow without bound at load 0.9, while the reverse priorities keep it bounded.

Co-simulation (exact). Each engine keeps its own clock. A call finishing on engine A at time t is
submitted to engine B arriving at t + delay, and B must not have built a batch after that time
without it. The driver keeps, for each engine, the time of its next batch build ``T`` (its clock
while it holds requests, its next known arrival while it is idle, infinity when it has nothing to
do), which is also a lower bound on the time of anything it can still hand to another engine.
It always advances the engine with the smallest ``T`` for one stretch, with ``horizon`` = the
smallest ``T`` of the others (and of the next job arrival): the stretch stops at the first
iteration boundary at or after it, so no batch is ever built after a time at which a request may
still arrive for it. A request that arrives between the end of the last iteration and the clock
of an engine that ran past the horizon joins the batch built at that clock, which is the first
iteration boundary at or after its arrival, exactly as in a single engine
(``tests/test_network.py`` checks hand-computed cases and compares with iteration-by-iteration
stepping).
"""

from __future__ import annotations

import dataclasses
import heapq
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Protocol

import numpy as np

from .api import resolve_hardware
from .config import dataclass_from_dict
from .cost import CostModel, LinearCostModel, StaircaseCostModel
from .engine import Engine
from .engine_config import EngineConfig
from .metrics import SLO, TimeSeries, summarize
from .network_metrics import JobRecordBuffer, job_summary
from .policy import FCFS, Policy
from .predictors import PredictorConfig, make_predictor
from .request import RecordBuffer, Request, RequestBatch, RequestState
from .validation import ConfigError, check_choice, check_known_keys, check_nonnegative, check_number, check_positive, fail
from .workload import WorkloadConfig, mean_lengths, sample_lengths

DELAY_KINDS = ("constant", "exponential", "lognormal")
COST_KINDS = {"linear": LinearCostModel, "staircase": StaircaseCostModel}
JOB_CHUNK = 256  # jobs drawn at a time per class
FINISHED = RequestState.FINISHED
REJECTED = RequestState.REJECTED
_INF = math.inf

# Random streams of a run (children of the run's seed): each class draws its own arrivals, lengths,
# delays and predictions, so changing one class leaves the jobs of the others unchanged.
_ARRIVALS, _LENGTHS, _DELAYS, _PREDICTIONS = range(4)


# ------------------------------------------------------------------------------------------------
# Configuration


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
    from .config import load_yaml

    return NetworkConfig.from_dict(load_yaml(path), where=str(path))


# ------------------------------------------------------------------------------------------------
# Buffers, jobs and calls


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


class Job:
    """One workflow instance. ``plan[s][k]`` = (prompt, output, delay, predicted output, refreshed
    predictions or None) of call ``k`` of stage ``s``, drawn when the job is generated."""

    __slots__ = ("id", "cls", "arrival", "plan", "state", "stage", "pending", "stage_end", "finish_time")

    def __init__(self, cls: int, arrival: float, plan: list) -> None:
        self.id = -1  # set when released, in arrival order
        self.cls = cls
        self.arrival = arrival
        self.plan = plan
        self.state = RequestState.WAITING  # FINISHED, REJECTED (a call could never be served)
        self.stage = 0  # current stage
        self.pending = 0  # calls of the current stage not finished
        self.stage_end = 0.0  # latest finish among the current stage's calls so far
        self.finish_time = math.nan


class Call:
    """What ``Request.meta`` holds for a network call: its job and buffer."""

    __slots__ = ("job", "buffer")

    def __init__(self, job: Job, buffer: Buffer) -> None:
        self.job = job
        self.buffer = buffer


class _ClassStream:
    """Jobs of one class in arrival order, drawn ``JOB_CHUNK`` at a time (vectorised)."""

    def __init__(self, index: int, wf: WorkflowClass, predictor_config: PredictorConfig, seed: int, max_time: float) -> None:
        self.index, self.wf, self.seed, self.max_time = index, wf, seed, max_time
        self.predictor = make_predictor(predictor_config)
        self.rng_gap = np.random.default_rng(self._ss(_ARRIVALS))
        self.rng_delay = np.random.default_rng(self._ss(_DELAYS))
        self.rng_pred = np.random.default_rng(self._ss(_PREDICTIONS))
        self.chunk = 0
        self.last = 0.0
        self.drawn = 0
        self.jobs: list[Job] = []
        self.pos = 0
        self.exhausted = False
        self.cut = False  # some arrivals fell at or after the time limit
        self._refill()

    def _ss(self, *key: int) -> np.random.SeedSequence:
        return np.random.SeedSequence(self.seed, spawn_key=(self.index, *key))

    @property
    def next_arrival(self) -> float:
        return self.jobs[self.pos].arrival if not self.exhausted else _INF

    def pop(self) -> Job:
        job = self.jobs[self.pos]
        self.pos += 1
        if self.pos == len(self.jobs):
            self._refill()
        return job

    def _refill(self) -> None:
        wf = self.wf
        self.jobs, self.pos = [], 0
        if self.cut:  # the last chunk reached the time limit: arrival times only grow
            self.exhausted = True
            return
        if wf.arrival_times is not None:
            times = np.asarray(wf.arrival_times[self.drawn : self.drawn + JOB_CHUNK], dtype=np.float64)
        else:
            assert wf.rate is not None
            times = self.last + np.cumsum(self.rng_gap.standard_exponential(JOB_CHUNK) / wf.rate)
        drawn = len(times)
        times = times[times < self.max_time]  # jobs arriving at or after the time limit never enter
        self.cut = len(times) < drawn
        n = len(times)
        if n == 0:
            self.exhausted = True
            return
        self.drawn += n
        self.last = float(times[-1])
        columns = []  # per stage, per call: lists over the n jobs
        previous = np.zeros(n, dtype=np.int64)  # prompt + output tokens of the previous stage
        for s, stage in enumerate(wf.stages):
            calls, total = [], np.zeros(n, dtype=np.int64)
            for k, call in enumerate(stage):
                own, output = sample_lengths(call.workload, n, self._ss(_LENGTHS, s, k, self.chunk))
                prompt = own + np.floor(call.context * previous).astype(np.int64)
                delay = wf.delay.sample(self.rng_delay, n) if s > 0 else np.zeros(n)
                batch = RequestBatch(arrival_time=np.zeros(n), prompt_len=prompt, output_len=output)
                self.predictor.annotate(batch, self.rng_pred)
                assert batch.predicted_len is not None
                refresh: list = [None] * n
                if batch.refresh_offsets is not None and batch.refresh_values is not None:
                    offsets, values = batch.refresh_offsets.tolist(), batch.refresh_values
                    refresh = [values[a:b].tolist() if b > a else None for a, b in zip(offsets[:-1], offsets[1:])]
                calls.append(list(zip(prompt.tolist(), output.tolist(), delay.tolist(), batch.predicted_len.tolist(), refresh)))
                total += prompt + output
            columns.append(calls)
            previous = total
        self.chunk += 1
        for j, t in enumerate(times.tolist()):
            self.jobs.append(Job(self.index, t, [[calls[j] for calls in stage] for stage in columns]))


class _JobSource:
    """All classes' jobs merged in arrival order, numbered as they are released."""

    def __init__(self, config: NetworkConfig, seed: int) -> None:
        self.streams = [_ClassStream(i, wf, config.predictor, seed, config.max_time) for i, wf in enumerate(config.classes)]
        self.left = config.num_jobs if config.num_jobs is not None else -1  # -1: no job limit
        self.released = 0
        self._heap = [(s.next_arrival, s.index) for s in self.streams if not s.exhausted]
        heapq.heapify(self._heap)

    @property
    def next_arrival(self) -> float:
        return self._heap[0][0] if self._heap and self.left != 0 else _INF

    def pop(self) -> Job:
        _, c = heapq.heappop(self._heap)
        stream = self.streams[c]
        job = stream.pop()
        if not stream.exhausted:
            heapq.heappush(self._heap, (stream.next_arrival, c))
        job.id = self.released
        self.released += 1
        self.left -= 1
        return job


# ------------------------------------------------------------------------------------------------
# Policies


class NetworkPolicy(Protocol):
    """A scheduling policy for a network: one engine policy per engine (``baselines/network.py``).

    ``engine_policies(network)`` is called once when the network is built; the returned policies
    may keep a reference to the network and read its state (e.g. ``network.buffer_calls``) when
    they score requests. A request's ``meta`` is a :class:`Call` (its job and :class:`Buffer`).
    """

    name: str

    def engine_policies(self, network: "Network") -> list[Policy]: ...


class _FCFSEverywhere:
    name = "fcfs"

    def engine_policies(self, network: "Network") -> list[Policy]:
        return [FCFS() for _ in network.engine_names]


# ------------------------------------------------------------------------------------------------
# The network


@dataclass
class NetworkResult:
    """Outcome of a network run.

    ``summary``: job-level metrics (:func:`~llmsched_env.sim.network_metrics.job_summary`) plus
    ``engine/<name>/utilization`` (busy fraction), ``.../calls_in_system_mean``,
    ``.../backlog_slope_per_s`` and ``.../stability``. ``engine_summaries``: each engine's full
    :func:`~llmsched_env.sim.metrics.summarize` dict over its calls. ``jobs``: job records.
    ``series``: jobs in the system over time. ``calls``: per-call log when ``record_calls``.
    """

    config: NetworkConfig
    policy: str
    seed: int
    summary: dict
    engine_summaries: dict[str, dict]
    jobs: dict[str, np.ndarray]
    series: TimeSeries
    engine_series: dict[str, TimeSeries]
    calls: list[tuple] | None


#: Fields of the per-call log kept with ``record_calls=True`` (one tuple per call that entered an engine).
CALL_FIELDS = ("job", "cls", "stage", "call", "engine", "arrival", "prompt_len", "output_len", "finish_time", "state")


class Network:
    """Engines co-simulated in time order, serving the jobs of a :class:`NetworkConfig`.

    Args:
        config: the network and its workload.
        policy: a :class:`NetworkPolicy` (default: FCFS on every engine).
        seed: overrides ``config.seed``.
        record_calls: keep a per-call log (``CALL_FIELDS``) in ``calls``.

    Drive it with :meth:`run`, or step by step with :meth:`advance` / :meth:`run_until_epoch`
    (as the environment does), then :meth:`finish` (once). Between steps, ``time`` is the time up
    to which everything is settled; ``jobs_in_system``, ``class_jobs`` and ``job_area`` refer to it,
    while each engine's clock may be a stretch ahead.
    """

    def __init__(
        self,
        config: NetworkConfig,
        policy: NetworkPolicy | None = None,
        *,
        seed: int | None = None,
        record_calls: bool = False,
    ) -> None:
        if not isinstance(config, NetworkConfig):
            raise fail("config", type(config).__name__, "a NetworkConfig")
        self.config = config
        self.seed = config.seed if seed is None else seed
        object.__setattr__(self, "seed", check_nonnegative("seed", self.seed, integer=True))
        self.policy: NetworkPolicy = policy if policy is not None else _FCFSEverywhere()
        self.buffers = network_buffers(config)
        self._stage_buffer = [[0] * len(wf.stages) for wf in config.classes]  # first buffer of each stage
        for b in self.buffers:
            if b.call == 0:
                self._stage_buffer[b.cls][b.stage] = b.index
        self.engine_names = [e.name for e in config.engines]
        self.max_time = config.max_time
        self.buffer_calls = [0] * len(self.buffers)  # calls submitted (waiting out a delay or at their engine), not finished
        self.class_jobs = [0] * len(config.classes)  # jobs in the system at ``time``, per class
        self.jobs_in_system = 0  # at ``time``
        self.jobs_arrived = 0  # by ``time``
        self.jobs_completed = 0  # by ``time`` (finished or failed)
        self.time = 0.0  # everything before this time is settled (the earliest engine's next build)
        self.job_area = 0.0  # integral of jobs in the system over [0, time] (job-seconds)
        self.series = TimeSeries()  # jobs in the system over time
        self.engine_series = {name: TimeSeries() for name in self.engine_names}
        self.engine_records = {name: RecordBuffer() for name in self.engine_names}
        self.job_records = JobRecordBuffer()
        self.calls: list[tuple] | None = [] if record_calls else None
        self.live_jobs: dict[int, Job] = {}
        self.last_engine = -1  # engine advanced by the last step (-1: jobs were released)
        self.last_job_arrival = 0.0
        self._events: list[tuple[float, int, int, int]] = []  # (time, seq, +1 / -1, class) of job arrivals and departures
        self._seq = 0
        self._next_call_id = 0
        self._source = _JobSource(config, self.seed)
        predictor = make_predictor(config.predictor)
        policies = self.policy.engine_policies(self)
        if len(policies) != len(config.engines):
            raise ConfigError(
                f"policy {getattr(self.policy, 'name', self.policy)!r} gave {len(policies)} engine policies for "
                f"{len(config.engines)} engines: expected one per engine"
            )
        self.engines: list[Engine] = []
        self._kv_bytes: list[float] = []  # bytes of a KV block, per engine (for the swap figures)
        for i, (spec, engine_policy) in enumerate(zip(config.engines, policies)):
            hw = resolve_hardware(spec.engine, spec.cost)
            self._kv_bytes.append(hw.kv_bytes_per_block)
            self.engines.append(
                Engine(
                    spec.engine,
                    hw.cost,
                    hw.num_blocks,
                    [],
                    engine_policy,
                    swap_block_bytes=hw.swap_block_bytes,
                    swap_seconds_per_block=hw.swap_seconds_per_block,
                    refresh_every=predictor.refresh_every,
                    prediction_cost_s=predictor.cost_s,
                    on_record=self._recorder(i),
                    on_stretch=self.engine_series[spec.name].observe,
                    max_time=self.max_time,
                )
            )

    # ------------------------------------------------------------------------------ stepping
    def _next_build(self, engine: Engine) -> float:
        """When ``engine`` builds its next batch (a lower bound on anything it can still hand on)."""
        if engine.now >= engine.max_time:  # the run's time limit, or the engine stopped a livelock
            return _INF
        return engine.now if engine.live else engine.next_arrival

    def advance(self) -> bool:
        """Release the next jobs, or run the engine with the earliest next build for one stretch.
        Returns False (doing nothing) when the run is over."""
        builds = [self._next_build(e) for e in self.engines]
        first = min(builds)
        t_source = self._source.next_arrival
        if t_source <= first and t_source < _INF:
            self._release_jobs(first if first < _INF else t_source)
            self.last_engine = -1
            return True
        if first == _INF:
            return False
        i = builds.index(first)
        builds[i] = t_source
        horizon = min(builds)
        engine = self.engines[i]
        self.last_engine = i
        if engine.live and engine.next_arrival <= engine.now:
            # Requests that arrived during the iteration that took this engine past its horizon
            # were submitted after it admitted arrivals at its clock: they belong to the batch
            # built now (the first iteration boundary at or after their arrival). Engine.advance
            # admits only after a stretch, so admit them here; their admission is a decision
            # epoch, so return before the batch is built (the next step builds it).
            engine.admit_arrivals()
            return True
        engine.advance(horizon)
        self._settle(min(min(self._next_build(e) for e in self.engines), self._source.next_arrival))
        return True

    def run_until_epoch(self) -> bool:
        """Advance until an engine holding requests has a decision epoch pending (an arrival,
        a completion, a preemption...). False when the run is over."""
        while self.advance():
            if self.last_engine >= 0:
                engine = self.engines[self.last_engine]
                if engine.epoch_pending and engine.live:
                    return True
        return False

    def run(self) -> NetworkResult:
        """Run to the end (every job done, or ``max_time_s``) and return the result."""
        while self.advance():
            pass
        return self.finish()

    # ------------------------------------------------------------------------------ jobs
    def _release_jobs(self, until: float) -> None:
        """Hand the jobs arriving by ``until`` to the engines (their first stage arrives with the
        job). No engine builds a batch before ``until``, so they all get there in time."""
        source = self._source
        while source.next_arrival <= until:
            job = source.pop()
            self.live_jobs[job.id] = job
            self.last_job_arrival = job.arrival
            self._push_event(job.arrival, +1, job.cls)
            self._submit_stage(job, job.arrival)

    def _submit_stage(self, job: Job, ready: float) -> None:
        """Submit every call of ``job``'s current stage, each arriving after its own delay."""
        stage = job.stage
        first = self._stage_buffer[job.cls][stage]
        calls = job.plan[stage]
        job.pending = len(calls)
        job.stage_end = -_INF
        for k, (prompt, output, delay, predicted, refresh) in enumerate(calls):
            buffer = self.buffers[first + k]
            r = Request(self._next_call_id, ready + delay, prompt, output, predicted, refresh)
            self._next_call_id += 1
            r.meta = Call(job, buffer)
            self.buffer_calls[buffer.index] += 1
            self.engines[buffer.engine].submit(r)

    def _recorder(self, i: int) -> Callable[[Request], None]:
        records = self.engine_records[self.engine_names[i]]

        def on_record(r: Request) -> None:
            records.append(r)
            call: Call = r.meta  # type: ignore[assignment]
            if self.calls is not None:
                b = call.buffer
                self.calls.append((call.job.id, b.cls, b.stage, b.call, i, r.arrival, r.prompt_len, r.output_len, r.finish_time, int(r.state)))
            if r.state == FINISHED:
                self._call_finished(call, r.finish_time)
            elif r.state == REJECTED:
                self._call_rejected(call, r.arrival)

        return on_record

    def _call_finished(self, call: Call, t: float) -> None:
        self.buffer_calls[call.buffer.index] -= 1
        job = call.job
        if job.state != RequestState.WAITING:
            return  # the job already failed
        job.pending -= 1
        if t > job.stage_end:
            job.stage_end = t
        if job.pending:
            return
        if job.stage + 1 < len(job.plan):
            job.stage += 1
            self._submit_stage(job, job.stage_end)
        else:
            job.state = FINISHED
            job.finish_time = job.stage_end
            self._job_leaves(job, job.stage_end)

    def _call_rejected(self, call: Call, t: float) -> None:
        """An engine can never serve this call (it does not fit its KV cache): the job fails."""
        self.buffer_calls[call.buffer.index] -= 1
        job = call.job
        if job.state == RequestState.WAITING:
            job.state = REJECTED
            job.finish_time = t
            self._job_leaves(job, t)

    def _job_leaves(self, job: Job, t: float) -> None:
        del self.live_jobs[job.id]
        self.job_records.append(job)
        self._push_event(t, -1, job.cls)

    def _push_event(self, t: float, delta: int, cls: int) -> None:
        heapq.heappush(self._events, (t, self._seq, delta, cls))
        self._seq += 1

    def _settle(self, until: float) -> None:
        """Integrate the number of jobs in the system up to ``until`` (every arrival and
        departure before it is known: nothing can still happen before the earliest next build)."""
        events = self._events
        while events and events[0][0] <= until:
            t, _, delta, cls = heapq.heappop(events)
            self._observe_jobs(t)
            self.jobs_in_system += delta
            self.class_jobs[cls] += delta
            if delta > 0:
                self.jobs_arrived += 1
            else:
                self.jobs_completed += 1
        if until < _INF:
            self._observe_jobs(until)

    def _observe_jobs(self, t: float) -> None:
        if t > self.time:
            self.job_area += self.jobs_in_system * (t - self.time)
            self.series.observe(self.time, t, self.jobs_in_system, 0, 0, 0, 0, 0)
            self.time = t

    # ------------------------------------------------------------------------------ results
    @property
    def duration(self) -> float:
        """Length of the run so far: the latest engine clock, and ``max_time_s`` once the run is
        cut by it."""
        end = max(max(e.now for e in self.engines), self.time)
        return max(end, self.max_time) if self.truncated else end

    @property
    def truncated(self) -> bool:
        """True once the time limit cuts the run: an engine reached it, or jobs stopped arriving
        because of it (rather than because the run's ``num_jobs`` were all released)."""
        if self.max_time == _INF:
            return False
        source = self._source
        cut = source.left != 0 and any(s.cut for s in source.streams)
        return cut or any(e.now >= self.max_time for e in self.engines)

    def finish(self) -> NetworkResult:
        """Report unfinished calls and jobs, settle the job count to the end and summarise
        (call once, when :meth:`advance` returns False or to cut a run short)."""
        for engine in self.engines:
            engine.finish_run()
        self._settle(_INF)
        duration = max(self.duration, 1e-12)
        self._observe_jobs(duration)
        for job in self.live_jobs.values():
            self.job_records.append(job)
        self.live_jobs = {}
        self.series.arrivals_end_s = self.last_job_arrival
        self.series.arrivals = self._source.released
        class_names = [c.name for c in self.config.classes]
        summary = job_summary(self.job_records.to_arrays(), self.series, duration=duration, class_names=class_names)
        engine_summaries: dict[str, dict] = {}
        for name, engine, kv_bytes in zip(self.engine_names, self.engines, self._kv_bytes):
            series = self.engine_series[name]
            series.arrivals_end_s = engine.last_arrival_time
            series.arrivals = engine.arrived
            s = summarize(self.engine_records[name].to_arrays(), series, duration=duration, slo=SLO(), kv_bytes_per_block=kv_bytes)
            s["iterations"] = engine.stats.iterations
            s["events"] = engine.stats.stretches
            engine_summaries[name] = s
            summary[f"engine/{name}/utilization"] = s["busy_fraction"]
            summary[f"engine/{name}/calls_in_system_mean"] = s["in_system_mean"]
            summary[f"engine/{name}/backlog_slope_per_s"] = s["backlog_slope_per_s"]
            summary[f"engine/{name}/stability"] = s["stability"]
        return NetworkResult(
            config=self.config,
            policy=getattr(self.policy, "name", type(self.policy).__name__),
            seed=int(self.seed),
            summary=summary,
            engine_summaries=engine_summaries,
            jobs=self.job_records.to_arrays(),
            series=self.series,
            engine_series=self.engine_series,
            calls=self.calls,
        )


def simulate_network(
    config: NetworkConfig, policy: NetworkPolicy | None = None, *, seed: int | None = None, record_calls: bool = False
) -> NetworkResult:
    """Run one network simulation (see :class:`Network`)."""
    return Network(config, policy, seed=seed, record_calls=record_calls).run()
