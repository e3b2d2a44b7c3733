"""The one-call API: run a simulation from a config with a policy and a seed.

>>> from llmsched_env.sim import SimConfig, simulate
>>> result = simulate(SimConfig(load=0.8), seed=1)
>>> result.summary["e2e_mean_s"], result.summary["output_tokens_per_s"]

Common random numbers: the seed is split into independent streams for arrivals, lengths and
predictions (``llmsched_env.sim.streams``), so every policy run with the same config and seed serves exactly the same requests
and sees exactly the same predictions.
"""

from __future__ import annotations

import gc
import math
from dataclasses import dataclass
from typing import Callable, Iterable, Iterator

import numpy as np

from .capacity import sustainable_rate
from .config import SimConfig
from .cost import CostModel, ResolvedHardware, resolve_hardware
from .engine import Engine, EngineStats
from .engine_config import EngineConfig
from .metrics import SLO, StreamingSummary, TimeSeries, summarize
from .policy import FCFS, Policy
from .predictors import Predictor, make_predictor
from .prefix_cache import prefix_summary
from .request import RecordBuffer, Request, RequestBatch
from .streams import child, generator
from .validation import ConfigError
from .workload import generate, sample_lengths

RECORD_CHUNK = 4096  # records handed to the streaming summary at a time
# the child streams of a run's seed (llmsched_env.sim.streams)
WORKLOAD_STREAM = 0
PREDICTION_STREAM = 1


def arrival_rate(config: SimConfig, cost_model: CostModel | None = None) -> tuple[float | None, float | None]:
    """(arrival rate in requests/s, sustainable rate) for a config; rate None keeps a trace's timing."""
    if config.rate is not None:
        return config.rate, None
    if config.load is None:
        return None, None
    capacity = sustainable_rate(config.engine, config.workload, cost_model)
    return config.load * capacity, capacity


def request_stream(config: SimConfig, rate: float | None, seed: int) -> Iterator[RequestBatch]:
    """The workload's request chunks with predictions filled in (common random numbers)."""
    predictor = make_predictor(config.predictor)
    rng = generator(seed, PREDICTION_STREAM)
    ttft, tpot = config.class_targets()
    has_targets = any(math.isfinite(t) for t in ttft + tpot)
    ttft_table, tpot_table = np.asarray(ttft), np.asarray(tpot)
    for batch in generate(config.workload, rate, child(seed, WORKLOAD_STREAM)):
        predictor.annotate(batch, rng)
        if has_targets:  # each request's own targets (its class's, else the run's)
            classes = batch.slo_class if batch.slo_class is not None else np.full(len(batch), -1, dtype=np.int64)
            batch.ttft_slo_s = ttft_table[classes]  # class -1 picks the last entry: the run's targets
            batch.tpot_slo_s = tpot_table[classes]
        yield batch


def check_fits(config: SimConfig, num_blocks: int, sample: int = 1000) -> None:
    """Reject a KV cache, or a token budget, too small for the workload's prompts.

    A single request that can never fit is rejected at run time and counted; a cache smaller than
    most prompts of the workload is a configuration mistake, reported here with the numbers. So is,
    for the rules that cannot chunk a prefill (``orca``, ``vllm``, ``static``), a token budget below
    more than 1 % of the prompts (vLLM V0 refuses ``max_num_batched_tokens < max_model_len``
    without chunked prefill for the same reason).
    """
    prompt, _ = sample_lengths(config.workload, sample, config.seed)
    engine = config.engine
    if engine.batching != "sarathi":
        over_budget = int(np.count_nonzero(np.asarray(prompt) > engine.max_num_batched_tokens))
        if over_budget * 100 > len(prompt):
            raise ConfigError(
                f"max_num_batched_tokens={engine.max_num_batched_tokens} is invalid for batching={engine.batching!r}: "
                f"{over_budget} of {len(prompt)} sampled prompts of workload lengths={config.workload.lengths!r} are "
                f"longer, and this rule cannot chunk a prefill, so they would all be rejected; expected at least "
                f"{int(np.percentile(prompt, 99.9)) + 1} (or batching='sarathi')"
            )
    capacity_tokens = num_blocks * engine.block_size
    too_long = int(np.count_nonzero(np.asarray(prompt) > capacity_tokens))
    if too_long * 2 > len(prompt):
        raise ConfigError(
            f"num_gpu_blocks={num_blocks} holds {capacity_tokens} tokens of KV, smaller than the prompt of "
            f"{too_long} of {len(prompt)} sampled requests of workload lengths={config.workload.lengths!r} "
            f"(median prompt {int(np.median(prompt))} tokens): expected a KV cache of at least "
            f"{int(np.max(prompt)) // engine.block_size + 1} blocks, or a shorter workload"
        )


@dataclass
class SimResult:
    """Outcome of one run: per-request records, the summary dict and the engine's counters."""

    config: SimConfig
    policy: str
    seed: int
    rate: float | None  # arrival rate used (requests/s); None: a trace's own timing
    capacity: float | None  # the engine's sustainable rate for this length mix (requests/s)
    summary: dict
    records: dict[str, np.ndarray] | None  # None when keep_records=False
    stats: EngineStats
    series: TimeSeries
    livelock: str = ""  # why the run was stopped as a livelock, with its figures ("": it was not)


def livelock_summary(engine: Engine, summary: dict) -> None:
    """Add the run's livelock verdict to ``summary``: ``livelock`` (1 if the engine stopped the
    run because no request finished over its bound of preemptions, else 0) and, then,
    ``stability = "livelock"`` (the unfinished requests are counted in ``unfinished``)."""
    summary["livelock"] = int(engine.stats.livelock)
    if engine.stats.livelock:
        summary["stability"] = "livelock"


def build_engine(
    config: SimConfig,
    policy: Policy | None = None,
    *,
    seed: int | None = None,
    cost_model: CostModel | None = None,
    on_record: Callable[[Request], None] | None = None,
    series: TimeSeries | None = None,
) -> tuple[Engine, float | None, float | None]:
    """An engine ready to run ``config`` (used by :func:`simulate` and the environments).

    Returns ``(engine, arrival_rate, sustainable_rate)``.
    """
    seed = config.seed if seed is None else seed
    if not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ConfigError(f"seed={seed!r} is invalid: expected an integer >= 0")
    hw = resolve_hardware(config.engine, cost_model)
    check_fits(config, hw.num_blocks)
    rate, capacity = arrival_rate(config, cost_model)
    engine = engine_on(
        config.engine,
        hw,
        request_stream(config, rate, int(seed)),
        policy,
        make_predictor(config.predictor),
        on_record=on_record,
        on_stretch=series.observe if series is not None else None,
        decision_interval=config.decision_interval,
        max_time=config.max_time,
    )
    return engine, rate, capacity


def engine_on(
    engine: EngineConfig,
    hw: ResolvedHardware,
    workload: Iterable[RequestBatch],
    policy: Policy | None,
    predictor: Predictor,
    *,
    on_record: Callable[[Request], None] | None,
    on_stretch: Callable[..., None] | None,
    max_time: float,
    decision_interval: int = 0,
) -> Engine:
    """The engine of ``engine`` on the resolved hardware ``hw`` serving ``workload`` (request
    chunks; ``[]`` for an engine fed only by :meth:`Engine.submit`, a member of a co-simulation:
    the replicas of :mod:`.cluster`, the engines of :mod:`.network`), charging the predictions of
    ``predictor``. The one place an engine is wired to its hardware."""
    return Engine(
        engine,
        hw.cost,
        hw.num_blocks,
        workload,
        policy,
        swap_block_bytes=hw.swap_block_bytes,
        swap_seconds_per_block=hw.swap_seconds_per_block,
        refresh_every=predictor.refresh_every,
        prediction_cost_s=predictor.cost_s,
        on_record=on_record,
        on_stretch=on_stretch,
        decision_interval=decision_interval,
        max_time=max_time,
    )


def simulate(
    config: SimConfig | None = None,
    policy: Policy | None = None,
    *,
    seed: int | None = None,
    cost_model: CostModel | None = None,
) -> SimResult:
    """Run one simulation and return its records and summary.

    Args:
        config: the run (default :class:`SimConfig()`: the default engine and workload at load 0.9).
        policy: a scheduling policy (default FCFS).
        seed: overrides ``config.seed``.
        cost_model: a custom iteration-time model replacing the hardware preset's.
    """
    config = config if config is not None else SimConfig()
    policy = policy if policy is not None else FCFS()
    seed = config.seed if seed is None else seed
    series = TimeSeries()
    slo = SLO(ttft_s=config.slo_ttft_s, tpot_s=config.slo_tpot_s)
    buffer = RecordBuffer()
    streaming = None if config.keep_records else StreamingSummary(slo, config.class_names)

    def on_record(r: Request) -> None:
        buffer.append(r)
        series.add_arrival(r.arrival)
        if streaming is not None and len(buffer) >= RECORD_CHUNK:
            streaming.add(buffer.to_arrays())
            buffer.clear()

    engine, rate, capacity = build_engine(
        config, policy, seed=seed, cost_model=cost_model, on_record=on_record, series=series
    )
    # A run allocates one object per request and frees them by reference counting; the cyclic
    # collector would only rescan live requests again and again (25 % of a 100k-request run).
    collecting = gc.isenabled()
    gc.disable()
    try:
        engine.run()
    finally:
        if collecting:
            gc.enable()
    hw = resolve_hardware(config.engine, cost_model)
    duration = engine.now
    series.arrivals_end_s = engine.last_arrival_time
    series.arrivals = engine.arrived
    if streaming is not None:
        if len(buffer):
            streaming.add(buffer.to_arrays())
        summary = streaming.result(series, duration, slo, kv_bytes_per_block=hw.kv_bytes_per_block)
        records = None
    else:
        records = buffer.to_arrays()
        summary = summarize(
            records, series, duration=duration, slo=slo, kv_bytes_per_block=hw.kv_bytes_per_block, class_names=config.class_names
        )
    summary["arrival_rate_per_s"] = math.nan if rate is None else float(rate)
    summary["capacity_per_s"] = math.nan if capacity is None else float(capacity)
    summary["iterations"] = engine.stats.iterations
    summary["events"] = engine.stats.stretches
    summary["swap_fallbacks"] = engine.stats.swap_fallbacks
    livelock_summary(engine, summary)
    summary.update(prefix_summary(engine.stats, engine.prefix_cache))
    return SimResult(
        config=config,
        policy=getattr(policy, "name", type(policy).__name__),
        seed=int(seed),
        rate=rate,
        capacity=capacity,
        summary=summary,
        records=records,
        stats=engine.stats,
        series=series,
        livelock=engine.livelock,
    )
