"""What a scheduling policy for an agent network is: one engine policy per engine."""

from __future__ import annotations

from typing import Any, Protocol

from ..policy import FCFS, Policy


class NetworkPolicy(Protocol):
    """A scheduling policy for a network: one engine policy per engine (``baselines/network.py``).

    ``engine_policies(network)`` is called once when the network is built, with the
    :class:`~llmsched_env.sim.network.driver.Network` (typed ``Any`` here: the driver imports this
    module, not the other way round); the returned policies may keep a reference to the network
    and read its state (e.g. ``network.buffer_calls``) when they score requests. A request's
    ``meta`` is a :class:`~llmsched_env.sim.network.jobs.Call` (its job and
    :class:`~llmsched_env.sim.network.config.Buffer`).
    """

    name: str

    def engine_policies(self, network: Any) -> list[Policy]: ...


class _FCFSEverywhere:
    name = "fcfs"

    def engine_policies(self, network: Any) -> list[Policy]:
        return [FCFS() for _ in network.engine_names]
