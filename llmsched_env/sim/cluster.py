"""Serving clusters: several engine replicas behind a router (``llmsched/Cluster-v0``).

Every replica is a full :class:`~llmsched_env.sim.engine.Engine` with its own hardware preset
(heterogeneous replicas allowed), batching rule, KV cache (with or without prefix caching) and
scheduling policy. One workload arrives at the cluster; a *router* sends each request, at its
arrival, to one replica, where it stays (no migration). Routers see every replica's queue,
running batch, KV use and how much of the arriving prompt it has cached
(:meth:`Cluster.prefix_overlap`), as the cache-aware routers of SGLang and llm-d do.

Co-simulation, as in :mod:`llmsched_env.sim.network`: each engine keeps its own clock. Before a
request arriving at ``t`` is routed, every replica is advanced with ``horizon = t`` (a stretch
stops at the first iteration boundary at or after ``t``), so no replica has built a batch after
``t`` without knowing about the request; the router then sees each replica as it is at that
boundary (the state the request meets when it joins the next batch there) and the request is
submitted to the chosen one. Once the workload is exhausted the replicas run on independently.

The reward of the environment is minus the requests in the system integrated over time; here
that is the sum of the replicas' ``Engine.area`` (each request is counted from its arrival to its
departure), so the undiscounted return is minus the total response time (Little's law).

Determinism: the workload and predictions come from ``seed`` exactly as in
:func:`~llmsched_env.sim.api.simulate` (common random numbers: every router serves the same
requests); a randomised router draws from its own generator seeded by :meth:`Router.reset`.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any, Iterator, Protocol, Sequence

import numpy as np

from .api import engine_on, request_stream
from .capacity import sustainable_rate
from .config import SimConfig
from .cost import CostModel, resolve_hardware
from .engine import Engine
from .engine_config import EngineConfig
from .metrics import SLO, TimeSeries, summarize
from .policy import FCFS, Policy
from .predictors import PredictorConfig, make_predictor
from .prefix_cache import engine_chain, prefix_summary
from .request import RecordBuffer, Request, RequestBatch
from .validation import ConfigError, check_nonnegative, check_positive, fail
from .workload import WorkloadConfig

_INF = math.inf


@dataclass(frozen=True)
class ClusterConfig:
    """A cluster run.

    Attributes:
        replicas: one :class:`EngineConfig` per replica (its hardware, limits, caching...).
        workload: what arrives at the cluster.
        predictor: the output-length predictor the policies and routers see.
        load: arrival rate as a fraction of the sum of the replicas' sustainable rates for this
            length mix (``capacity.sustainable_rate``); exactly one of ``load`` and ``rate``, or
            neither for a trace replayed with its own timing.
        rate: arrival rate (requests/s).
        max_time_s: stop at this simulated time (requests still in the system are unfinished).
        slo_ttft_s, slo_tpot_s: SLO targets for the summary's attainment figures.
        seed: master seed of the workload and predictions.
    """

    replicas: tuple[EngineConfig, ...] = (EngineConfig(), EngineConfig())
    workload: WorkloadConfig = field(default_factory=WorkloadConfig)
    predictor: PredictorConfig = field(default_factory=PredictorConfig)
    load: float | None = 0.8
    rate: float | None = None
    max_time_s: float | None = None
    slo_ttft_s: float | None = None
    slo_tpot_s: float | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        replicas = self.replicas
        if isinstance(replicas, list):
            object.__setattr__(self, "replicas", tuple(replicas))
        if not isinstance(self.replicas, tuple) or not self.replicas or not all(isinstance(e, EngineConfig) for e in self.replicas):
            raise fail("replicas", replicas, "a non-empty sequence of EngineConfig (one per replica)")
        if not isinstance(self.workload, WorkloadConfig):
            raise fail("workload", self.workload, "a WorkloadConfig")
        if not isinstance(self.predictor, PredictorConfig):
            raise fail("predictor", self.predictor, "a PredictorConfig")
        if self.load is not None and self.rate is not None:
            raise fail("load", self.load, "None when rate is given (exactly one of load and rate)")
        if self.load is not None:
            check_positive("load", self.load)
        if self.rate is not None:
            check_positive("rate", self.rate)
        if self.load is None and self.rate is None and self.workload.arrival != "trace":
            raise fail("load", None, "a load or a rate (only arrival='trace' keeps its own timing)")
        if self.max_time_s is not None:
            check_positive("max_time_s", self.max_time_s)
        object.__setattr__(self, "seed", check_nonnegative("seed", self.seed, integer=True))

    @property
    def num_replicas(self) -> int:
        return len(self.replicas)

    def sim_config(self, replica: int = 0) -> SimConfig:
        """The single-engine :class:`SimConfig` of one replica serving this workload."""
        return SimConfig(
            engine=self.replicas[replica],
            workload=self.workload,
            predictor=self.predictor,
            load=None,
            rate=self.arrival_rate(),
            slo_ttft_s=self.slo_ttft_s,
            slo_tpot_s=self.slo_tpot_s,
            seed=self.seed,
        )

    def capacity(self) -> float:
        """Sum of the replicas' sustainable rates for this length mix (requests/s)."""
        return float(sum(sustainable_rate(e, self.workload) for e in self.replicas))

    def arrival_rate(self) -> float | None:
        """Requests/s (None: a trace's own timing)."""
        if self.rate is not None:
            return float(self.rate)
        if self.load is None:
            return None
        return self.load * self.capacity()

    def replace(self, **changes: Any) -> "ClusterConfig":
        return dataclasses.replace(self, **changes)


class Router(Protocol):
    """Chooses a replica for each arriving request (see ``baselines.routing``)."""

    name: str

    def reset(self, seed: int) -> None:
        """Start of a run (seeds a randomised router)."""

    def route(self, request: Request, cluster: "Cluster") -> int:
        """Index of the replica that serves ``request`` (arriving now)."""


@dataclass
class ClusterResult:
    """Outcome of a cluster run: the summary over all requests, per replica, and the records."""

    config: ClusterConfig
    router: str
    seed: int
    summary: dict
    replica_summaries: list[dict]
    records: dict[str, np.ndarray]
    routed: list[int]


class Cluster:
    """Replicas co-simulated in time order, fed by one workload; the router picks a replica per
    arrival.

    Drive it with :meth:`run` (a :class:`Router`), or step by step (as the environment does):
    :meth:`next_arrival` advances every replica to the next arrival and returns that request
    (None once the workload is exhausted), :meth:`assign` sends it to a replica, and
    :meth:`finish` drains the replicas and summarises.

    Args:
        config: the cluster and its workload.
        policies: one scheduling policy per replica (default FCFS on each).
        seed: overrides ``config.seed``.
        costs: per replica, a cost model replacing its hardware preset's (None: the preset's);
            the arrival rate for ``load`` still comes from the presets, so give ``rate`` with them.
    """

    def __init__(
        self,
        config: ClusterConfig,
        policies: Sequence[Policy] | None = None,
        *,
        seed: int | None = None,
        costs: Sequence[CostModel | None] | None = None,
    ) -> None:
        if not isinstance(config, ClusterConfig):
            raise fail("config", type(config).__name__, "a ClusterConfig")
        self.config = config
        self.seed = config.seed if seed is None else int(seed)
        object.__setattr__(self, "seed", check_nonnegative("seed", self.seed, integer=True))
        n = config.num_replicas
        if policies is None:
            policies = [FCFS() for _ in range(n)]
        if len(policies) != n:
            raise ConfigError(f"policies: got {len(policies)} policies for {n} replicas: expected one per replica")
        if costs is None:
            costs = [None] * n
        if len(costs) != n:
            raise ConfigError(f"costs: got {len(costs)} cost models for {n} replicas: expected one per replica (None: the preset's)")
        self.max_time = _INF if config.max_time_s is None else float(config.max_time_s)
        predictor = make_predictor(config.predictor)
        self.rate = config.arrival_rate()
        self.engines: list[Engine] = []
        self.records = [RecordBuffer() for _ in range(n)]
        self.series = [TimeSeries() for _ in range(n)]
        self._kv_bytes: list[float] = []
        for i, (engine_config, policy, cost) in enumerate(zip(config.replicas, policies, costs)):
            hw = resolve_hardware(engine_config, cost)
            self._kv_bytes.append(hw.kv_bytes_per_block)
            self.engines.append(
                engine_on(
                    engine_config,
                    hw,
                    [],
                    policy,
                    predictor,
                    on_record=self.records[i].append,
                    on_stretch=self.series[i].observe,
                    max_time=self.max_time,
                )
            )
        self.block_sizes = [e.block_size for e in self.engines]
        self.routed = [0] * n  # requests sent to each replica
        self.arrived = 0
        self.time = 0.0  # arrival time of the latest request handed out
        self._stream = self._requests(dataclasses.replace(config.sim_config(), rate=self.rate), self.rate)
        self._next: Request | None = None
        self._chains: dict[int, list[int]] = {}  # the pending request's chain per block size
        self._pending_chain: dict[int, tuple[list[int], int]] = {}
        self._finished = False

    # ------------------------------------------------------------------------------ workload
    def _requests(self, sim: SimConfig, rate: float | None) -> Iterator[Request]:
        for batch in request_stream(sim, rate, self.seed):
            yield from self._batch_requests(batch)

    def _batch_requests(self, batch: RequestBatch) -> Iterator[Request]:
        assert batch.predicted_len is not None
        refresh_offsets = batch.refresh_offsets.tolist() if batch.refresh_offsets is not None else None
        hash_offsets = batch.block_hash_offsets.tolist() if batch.block_hash_offsets is not None else None
        rows = zip(batch.arrival_time.tolist(), batch.prompt_len.tolist(), batch.output_len.tolist(), batch.predicted_len.tolist())
        for j, (arrival, prompt, output, predicted) in enumerate(rows):
            refresh = None
            if refresh_offsets is not None and batch.refresh_values is not None:
                lo, hi = refresh_offsets[j], refresh_offsets[j + 1]
                refresh = batch.refresh_values[lo:hi].tolist() if hi > lo else None
            r = Request(batch.first_id + j, arrival, prompt, output, predicted, refresh)
            if hash_offsets is not None and batch.block_hash_values is not None:
                lo, hi = hash_offsets[j], hash_offsets[j + 1]
                self._pending_chain[r.id] = (batch.block_hash_values[lo:hi].tolist(), int(batch.block_hash_size))
            yield r

    def chain(self, request: Request, block_size: int) -> list[int] | None:
        """The arriving request's hash chain in blocks of ``block_size`` tokens (None: none)."""
        source = self._pending_chain.get(request.id)
        if source is None:
            return None
        chain = self._chains.get(block_size)
        if chain is None:
            chain = engine_chain(source[0], source[1], block_size, request.prompt_len + request.output_len)
            self._chains[block_size] = chain
        return chain

    # ------------------------------------------------------------------------------ stepping
    def next_arrival(self) -> Request | None:
        """Advance every replica to the next arrival and return that request, to be routed with
        :meth:`assign` (None once the workload is exhausted or the time limit is reached)."""
        if self._next is not None:
            return self._next
        r = next(self._stream, None)
        if r is None or r.arrival >= self.max_time:
            return None
        for engine in self.engines:
            while engine.now < r.arrival and engine.advance(r.arrival):
                pass
        self._next = r
        self._chains = {}
        self.time = r.arrival
        return r

    def assign(self, replica: int) -> None:
        """Send the request returned by :meth:`next_arrival` to ``replica``."""
        r = self._next
        if r is None:
            raise ConfigError("assign: no request is waiting to be routed (call next_arrival first)")
        if not (isinstance(replica, (int, np.integer)) and 0 <= replica < len(self.engines)):
            raise fail("replica", replica, f"an integer in [0, {len(self.engines) - 1}]")
        replica = int(replica)
        engine = self.engines[replica]
        if engine.prefix_cache is not None:
            r.block_hashes = self.chain(r, engine.block_size)
        self._pending_chain.pop(r.id, None)
        engine.submit(r)
        if engine.now >= r.arrival:
            engine.admit_arrivals()  # it joins the batch built at the replica's clock
        self.routed[replica] += 1
        self.arrived += 1
        self._next = None

    def run(self, router: Router) -> ClusterResult:
        """Route every arrival with ``router`` and run to the end."""
        router.reset(self.seed)
        while True:
            r = self.next_arrival()
            if r is None:
                break
            self.assign(router.route(r, self))
        return self.finish(getattr(router, "name", type(router).__name__))

    def finish(self, router_name: str = "router") -> ClusterResult:
        """Run every replica to the end (no more arrivals), report unfinished requests and
        summarise (call once)."""
        if self._finished:
            raise ConfigError("finish: the run is already finished")
        self._finished = True
        for engine in self.engines:
            while engine.advance():
                pass
            engine.finish_run()
        return self._result(router_name)

    # ------------------------------------------------------------------------------ views
    @property
    def area(self) -> float:
        """Integral of the requests in the system over time, summed over the replicas (request-s)."""
        return float(sum(e.area for e in self.engines))

    @property
    def in_system(self) -> int:
        return sum(len(e.live) for e in self.engines)

    def outstanding(self, replica: int) -> int:
        """Requests routed to ``replica`` that have not left it (queued, running or swapped)."""
        e = self.engines[replica]
        return len(e.live) + len(e._submitted)

    def waiting(self, replica: int) -> int:
        """Requests at ``replica`` holding no KV (queued for admission)."""
        e = self.engines[replica]
        return len(e.live) - len(e.holders) - e.n_swapped + len(e._submitted)

    def kv_used(self, replica: int) -> float:
        """Fraction of ``replica``'s KV blocks held by requests (cached, unreferenced blocks count
        as free: they are evicted when memory is needed)."""
        e = self.engines[replica]
        return 1.0 - e.free_blocks / e.num_blocks

    def prefix_overlap(self, replica: int, request: Request) -> float:
        """Fraction of ``request``'s prompt tokens cached at ``replica`` (0 without caching)."""
        e = self.engines[replica]
        cache = e.prefix_cache
        if cache is None:
            return 0.0
        chain = self.chain(request, e.block_size)
        if not chain:
            return 0.0
        cache.settle(e.free_blocks)  # evictions the replica's latest allocations implied
        hit, _ = cache.match(chain, (request.prompt_len - 1) // e.block_size)
        return hit * e.block_size / request.prompt_len

    def can_serve(self, replica: int, request: Request) -> bool:
        """False if ``replica`` would reject ``request`` (its KV could never hold it)."""
        e = self.engines[replica]
        peak = request.prompt_len + max(request.output_len, 1) - 1
        if -(-peak // e.block_size) > e.num_blocks:
            return False
        return e.chunked or request.prompt_len <= e.max_tokens

    # ------------------------------------------------------------------------------ results
    def _result(self, router_name: str) -> ClusterResult:
        config = self.config
        duration = max(max(e.now for e in self.engines), 1e-12)
        slo = SLO(ttft_s=config.slo_ttft_s, tpot_s=config.slo_tpot_s)
        arrays = [buffer.to_arrays() for buffer in self.records]
        merged = {k: np.concatenate([a[k] for a in arrays]) for k in arrays[0]}
        order = np.argsort(merged["id"], kind="stable")
        merged = {k: v[order] for k, v in merged.items()}
        summary: dict = summarize(merged, None, duration=duration, slo=slo)
        summary["in_system_mean"] = self.area / duration
        summary["arrival_rate_per_s"] = math.nan if self.rate is None else float(self.rate)
        replica_summaries = []
        totals = dict.fromkeys(("prefix_query_tokens", "prefix_hit_tokens", "prefix_query_blocks", "prefix_hit_blocks"), 0)
        for i, (engine, series, records, kv_bytes) in enumerate(zip(self.engines, self.series, arrays, self._kv_bytes)):
            series.arrivals_end_s = engine.last_arrival_time
            series.arrivals = engine.arrived
            s = summarize(records, series, duration=duration, slo=slo, kv_bytes_per_block=kv_bytes)
            s.update(prefix_summary(engine.stats, engine.prefix_cache))
            s["routed"] = self.routed[i]
            replica_summaries.append(s)
            summary[f"replica/{i}/routed_fraction"] = self.routed[i] / max(self.arrived, 1)
            summary[f"replica/{i}/utilization"] = s["busy_fraction"]
            for key in totals:
                totals[key] += getattr(engine.stats, key)
        # the cluster's backlog is the sum of its replicas'; it is stable when every replica is
        verdicts = [s["stability"] for s in replica_summaries]
        summary["stability"] = "unstable" if "unstable" in verdicts else ("stable" if all(v == "stable" for v in verdicts) else "inconclusive")
        summary["backlog_slope_per_s"] = float(sum(s["backlog_slope_per_s"] for s in replica_summaries))
        if any(e.prefix_cache is not None for e in self.engines):
            summary["prefix_hit_rate_tokens"] = totals["prefix_hit_tokens"] / max(totals["prefix_query_tokens"], 1)
            summary["prefix_hit_rate_blocks"] = totals["prefix_hit_blocks"] / max(totals["prefix_query_blocks"], 1)
            summary["prefill_tokens_saved"] = float(totals["prefix_hit_tokens"])
        return ClusterResult(
            config=config,
            router=router_name,
            seed=self.seed,
            summary=summary,
            replica_summaries=replica_summaries,
            records=merged,
            routed=list(self.routed),
        )


def simulate_cluster(config: ClusterConfig, router: Router, policies: Sequence[Policy] | None = None, *, seed: int | None = None) -> ClusterResult:
    """Run one cluster simulation (see :class:`Cluster`)."""
    return Cluster(config, policies, seed=seed).run(router)
