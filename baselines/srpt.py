"""SRPT: shortest remaining processing time with the TRUE output lengths (oracle), preemptive.

Score = output tokens still to generate (``output_len - generated``), re-taken at every decision
epoch. A request with less work left ranks higher and, when it needs KV blocks, evicts the holders
with the most work left (recompute, swap or restart, by the engine's preemption mode). SRPT
minimises mean response time on a single server with free preemption (Schrage 1968); it is the
reference bound the predicted-size policies approach. On an LLM engine preemption is not free
(a recompute re-prefills the prompt and the generated tokens), which the benchmark shows.

It reads ``Request.output_len``, which only oracle policies may do. FastServe's artifact ships the
same oracle (``SRPT`` in ``fastserve/scheduler.py``, github.com/LLMServe/FastServe) as its bound.
"""

from __future__ import annotations

import dataclasses
from typing import Sequence

from llmsched_env.sim.request import Request

from .base import Baseline


@dataclasses.dataclass(frozen=True)
class SRPT(Baseline):
    """Shortest remaining processing time with true lengths (oracle), preemptive."""

    key = "srpt"
    dynamic = True  # the remaining work shrinks as a request runs

    def priorities(self, requests: Sequence[Request], now: float) -> list[float]:
        return [r.output_len - r.generated for r in requests]
