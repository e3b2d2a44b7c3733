"""What every heuristic baseline shares: parameters, report names and the two score tiers.

A baseline is a frozen dataclass whose fields are its parameters (validated in ``__post_init__``
with :mod:`llmsched_env.sim.validation`), implementing the engine's policy interface
(:mod:`llmsched_env.sim.policy`): ``name``, ``dynamic``, ``priorities(requests, now)`` (lower is
served first; the engine breaks ties by arrival, then id) and optionally ``rescore_on_admission``
and ``wakeup``.

Score tiers. The engine serves requests in score order and lets a request evict lower-ranked KV
holders when it needs KV blocks, so a request is protected from preemption by ranking it above every
request that could want its memory. :func:`front` maps a score into a tier below every ordinary
score (ordinary scores are token counts above ``-TIER``) while keeping the order within the tier.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, ClassVar, Sequence

from llmsched_env.sim.request import Request

TIER = 1.0e9  # token counts in scores are clipped to +-TIER; ordinary scores stay above -TIER
_FRONT = -3.0 * TIER  # front(x) lies in [-4 TIER, -2 TIER], below every ordinary score


def front(x: float) -> float:
    """``x`` moved to the front tier: below every ordinary score, in the same order as ``x``."""
    return _FRONT + max(-TIER, min(x, TIER))


def started(r: Request) -> bool:
    """True once the request has been in a batch (it may since have been preempted)."""
    return not math.isnan(r.first_scheduled)


@dataclasses.dataclass(frozen=True)
class Baseline:
    """Base class: ``params`` and ``name`` come from the dataclass fields.

    Subclasses set ``key`` (the registry name), ``dynamic`` and, if needed,
    ``rescore_on_admission``, and implement ``priorities``.
    """

    key: ClassVar[str] = ""
    dynamic: ClassVar[bool] = False
    rescore_on_admission: ClassVar[bool] = False

    @classmethod
    def param_names(cls) -> list[str]:
        return [f.name for f in dataclasses.fields(cls) if f.init]

    @property
    def params(self) -> dict[str, Any]:
        """The parameters this policy was built with (all of them, defaults included)."""
        return {name: getattr(self, name) for name in self.param_names()}

    @property
    def name(self) -> str:
        """The registry key plus every non-default parameter, e.g. ``trail:C=0.5``."""
        changed = [
            f"{f.name}={getattr(self, f.name)}"
            for f in dataclasses.fields(self)
            if f.init and getattr(self, f.name) != f.default
        ]
        return self.key + (":" + ",".join(changed) if changed else "")

    def priorities(self, requests: Sequence[Request], now: float) -> list[float]:
        raise NotImplementedError
