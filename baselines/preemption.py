"""Baselines that choose how a request is preempted: recompute, swap, or the cheaper of the two.

All three serve requests FCFS (so under memory pressure the latest arrival is the victim, as in
vLLM) and differ only in the preemption mode, through the engine's ``preemption_mode`` hook:

* ``vllm-recompute`` — vLLM's default: free the KV and prefill prompt + generated tokens again
  (Kwon et al., SOSP 2023, §4.5; the engine's ``recompute``).
* ``swap-first`` — move the KV to CPU swap space over PCIe and back (vLLM's ``swap`` mode); when
  the swap space is full the engine falls back to recompute and counts it.
* ``cost-aware`` — per preemption, the mode with the lower estimated time: a swap moves the
  request's KV blocks out and back in at the GPU's PCIe bandwidth (2 x blocks x seconds per block);
  a recompute prefills its KV tokens again, priced by the engine's cost model as the extra time of
  a prefill of that many tokens; a restart would also regenerate every token, so it never wins.
  Swap is chosen only when the swap space can take the request. This is the rule of Kwon et al.
  (§4.5: swap costs grow with the KV, recompute costs with the tokens' compute) turned into a
  per-request decision.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Sequence

from llmsched_env.sim.request import PreemptionMode, Request

from .base import Baseline


@dataclasses.dataclass(frozen=True)
class _FCFSWithMode(Baseline):
    """FCFS order; subclasses choose the preemption mode."""

    def priorities(self, requests: Sequence[Request], now: float) -> list[float]:
        return [r.arrival for r in requests]


@dataclasses.dataclass(frozen=True)
class VLLMRecompute(_FCFSWithMode):
    """vLLM's default preemption: FCFS, the latest arrival recomputed."""

    key = "vllm-recompute"

    def preemption_mode(self, request: Request, engine: Any) -> int:
        return PreemptionMode.RECOMPUTE


@dataclasses.dataclass(frozen=True)
class SwapFirst(_FCFSWithMode):
    """FCFS, preempted requests swapped to CPU memory (recompute when the swap space is full)."""

    key = "swap-first"

    def preemption_mode(self, request: Request, engine: Any) -> int:
        return PreemptionMode.SWAP


def swap_seconds(request: Request, engine: Any) -> float:
    """PCIe time to swap the request's KV out and back in."""
    blocks = -(-request.kv_tokens // engine.block_size)
    return 2.0 * blocks * engine.swap_seconds_per_block


def recompute_seconds(request: Request, engine: Any) -> float:
    """Extra iteration time to prefill the request's KV tokens again (one chunk, no context)."""
    tokens = request.kv_tokens
    if tokens <= 0:
        return 0.0
    cost = engine.cost
    return cost.iteration_time(tokens, tokens * tokens, 0, 0, 0) - cost.iteration_time(0, 0, 0, 1, 1)


@dataclasses.dataclass(frozen=True)
class CostAware(_FCFSWithMode):
    """FCFS, each preemption by the cheaper of swap and recompute (cost model and PCIe bandwidth)."""

    key = "cost-aware"

    def preemption_mode(self, request: Request, engine: Any) -> int:
        blocks = -(-request.kv_tokens // engine.block_size)
        fits = 0 < blocks <= engine.free_swap_blocks
        if fits and swap_seconds(request, engine) < recompute_seconds(request, engine):
            return PreemptionMode.SWAP
        return PreemptionMode.RECOMPUTE
