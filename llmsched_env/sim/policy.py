"""The scheduling-policy interface: one idea, used by the engine and (as an agent) by the envs.

A policy gives a **priority score per request**; the engine serves requests in ascending score
order (ties broken by arrival time, then id) under its batch limits, so preemption follows from
the order. Scores are taken at *decision epochs* (an arrival, a completion, a
preemption, a prediction refresh, a wake-up the policy asked for) and held fixed in between; this
is what lets the engine fast-forward over many iterations, and what makes a policy driving a
Gymnasium env give exactly the same run as the same policy driving the engine directly.

Policies read requests through the engine's :class:`~llmsched_env.sim.request.Request` objects
(read-only by convention) and never see ``output_len`` unless they are oracles.
"""

from __future__ import annotations

from typing import Protocol, Sequence, runtime_checkable

from .request import Request


@runtime_checkable
class Policy(Protocol):
    """What the engine needs from a scheduling policy.

    Attributes:
        name: short identifier used in reports.
        dynamic: if False, a request's score depends only on facts that change at the request's own
            events (arrival, prediction refresh, restart, and admission if the policy sets
            ``rescore_on_admission = True``), so the engine scores each request once per such event;
            if True, the engine re-scores every live request at every epoch.

    Optional members: ``rescore_on_admission`` (bool, see above); ``wakeup(requests, now)``,
    asked at every epoch (counters up to date): the number of iterations after which the policy
    wants another epoch (None: no wish), e.g. when a request will use up its quantum in a
    multi-level feedback queue; and ``preemption_mode(request, engine)``, the
    :class:`~llmsched_env.sim.request.PreemptionMode` to use when ``request`` is preempted (None:
    the engine's default), consulted at every preemption; and ``admit(request, engine) -> bool``,
    admission control: asked for each waiting request, in priority order, that would otherwise
    be admitted (its KV fits); False keeps it and every request after it in that batch waiting.
    """

    name: str
    dynamic: bool

    def priorities(self, requests: Sequence[Request], now: float) -> Sequence[float]:
        """One finite score per request (lower is served first)."""
        ...


class FCFS:
    """First come, first served: score = arrival time (vLLM's default order).

    Non-preemptive in effect: a running request always precedes later arrivals, so under memory
    pressure the latest arrival is the victim.
    """

    name = "fcfs"
    dynamic = False

    def priorities(self, requests: Sequence[Request], now: float) -> list[float]:
        return [r.arrival for r in requests]
