"""A heuristic policy as an agent of ``llmsched/Serve-v1``: the same object, through the env.

:class:`PolicyAgent` turns a policy's priorities for the requests in the env's slots into the
env's action (with :mod:`llmsched_env.sim.slots`, the slot toolkit):

* ``rank`` mode: each visible request's score is minus its rank in the policy's order (ties by
  arrival, then id, as in the engine), scaled into [-1, 1]; with ``preemption_control`` the mode
  columns carry the policy's ``preemption_mode`` when it has one (else the env's default
  ``recompute`` preference) and nobody is evicted by hand.
* ``admit`` mode: admit the waiting request the policy ranks first, else advance. The agent
  admits every waiting request at each epoch, and admitted requests are then served in
  admission order, so a request arriving later can no longer overtake them: this matches the
  engine run for FCFS only (for other orders it is the policy's order at each epoch).

With every request visible (``num_slots`` at least the number in the system) an env episode driven
by ``PolicyAgent(policy)`` gives the same per-request results as ``simulate(config, policy,
seed)`` (tests/test_baselines_agent.py), except for admission control (a policy's ``admit``
hook, MC-SF's), which the rank action cannot express: through the env such a policy is only its
order. The agent reads the requests themselves (``env.unwrapped.
slots``), which is how a heuristic sees them in the engine; learned agents see only observations.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from llmsched_env.sim.request import PreemptionMode, Request
from llmsched_env.sim.slots import RANK_COLUMNS, rank_action_shape, rank_scores


class PolicyAgent:
    """Acts in a Serve-v1 env with a heuristic policy.

    Call :meth:`bind` once after ``gym.make`` (so the policy's wake-ups reach the engine from the
    next ``reset``), then ``action = agent.act(env)`` at every step.
    """

    def __init__(self, policy: Any) -> None:
        self.policy = policy
        self.name = getattr(policy, "name", type(policy).__name__)

    def bind(self, env: Any) -> "PolicyAgent":
        wakeup = getattr(self.policy, "wakeup", None)
        if wakeup is not None:
            env.unwrapped.set_wakeup(wakeup)
        return self

    def act(self, env: Any):
        unwrapped = env.unwrapped
        slots: list[Request] = unwrapped.slots
        engine = unwrapped.engine
        if unwrapped.action_mode == "admit":
            return self._admit(unwrapped, slots, engine)
        K = unwrapped.num_slots
        scores = np.zeros(K, dtype=np.float32)
        n = len(slots)
        if n:
            scores[:n] = rank_scores(self.policy.priorities(slots, engine.now), slots)
        if not unwrapped.preemption_control:
            return scores
        action = np.zeros(rank_action_shape(K, True), dtype=np.float32)
        action[:, RANK_COLUMNS.index("score")] = scores
        action[:, RANK_COLUMNS.index("evict")] = -1.0  # never evict by hand: preemptions come from the order, as in the engine
        choose = getattr(self.policy, "preemption_mode", None)
        default = PreemptionMode.parse(unwrapped.config.engine.preemption_mode)
        first_mode = RANK_COLUMNS.index("prefer_recompute")  # the columns follow PreemptionMode's values
        for i, r in enumerate(slots):
            mode = choose(r, engine) if choose is not None else None
            action[i, first_mode + int(default if mode is None else mode)] = 1.0
        return action

    def _admit(self, unwrapped: Any, slots: list[Request], engine: Any) -> int:
        held = [i for i, r in enumerate(slots) if r.held]
        if not held:
            return unwrapped.num_slots  # advance
        waiting = [slots[i] for i in held]
        scores = rank_scores(self.policy.priorities(waiting, engine.now), waiting)
        return held[int(np.argmax(scores))]  # the first in the policy's order
