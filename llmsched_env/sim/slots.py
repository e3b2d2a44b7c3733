"""The slot toolkit: which requests an agent sees, and what its action means to the engine.

An agent of the environments sees up to ``K = num_slots`` requests of an engine, one per *slot*,
and acts on them. Everything that encodes that contract lives here, for the environments
(``llmsched_env.envs.serve``, ``llmsched_env.envs.network``), the env-driven baselines
(``baselines.agent``) and the policy networks (``train.networks``, ``train.agents``):

* **Slot selection**: :func:`select_slots` (compiled with the observation features in
  :mod:`llmsched_env.sim.observe`, re-exported here): the requests holding KV first, in priority
  order, then requests without KV (the oldest, and in the ``queue`` layout also the shortest
  predicted).
* **The action layout.** ``rank`` mode: one score per slot, ``Box(-1, 1, (K,))``, **higher served
  first**; with preemption control a row per slot with the columns :data:`RANK_COLUMNS`.
  ``admit`` mode: ``Discrete(K + 1)``, ``i < K`` admits the request in slot ``i``, ``K`` advances;
  with preemption control ``Discrete(4K + 1)``, and action ``K + 1 + 3 i + m`` preempts slot ``i``
  with mode ``m`` (a :class:`~llmsched_env.sim.request.PreemptionMode`: 0 recompute, 1 swap,
  2 restart). :func:`admit_action_count`, :func:`preempt_action` and :func:`decode_admit` are the
  one place that arithmetic is written.
* **The agent-side policies**: the engine policies an environment installs to turn the agent's
  last action into priorities (engine scores are **lower served first**, so rank scores are
  negated): :class:`SlotScorePolicy` (rank mode) and :class:`AdmissionOrderPolicy` (admit mode).
  Requests outside the slots keep FCFS order behind the visible ones (:data:`BEYOND`).
* **From a heuristic's order to an action**: :func:`rank_scores`, the rank-mode scores that make
  the engine serve the slots in a given priority order.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from .observe import select_slots
from .request import Request
from .validation import ConfigError

#: the agent's action modes
ACTION_MODES = ("rank", "admit")
#: rank mode with preemption control: the columns of each slot's action row
RANK_COLUMNS = ("score", "evict", "prefer_recompute", "prefer_swap", "prefer_restart")
#: preemption modes an admit-mode action can pick per slot (recompute, swap, restart)
NUM_PREEMPT_MODES = 3
#: priority offset that puts requests outside the slots behind the visible ones (FCFS among them)
BEYOND = 1.0e6


def rank_action_shape(num_slots: int, preemption_control: bool) -> tuple[int, ...]:
    """The shape of a rank-mode action: ``(K,)``, or ``(K, 5)`` with preemption control."""
    return (num_slots, len(RANK_COLUMNS)) if preemption_control else (num_slots,)


def check_score_action(action: Any, shape: tuple[int, ...], occupied: np.ndarray, what: str) -> np.ndarray:
    """The one rule for score actions (``Box(-1, 1)``: Serve's rank mode and AgentNetwork): an
    array of numbers of ``shape`` whose rows for occupied slots (``occupied``, one bool per row)
    are finite and in [-1, 1]; rows of empty slots are ignored. Raises ConfigError otherwise
    (SB3 clips its actions to the space before stepping)."""
    scores = np.asarray(action)
    if scores.dtype.kind not in "iuf":
        sample = scores.reshape(-1)[:3].tolist() if scores.size else []
        raise ConfigError(
            f"action of {scores.dtype} values {sample} is invalid: expected numbers in [-1, 1], {what}, shape {shape}"
        )
    if scores.shape != shape:
        raise ConfigError(f"action has shape {scores.shape}: expected {shape}, {what}")
    visible = scores[occupied]
    if not np.isfinite(visible).all():
        raise ConfigError(f"action contains NaN or infinite values {visible[~np.isfinite(visible)]}: expected finite numbers in [-1, 1]")
    if visible.size and (visible.min() < -1.0 or visible.max() > 1.0):
        outside = visible[(visible < -1.0) | (visible > 1.0)]
        raise ConfigError(f"action contains values {outside[:4]} outside the action space: expected values in [-1, 1]")
    return scores


def admit_action_count(num_slots: int, preemption_control: bool) -> int:
    """The number of admit-mode actions: ``K + 1``, or ``4K + 1`` with preemption control."""
    return num_slots + 1 + (NUM_PREEMPT_MODES * num_slots if preemption_control else 0)


def preempt_action(num_slots: int, slot: int, mode: int) -> int:
    """The admit-mode action that preempts the request in ``slot`` with preemption ``mode``."""
    return num_slots + 1 + NUM_PREEMPT_MODES * slot + int(mode)


def decode_admit(choice: int, num_slots: int) -> tuple[str, int, int]:
    """What an admit-mode action means: ``("admit", slot, -1)``, ``("advance", -1, -1)`` or
    ``("preempt", slot, mode)``."""
    if choice < num_slots:
        return "admit", choice, -1
    if choice == num_slots:
        return "advance", -1, -1
    slot, mode = divmod(choice - num_slots - 1, NUM_PREEMPT_MODES)
    return "preempt", slot, mode


def rank_scores(priorities: Sequence[float], slots: Sequence[Request]) -> np.ndarray:
    """Rank-mode scores in [-1, 1] for ``slots`` that make the engine serve them in the order of
    ``priorities`` (lower first; ties by arrival, then id, as in the engine): the first in order
    gets 1, and the scores decrease strictly along the order."""
    n = len(slots)
    order = sorted(range(n), key=lambda i: (float(priorities[i]), slots[i].arrival, slots[i].id))
    ranks = np.empty(n)
    ranks[order] = np.arange(n)
    return 1.0 - 2.0 * ranks / max(n, 1)


class AgentPolicy:
    """An environment's engine-side policy: priorities from the agent's actions.

    ``scores`` maps the ids of the requests the agent has placed to their engine scores; the
    others follow them in FCFS order. ``wakeup_source`` lets an agent that is itself a policy
    with wake-ups (e.g. a multi-level feedback queue driven through the env) ask for the decision
    epochs it needs.
    """

    name = "agent"
    dynamic = True

    def __init__(self) -> None:
        self.scores: dict[int, float] = {}
        self.wakeup_source: Any = None

    def wakeup(self, requests: Sequence[Request], now: float) -> int | None:
        return None if self.wakeup_source is None else self.wakeup_source(requests, now)

    def priorities(self, requests: Sequence[Request], now: float) -> list[float]:
        scores = self.scores
        return [scores.get(r.id, BEYOND + r.arrival) for r in requests]


class SlotScorePolicy(AgentPolicy):
    """Rank mode: the agent's scores for the visible requests, the others FCFS behind them."""

    name = "agent-rank"
    dynamic = True

    def __init__(self) -> None:
        super().__init__()
        self.modes: dict[int, int] = {}  # preemption control: each visible request's mode

    def set_scores(self, slots: Sequence[Request], scores: np.ndarray) -> None:
        """Take the agent's rank scores (higher served first) for the requests in ``slots``."""
        self.scores = dict(zip([r.id for r in slots], (-scores[: len(slots)]).tolist()))

    def preemption_mode(self, request: Request, engine: Any) -> int | None:
        return self.modes.get(request.id)


class AdmissionOrderPolicy(AgentPolicy):
    """Admit mode: requests are served in the order the agent admitted them; the others wait."""

    name = "agent-admit"
    dynamic = False

    def __init__(self) -> None:
        super().__init__()
        self.admitted = 0

    def take(self, r: Request) -> None:
        """``r`` is admitted: it is served after every request admitted before it."""
        self.admitted += 1
        self.scores[r.id] = float(self.admitted)


__all__ = [
    "ACTION_MODES",
    "BEYOND",
    "NUM_PREEMPT_MODES",
    "RANK_COLUMNS",
    "AdmissionOrderPolicy",
    "AgentPolicy",
    "SlotScorePolicy",
    "admit_action_count",
    "decode_admit",
    "preempt_action",
    "rank_action_shape",
    "rank_scores",
    "select_slots",
]
