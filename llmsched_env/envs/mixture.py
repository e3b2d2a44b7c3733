"""A weighted mixture of scenarios as one environment: each episode is drawn from one of them.

Training on several scenarios with one policy (``llmsched-train`` with ``scenarios:``) needs an
env whose episodes come from a mix; :class:`ScenarioMixture` holds one ``ServeEnv`` per scenario
(all with the same observation and action spaces) and, at every ``reset``, picks one with
probability proportional to its weight from its own seeded generator. Everything else (steps,
``action_masks``, ``unwrapped``) goes to the env of the current episode.
"""

from __future__ import annotations

from typing import Any, Sequence

import gymnasium as gym
import numpy as np

from ..sim.validation import ConfigError, fail


class ScenarioMixture(gym.Wrapper):
    """Episodes drawn from ``envs`` with probabilities proportional to ``weights``."""

    def __init__(self, envs: Sequence[gym.Env], weights: Sequence[float]) -> None:
        if not envs or len(envs) != len(weights):
            raise fail("weights", list(weights), f"one positive weight per env ({len(envs)} envs)")
        w = np.asarray(weights, dtype=np.float64)
        if not np.all(w > 0):
            raise fail("weights", list(weights), "positive numbers")
        for env in envs[1:]:
            if env.observation_space != envs[0].observation_space or env.action_space != envs[0].action_space:
                raise ConfigError(
                    "ScenarioMixture: every scenario needs the same observation and action spaces "
                    "(the same num_slots, action_mode and preemption_control)"
                )
        super().__init__(envs[0])
        self.envs = list(envs)
        self.probabilities = w / w.sum()
        self.current = 0
        self._rng = np.random.default_rng()

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[Any, dict]:
        if seed is not None:
            # independent streams for the scenario picker and each env (seeds s, s+1 of vector-env
            # ranks must not share an env's stream)
            picker, *children = np.random.SeedSequence(seed).spawn(len(self.envs) + 1)
            self._rng = np.random.default_rng(picker)
            for env, child in zip(self.envs, children):
                env.reset(seed=int(child.generate_state(1)[0]))
        self.current = int(self._rng.choice(len(self.envs), p=self.probabilities))
        self.env = self.envs[self.current]
        observation, info = self.env.reset(options=options)
        info["scenario_index"] = self.current
        return observation, info

    def action_masks(self) -> np.ndarray:
        return self.env.unwrapped.action_masks()  # type: ignore[attr-defined]

    def close(self) -> None:
        for env in self.envs:
            env.close()
