"""Trail: SPRPT on refined predictions with limited preemption (Shahout et al., ICLR 2025).

Shahout, Malach, Liu, Jiang, Yu and Mitzenmacher, "Don't Stop Me Now: Embedding Based Scheduling
for LLMs", ICLR 2025. Requests are ranked by predicted remaining output length, refined while they
decode (from the model's embeddings; here the run's ``refining`` predictor, or the fixed
prediction of any other predictor), but a running request may be preempted only while its age
(tokens generated) is at most ``C`` times its initial predicted length: later in its life its KV
cache is large and evicting it wastes the most memory and work. ``C = 0.8`` was the paper's best;
``C = 0`` leaves only requests that have not produced a token preemptible.

Scores, following the reference implementation (``_trail_priority_value`` and
``_is_trail_preemptible`` in ``sglang.patch`` of github.com/harvard-cns/TRAIL-llm-scheduling):

* while ``generated <= C * initial_prediction``: ``predicted_output - generated``, the refined
  predicted remaining length, which counts down by one per token between refreshes;
* once ``generated > C * initial_prediction`` the request is not preemptible: it moves to the
  front tier (:func:`~baselines.base.front`) so no request may evict it; among such requests the
  order is still by predicted remaining length.

Dynamic (the score moves with every token); ``wakeup`` asks for a decision epoch when a running
request leaves its preemptible window. The reference implementation also preempts when the batch
is full of running requests; this engine preempts only for KV memory (as vLLM does) and lets
decodes keep their batch slots.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Sequence

from llmsched_env.sim.request import Request, RequestState
from llmsched_env.sim.validation import check_number

from .base import Baseline, front

RUNNING = RequestState.RUNNING


@dataclasses.dataclass(frozen=True)
class Trail(Baseline):
    """Trail: SPRPT on refined predictions, preemptible only below C x the initial prediction."""

    C: float = 0.8  # preemption limit as a fraction of the initial predicted length

    key = "trail"
    dynamic = True

    def __post_init__(self) -> None:
        check_number("trail.C", self.C, low=0)

    def priorities(self, requests: Sequence[Request], now: float) -> list[float]:
        C = self.C
        return [
            front(r.predicted_output - r.generated)
            if r.generated > C * r.initial_prediction
            else r.predicted_output - r.generated
            for r in requests
        ]

    def wakeup(self, requests: Sequence[Request], now: float) -> int | None:
        """Iterations until the first running request leaves its preemptible window."""
        C = self.C
        wake: int | None = None
        for r in requests:
            if r.state == RUNNING and not r.in_prefill:
                left = math.floor(C * r.initial_prediction) + 1 - r.generated  # > C * initial from then on
                if left > 0 and (wake is None or left < wake):
                    wake = left
        return wake
