"""SPRPT: shortest *predicted* remaining processing time, preemptive (Mitzenmacher & Shahout 2025).

Score = predicted output tokens still to come, ``predicted_output - generated``, re-taken at every
decision epoch, where ``predicted_output`` is the predictor's current estimate of the total output
length (fixed for ``lognormal`` / ``buckets`` predictors, refreshed while decoding by the
``refining`` one). As in the queueing analysis of SPRPT (Mitzenmacher, "Scheduling with
Predictions and the Price of Misprediction", ITCS 2020; Mitzenmacher & Shahout, "Queueing,
Predictions, and LLMs: Challenges and Open Problems", 2025), a request that outlives its prediction
gets a negative predicted remaining time and the highest priority. Preemption is unlimited: a
request with a shorter predicted remaining time evicts longer ones when it needs KV blocks.
"""

from __future__ import annotations

import dataclasses
from typing import Sequence

from llmsched_env.sim.request import Request

from .base import Baseline


@dataclasses.dataclass(frozen=True)
class SPRPT(Baseline):
    """Shortest predicted remaining processing time, preemptive (Mitzenmacher & Shahout 2025)."""

    key = "sprpt"
    dynamic = True  # the predicted remaining time shrinks as a request runs

    def priorities(self, requests: Sequence[Request], now: float) -> list[float]:
        return [r.predicted_output - r.generated for r in requests]
