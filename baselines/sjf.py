"""SJF: shortest *predicted* job first, non-preemptive (SSJF, Qiu et al. 2024).

Speculative shortest job first (Qiu et al., "Efficient Interactive LLM Serving with Proxy
Model-based Sequence Length Prediction", AIOps @ ASPLOS 2024): a proxy model predicts each
request's output length once, on arrival, and the scheduler admits waiting requests in increasing
order of that prediction; admitted requests run to completion, batching and memory management
are unchanged. Here the prediction is the run's predictor's initial estimate
(``Request.initial_prediction``; later refinements are ignored, as SSJF predicts once).

Non-preemptive: every request that has been admitted ranks ahead of every request that has not
(:func:`~baselines.base.front`), so a shorter arrival never evicts it. Among admitted requests the
order stays shortest-predicted first, so when the KV cache runs out the longest-predicted one gives
way. Static scores, re-taken when a request is admitted (``rescore_on_admission``).
"""

from __future__ import annotations

import dataclasses
from typing import Sequence

from llmsched_env.sim.request import Request

from .base import Baseline, front, started


@dataclasses.dataclass(frozen=True)
class SJF(Baseline):
    """Shortest predicted job first, non-preemptive (SSJF, Qiu et al. 2024)."""

    key = "sjf"
    dynamic = False
    rescore_on_admission = True

    def priorities(self, requests: Sequence[Request], now: float) -> list[float]:
        return [front(r.initial_prediction) if started(r) else r.initial_prediction for r in requests]
