"""Scheduling policies for agent networks (``llmsched_env.sim.network``): one policy per engine.

A network policy implements :class:`~llmsched_env.sim.network.NetworkPolicy`:
``engine_policies(network)`` returns one engine policy (the engine's interface,
:mod:`llmsched_env.sim.policy`) per engine. Each request's ``meta`` is a
:class:`~llmsched_env.sim.network.Call` naming its job and buffer (class, stage, fork position).

* :class:`PerEngine` — a single-engine baseline on every engine, blind to the network:
  ``PerEngine(FCFS())`` (vLLM's order), ``PerEngine(SPRPT())``, ``PerEngine(Trail())``.
* :class:`StagePriority` — static priority by position in the route: ``"first"`` serves the
  earliest stage first (first-buffer-first-served, FBFS), ``"last"`` the latest (last-buffer-first-
  served, LBFS). Lu & Kumar ("Distributed scheduling based on due dates and buffer priorities",
  IEEE TAC 1991) and Rybko & Stolyar ("Ergodicity of stochastic processes describing the operation
  of open queueing networks", Probl. Inf. Transm. 1992) show that LBFS makes their two-station
  networks unstable below capacity; Li, Dai & Peng (2025, §5.4) show the same with LLM engines.
* :class:`ClassPriority` — static priorities given per engine as a ranked list of buffer labels
  (``{"e1": ["A:1", "B:2"], ...}``); unlisted buffers come after the listed ones.
* :class:`MaxPressure` — a policy that looks at the whole network: each engine serves first the
  buffer with the largest pressure ``(Q_b - sum of Q over b's downstream buffers) / work_b``, where
  ``Q`` counts the calls of a buffer in the network (at its engine or waiting out a tool delay) and
  ``work_b`` is a call's expected prompt + output tokens (the engine's service rate of the buffer is
  budget / work). Dai & Lin, "Maximum pressure policies in stochastic processing networks",
  Operations Research 2005 (after Tassiulas & Ephremides' back-pressure, 1992): maximum pressure is
  throughput-optimal in such networks, without knowing arrival rates. With a join (a stage of
  several calls) the formula is a heuristic: one finished call does not yet release the next stage.

Ties (same score) are served in order of arrival at the engine (the engine's tie-break).
"""

from __future__ import annotations

import copy
import dataclasses
from typing import Any, Mapping, Sequence

from llmsched_env.sim.network import Buffer, Network
from llmsched_env.sim.policy import Policy
from llmsched_env.sim.request import Request
from llmsched_env.sim.validation import ConfigError, check_choice, fail

from .registry import parse as parse_single


class BufferRank:
    """Engine policy: a fixed score per buffer (lower first), FCFS within a buffer."""

    dynamic = False

    def __init__(self, name: str, ranks: Sequence[float]) -> None:
        self.name = name
        self.ranks = list(ranks)

    def priorities(self, requests: Sequence[Request], now: float) -> list[float]:
        ranks = self.ranks
        return [ranks[r.meta.buffer.index] for r in requests]  # type: ignore[attr-defined]


@dataclasses.dataclass(frozen=True)
class PerEngine:
    """A single-engine policy (e.g. a ``baselines`` policy) copied onto every engine."""

    policy: Any  # the engine's Policy interface

    @property
    def name(self) -> str:
        return str(getattr(self.policy, "name", type(self.policy).__name__))

    def engine_policies(self, network: Network) -> list[Policy]:
        return [copy.deepcopy(self.policy) for _ in network.engine_names]


@dataclasses.dataclass(frozen=True)
class StagePriority:
    """Static priority by route position: ``order="first"`` (FBFS) or ``"last"`` (LBFS)."""

    order: str = "first"

    def __post_init__(self) -> None:
        check_choice("order", self.order, ("first", "last"))

    @property
    def name(self) -> str:
        return "fbfs" if self.order == "first" else "lbfs"

    def engine_policies(self, network: Network) -> list[Policy]:
        stages = [len(wf.stages) for wf in network.config.classes]
        if self.order == "first":
            ranks = [float(b.stage) for b in network.buffers]
        else:  # stages left after this one: 0 for the last stage of every route
            ranks = [float(stages[b.cls] - 1 - b.stage) for b in network.buffers]
        return [BufferRank(self.name, ranks) for _ in network.engine_names]


@dataclasses.dataclass(frozen=True)
class ClassPriority:
    """Static priorities per engine: ``order[engine]`` ranks buffer labels (``class:stage``, or
    ``class:stage.call`` in a fork), highest priority first."""

    order: Mapping[str, Sequence[str]]

    @property
    def name(self) -> str:
        return "priority:" + ",".join(f"{e}={'>'.join(labels)}" for e, labels in self.order.items())

    def engine_policies(self, network: Network) -> list[Policy]:
        for engine, ranked in self.order.items():
            if engine not in network.engine_names:
                raise fail("priority engine", engine, "one of " + ", ".join(map(repr, network.engine_names)))
            here = [b.label for b in network.buffers if network.engine_names[b.engine] == engine]
            for label in ranked:
                if label not in here:
                    raise fail(f"priority[{engine!r}] label", label, "a buffer of that engine: " + ", ".join(map(repr, here)))
        ranks = []
        for b in network.buffers:
            ranked = list(self.order.get(network.engine_names[b.engine], ()))
            ranks.append(float(ranked.index(b.label) if b.label in ranked else len(ranked)))
        return [BufferRank(self.name, ranks) for _ in network.engine_names]


class _PressureScores:
    """Engine policy of :class:`MaxPressure`: re-scored at every epoch from the network's queues."""

    name = "max-pressure"
    dynamic = True

    def __init__(self, network: Network) -> None:
        self.network = network
        self.buffers: list[Buffer] = network.buffers
        self.inverse_work = [1.0 / max(b.mean_prompt + b.mean_output, 1.0) for b in network.buffers]

    def priorities(self, requests: Sequence[Request], now: float) -> list[float]:
        q = self.network.buffer_calls
        pressure = [
            (q[b.index] - sum(q[d] for d in b.downstream)) * self.inverse_work[b.index] for b in self.buffers
        ]
        return [-pressure[r.meta.buffer.index] for r in requests]  # type: ignore[attr-defined]


class MaxPressure:
    """Maximum pressure (Dai & Lin 2005): serve the buffer whose queue most exceeds its downstream."""

    name = "max-pressure"

    def engine_policies(self, network: Network) -> list[Policy]:
        return [_PressureScores(network) for _ in network.engine_names]


def available() -> list[str]:
    """Names :func:`parse` accepts besides any single-engine baseline (``baselines.available()``)."""
    return ["fbfs", "lbfs", "max-pressure", "priority:<engine>=<label>><label>,..."]


def parse(spec: str):
    """Build a network policy from a name.

    ``fbfs`` / ``lbfs`` (:class:`StagePriority`), ``max-pressure``,
    ``priority:e1=B:2>A:1,e2=A:2>B:1`` (:class:`ClassPriority`), or any single-engine spec of
    ``baselines.parse`` (``fcfs``, ``sprpt``, ``trail:C=0.5``...) run on every engine (:class:`PerEngine`).
    """
    if not isinstance(spec, str) or not spec.strip():
        raise fail("network policy", spec, "a policy name such as 'fbfs', 'max-pressure' or 'fcfs'")
    spec = spec.strip()
    if spec in ("fbfs", "lbfs"):
        return StagePriority("first" if spec == "fbfs" else "last")
    if spec == "max-pressure":
        return MaxPressure()
    if spec.startswith("priority:"):
        order: dict[str, list[str]] = {}
        for item in spec[len("priority:") :].split(","):
            engine, eq, ranked = item.partition("=")
            if not eq or not engine.strip() or not ranked.strip():
                raise ConfigError(f"network policy {spec!r}: {item!r} is invalid: expected engine=label>label...")
            order[engine.strip()] = [label.strip() for label in ranked.split(">")]
        return ClassPriority(order)
    return PerEngine(parse_single(spec))
