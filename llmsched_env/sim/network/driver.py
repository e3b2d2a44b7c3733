"""The co-simulation driver of an agent network: engines advanced exactly in time order, calls
handed from engine to engine through their delays, and the run's result.

See :mod:`llmsched_env.sim.network` for the model and the co-simulation argument.
"""

from __future__ import annotations

import heapq
import math
from dataclasses import dataclass
from typing import Callable

import numpy as np

from ..api import engine_on
from ..cost import resolve_hardware
from ..engine import Engine
from ..metrics import SLO, TimeSeries, summarize
from ..predictors import make_predictor
from ..request import RecordBuffer, Request, RequestState
from ..validation import ConfigError, check_nonnegative, fail
from .config import NetworkConfig, network_buffers
from .jobs import Call, Job, _JobSource
from .metrics import JobRecordBuffer, job_summary
from .policy import NetworkPolicy, _FCFSEverywhere

FINISHED = RequestState.FINISHED
REJECTED = RequestState.REJECTED
_INF = math.inf


@dataclass
class NetworkResult:
    """Outcome of a network run.

    ``summary``: job-level metrics (:func:`~llmsched_env.sim.network.metrics.job_summary`) plus
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
        self.seed = check_nonnegative("seed", self.seed, integer=True)
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
                engine_on(
                    spec.engine,
                    hw,
                    [],
                    engine_policy,
                    predictor,
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
