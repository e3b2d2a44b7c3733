"""FCFS: first come, first served, non-preemptive (vLLM's default scheduling order).

Requests are served in arrival order (score = arrival time). A request that has been admitted
arrived before every request that has not, so nobody is ever preempted to make room for a later
arrival; when the KV cache runs out, the request that needs a block evicts the lowest-ranked
holder, i.e. the latest arrival, as vLLM's scheduler does (it preempts the tail of its running
queue). The order is the engine's default, :class:`llmsched_env.sim.policy.FCFS`, whose
``priorities`` this baseline uses; this class adds the baseline's registry name and parameters.

Source: vLLM (Kwon et al., "Efficient Memory Management for Large Language Model Serving with
PagedAttention", SOSP 2023), scheduler policy ``fcfs``.
"""

from __future__ import annotations

import dataclasses

from llmsched_env.sim import policy

from .base import Baseline


@dataclasses.dataclass(frozen=True)
class FCFS(Baseline):
    """First come, first served, non-preemptive (vLLM's default order)."""

    key = "fcfs"
    dynamic = False

    priorities = policy.FCFS.priorities  # score = arrival time
