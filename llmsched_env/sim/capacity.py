"""What ``load`` means: the engine's sustainable rate for a length mix.

``load = arrival rate / sustainable rate``. The sustainable rate is *measured on the engine
itself*, not guessed from a formula: we keep the engine saturated (``num_requests`` requests drawn
from the workload's length mix all present at time 0, served FCFS with the work-conserving
``sarathi`` rule, the engine's own limits, KV cache and cost model) and take the completion rate
between the 20th and 80th percentile completions, where the queue is still full and the batch has
reached its steady mix. Li, Dai and Peng (2025) show every work-conserving rule sustains the same
throughput on one engine, so this rate is the capacity of the engine for that mix; it accounts for
the token budget, batch slots, KV capacity and preemptions that a closed formula would miss. Load
0.9 therefore means the same thing on every model, GPU and length mix; loads above 1 overload
the engine. (Non-work-conserving rules — ``vllm``, ``static`` — can be unstable below load 1:
that is the point of Li–Dai–Peng's result, so the rule of the config is deliberately not used here.)

The measurement is deterministic (fixed seed) and cached per (engine, length mix, cost model).
"""

from __future__ import annotations

import dataclasses
from functools import lru_cache

import numpy as np

from .cost import CostModel, resolve_hardware
from .engine import Engine
from .engine_config import EngineConfig
from .request import Request, RequestBatch, RequestState
from .validation import ConfigError
from .workload import WorkloadConfig, sample_lengths

CAPACITY_SAMPLE = 3000  # requests in the saturated run
CAPACITY_SEED = 20250501  # fixed: the capacity is a property of the config, not of the run's seed
_WINDOW = (0.2, 0.8)  # completion quantiles between which the rate is measured


def sustainable_rate(
    engine: EngineConfig,
    workload: WorkloadConfig,
    cost_model: CostModel | None = None,
    num_requests: int = CAPACITY_SAMPLE,
) -> float:
    """Saturated completion rate (requests/s) of ``engine`` on ``workload``'s length mix."""
    # only the length mix matters: normalise the arrival fields so the cache is shared
    lengths_only = dataclasses.replace(workload, num_requests=max(workload.num_requests, 1))
    return _sustainable_rate(engine, lengths_only, cost_model, num_requests)


@lru_cache(maxsize=256)
def _sustainable_rate(engine: EngineConfig, workload: WorkloadConfig, cost_model: CostModel | None, n: int) -> float:
    prompt, output = sample_lengths(workload, n, CAPACITY_SEED)
    batch = RequestBatch(
        arrival_time=np.zeros(n),
        prompt_len=np.asarray(prompt, dtype=np.int64),
        output_len=np.asarray(output, dtype=np.int64),
        predicted_len=np.asarray(output, dtype=np.float64),
    )
    config = dataclasses.replace(engine, batching="sarathi", fast_forward=True)
    hw = resolve_hardware(config, cost_model)
    finish: list[float] = []

    def record(r: Request) -> None:
        if r.state == RequestState.FINISHED:
            finish.append(r.finish_time)

    sim = Engine(
        config,
        hw.cost,
        hw.num_blocks,
        [batch],
        swap_block_bytes=hw.swap_block_bytes,
        swap_seconds_per_block=hw.swap_seconds_per_block,
        on_record=record,
    )
    sim.run()
    if len(finish) < 10:
        raise ConfigError(
            f"workload lengths={workload.lengths!r}: only {len(finish)} of {n} sampled requests fit the engine "
            f"(hardware={engine.hardware!r}, num_gpu_blocks={hw.num_blocks}, "
            f"max_num_batched_tokens={engine.max_num_batched_tokens}); cannot define its capacity"
        )
    times = np.sort(np.asarray(finish))
    lo = int(_WINDOW[0] * len(times))
    hi = int(_WINDOW[1] * len(times)) - 1
    span = times[hi] - times[lo]
    if span <= 0:
        return float((hi - lo) / max(times[-1], 1e-12))
    return float((hi - lo) / span)
