"""MC-SF: memory-constrained shortest first (Jaillet et al. 2025), with an aging guard.

Jaillet, Jiang, Mellou, Molinaro, Podimata and Zhou, "Online Scheduling for LLM Inference with KV
Cache Constraints" (arXiv:2502.07115, 2025). At every batch, the waiting requests are considered
in increasing order of (predicted) output length, and a request is admitted only if, with it, the
KV memory of every admitted request stays within the cache *at every future iteration* until the
requests finish, assuming each decodes one token per iteration up to its predicted length: the
memory of a set is ``sum_j (kv_j + t)`` over the requests still running at iteration ``t``, whose
peak lies just before one of the completions. The first request that does not fit closes
admission for that batch (the paper admits the largest feasible prefix of the sorted queue).
Admitted requests are never preempted by the policy (they rank ahead of every waiting request),
so with accurate predictions the cache never overflows and nothing is recomputed; with noisy
predictions an overflow can still happen, and the engine then preempts the lowest-ranked holder.

Aging guard (``max_wait_s``, this project's addition against starvation: shortest-first policies
let a long request wait without bound under load): a request that has waited ``max_wait_s``
seconds since its arrival without being admitted ranks ahead of every other waiting request, in
arrival order (None: no guard). With the guard the scores change with time, so the policy is
dynamic.

Predictions: the run's predictor (``Request.predicted_output``; refined ones when the predictor
refines). Memory in tokens against the cache's blocks times the block size, less the admission
watermark, with one block of slack per request for its partly filled last block.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Sequence

from llmsched_env.sim.request import Request
from llmsched_env.sim.validation import check_positive

from .base import TIER, Baseline, front, started


def peak_memory(tokens: list[float], remaining: list[float]) -> float:
    """Largest ``sum_j (tokens_j + t)`` over iterations ``t`` at which request j still runs
    (``t < remaining_j``): each request holds its tokens and adds one per iteration until it
    finishes. The peak is just before a completion, at ``t = remaining_k - 1`` for some k."""
    order = sorted(range(len(tokens)), key=lambda j: remaining[j])
    alive_tokens = sum(tokens)
    alive = len(tokens)
    peak = 0.0
    for k in order:  # before the k-th completion, every request finishing at or after it runs
        t = remaining[k] - 1
        peak = max(peak, alive_tokens + alive * t)
        alive_tokens -= tokens[k]
        alive -= 1
    return peak


@dataclasses.dataclass(frozen=True)
class MCSF(Baseline):
    """Memory-constrained shortest (predicted) first with admission control (Jaillet et al. 2025)."""

    max_wait_s: float | None = None  # aging guard: waiting this long puts a request first (None: off)

    key = "mcsf"
    rescore_on_admission = True

    def __post_init__(self) -> None:
        if self.max_wait_s is not None:
            check_positive("mcsf.max_wait_s", self.max_wait_s)

    @property
    def dynamic(self) -> bool:  # type: ignore[override]
        return self.max_wait_s is not None

    def priorities(self, requests: Sequence[Request], now: float) -> list[float]:
        out = []
        for r in requests:
            if started(r):
                out.append(front(r.predicted_output - r.generated))  # admitted: never displaced by a waiting one
            elif self.max_wait_s is not None and now - r.arrival >= self.max_wait_s:
                out.append(-TIER + r.arrival * 1e-3)  # aged: ahead of the other waiting requests, oldest first
            else:
                out.append(r.predicted_output)
        return out

    def admit(self, request: Request, engine: Any) -> bool:
        """Whether ``request`` can join without the cache overflowing before the batch finishes."""
        engine.sync()
        tokens, remaining = [], []
        for h in engine.holders:
            tokens.append(float(max(h.kv_tokens, h.prefill_target)))
            remaining.append(max(math.ceil(h.predicted_output - h.generated), 1))
        tokens.append(float(request.prefill_target))
        remaining.append(max(math.ceil(request.predicted_output - request.generated), 1))
        capacity = (engine.num_blocks - engine.watermark_blocks) * engine.block_size
        # each request's last block is partly empty: count a block of slack per request (blocks, not tokens)
        slack = len(tokens) * (engine.block_size - 1)
        return not engine.holders or peak_memory(tokens, remaining) + slack <= capacity
