"""Reward relative to a reference heuristic on the same workload (a common-random-numbers control variate).

The env's ``latency`` reward is minus the number of requests in the system integrated over each
step, so an episode's return is minus the total response time. Most of its variance comes from the
workload (how bursty the seed's arrivals are), not from the agent: between scheduling policies the
mean latency differs by a few percent, between seeds by a factor of two. PPO's advantages then
drown in workload noise.

:class:`ReferenceReward` removes that noise. At each reset it runs the reference heuristic (e.g.
FCFS) on the same simulation seed, which serves exactly the same requests (``simulate(config,
seed=n)`` and ``reset(options={"sim_seed": n})`` share their workload), and records that run's
number-in-system curve. The reward of a step over simulated time [t0, t1] becomes::

    100 x (reference area over [t0, t1] - agent area over [t0, t1]) / reference total area

and the last step adds the reference's area after the agent finished. The undiscounted return is
then ``100 x (1 - agent's total response time / reference's)``: the agent's percentage
improvement over the heuristic on that workload. The reference's part does not depend on the
agent's actions (a per-episode constant of the seed), so the best policy is unchanged.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

from llmsched_env.sim import simulate
from llmsched_env.sim.request import RequestState


class AreaCurve:
    """``area(t)``: the number of requests in the system integrated over [0, t] for one finished run."""

    def __init__(self, arrival: np.ndarray, finish: np.ndarray) -> None:
        self.arrival = np.sort(arrival)
        self.finish = np.sort(finish)
        self._arrival_sum = np.concatenate([[0.0], np.cumsum(self.arrival)])
        self._finish_sum = np.concatenate([[0.0], np.cumsum(self.finish)])
        self.total = float(np.sum(finish) - np.sum(arrival))

    def __call__(self, t: float) -> float:
        # sum over arrivals before t of (t - arrival), minus the same over finishes before t
        i = int(np.searchsorted(self.arrival, t, side="right"))
        j = int(np.searchsorted(self.finish, t, side="right"))
        return (i * t - self._arrival_sum[i]) - (j * t - self._finish_sum[j])


class ReferenceReward(gym.Wrapper):
    """Reward = percentage of the reference heuristic's response time the agent saves (see module doc)."""

    def __init__(self, env: gym.Env, reference: str = "fcfs") -> None:
        super().__init__(env)
        import baselines

        self.reference = reference
        self._policy = baselines.parse(reference)

    def reset(self, **kwargs: Any):
        observation, info = self.env.reset(**kwargs)
        u: Any = self.env.unwrapped
        records = simulate(u.config, self._policy, seed=u.sim_seed).records
        assert records is not None
        finished = records["state"] == int(RequestState.FINISHED)
        # requests the reference never finished (rejected) spent no time inside
        finish = np.where(finished, records["finish_time"], records["arrival"])
        self._curve = AreaCurve(records["arrival"], finish)
        self._scale = 100.0 / max(self._curve.total, 1e-9)
        self._time = u.engine.now
        self._area = u.engine.area
        return observation, info

    def step(self, action):
        observation, _, terminated, truncated, info = self.env.step(action)
        return observation, self.reward_from_engine(terminated or truncated), terminated, truncated, info

    def reward_from_engine(self, episode_over: bool) -> float:
        """The reward of the step just taken, from the engine's state (the vector env's fast path
        calls this instead of :meth:`step`)."""
        engine: Any = self.env.unwrapped.engine
        reference = self._curve(engine.now) - self._curve(self._time)
        if episode_over:
            reference += self._curve.total - self._curve(engine.now)  # what the reference still spends
        reward = self._scale * (reference - (engine.area - self._area))
        self._time, self._area = engine.now, engine.area
        return float(reward)
