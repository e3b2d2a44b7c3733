"""An SB3 ``VecEnv`` that steps N Serve envs in one process with batched observations.

:class:`ServeVecEnv` is a drop-in for SB3's ``DummyVecEnv`` (``make_vec_env(...,
vec_env_cls=ServeVecEnv)``; ``llmsched-train``'s ``vec_env: vector``): the same auto-reset with
``infos[i]["terminal_observation"]`` and ``"TimeLimit.truncated"``, Monitor's ``"episode"`` info,
seeds through ``seed()``, ``get_attr``/``env_method``, and ``action_masks`` for sb3-contrib's
``MaskablePPO`` (``env_method("action_masks")``). What it saves is the per-step cost of going
through every wrapper and building each env's observation alone: an env whose wrappers are all
known steps its :class:`~llmsched_env.envs.serve.ServeEnv` directly, and the observations of all
the envs are built as one batch (``llmsched_env.envs.serve.write_observations``), the way
``llmsched_env.envs.vector.ServeVectorEnv`` builds them.

Known wrappers (each handled as its own ``step`` would): SB3's ``Monitor`` (episode returns,
lengths and times), gymnasium's ``TimeLimit`` (its step count), ``OrderEnforcing`` and
``PassiveEnvChecker`` and ``ScenarioMixture`` (pass-through while stepping), and any wrapper with a
``reward_from_engine(episode_over) -> reward`` method (``train.rewards.ReferenceReward``). An env
with any other wrapper steps through its wrappers (correct, only slower).

Per-step ``infos`` of the fast path hold ``"TimeLimit.truncated"`` only, plus at the end of an
episode the ServeEnv's last ``info`` (with its ``summary``), Monitor's ``episode`` and the
``terminal_observation``: SB3 reads nothing else.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from typing import Any, Callable, Sequence

import gymnasium as gym
import numpy as np
from gymnasium.wrappers import OrderEnforcing, PassiveEnvChecker, TimeLimit
from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.vec_env import DummyVecEnv
from stable_baselines3.common.vec_env.base_vec_env import VecEnvIndices, VecEnvObs, VecEnvStepReturn

from llmsched_env.envs.mixture import ScenarioMixture
from llmsched_env.envs.serve import ServeEnv, write_observations
from llmsched_env.envs.vector import check_actions
from llmsched_env.sim.validation import fail

PASS_THROUGH = (OrderEnforcing, PassiveEnvChecker, ScenarioMixture)
TIME_LIMIT, MONITOR, REWARD = 0, 1, 2


def fast_chain(env: gym.Env) -> tuple[ServeEnv, list[tuple[int, Any]]] | None:
    """The ServeEnv under ``env`` and the wrappers that act while stepping (innermost first), or
    None if some wrapper is not one this module knows."""
    chain: list[tuple[int, Any]] = []
    while isinstance(env, gym.Wrapper):
        if isinstance(env, TimeLimit):
            chain.append((TIME_LIMIT, env))
        elif isinstance(env, Monitor):
            chain.append((MONITOR, env))
        elif callable(getattr(type(env), "reward_from_engine", None)):
            chain.append((REWARD, env))
        elif not isinstance(env, PASS_THROUGH):
            return None
        env = env.env
    if not isinstance(env, ServeEnv):
        return None
    return env, chain[::-1]


class ServeVecEnv(DummyVecEnv):
    """``DummyVecEnv`` with a fast path for Serve envs (see the module docstring)."""

    def __init__(self, env_fns: list[Callable[[], gym.Env]]) -> None:
        super().__init__(env_fns)
        self._rank = isinstance(self.action_space, gym.spaces.Box)
        self._units: list[ServeEnv] = []
        self._chains: list[list[tuple[int, Any]] | None] = []
        self._refresh(range(self.num_envs))

    def _refresh(self, indices: Sequence[int] | range) -> None:
        """Find each env's ServeEnv and wrapper chain (a mixture changes them at every reset)."""
        while len(self._units) < self.num_envs:
            self._units.append(None)  # type: ignore[arg-type]
            self._chains.append(None)
        for i in indices:
            found = fast_chain(self.envs[i])
            if found is None:
                self._units[i] = self.envs[i].unwrapped  # type: ignore[assignment]
                self._chains[i] = None
            else:
                self._units[i], self._chains[i] = found

    def reset(self) -> VecEnvObs:
        observations = super().reset()
        self._refresh(range(self.num_envs))
        return observations

    def step_wait(self) -> VecEnvStepReturn:
        n = self.num_envs
        units = self._units
        rank = self._rank
        actions = check_actions(units, self.actions, self.action_space) if rank else self.actions
        rewards = np.zeros(n, dtype=np.float32)
        dones = np.zeros(n, dtype=bool)
        infos: list[dict[str, Any]] = [{} for _ in range(n)]
        slow: dict[int, Any] = {}
        for i in range(n):
            chain = self._chains[i]
            if chain is None:  # through the wrappers
                obs, reward, terminated, truncated, info = self.envs[i].step(actions[i])
                slow[i] = obs
                infos[i] = info
            else:
                u = units[i]
                reward, invalid = u._act(actions[i], checked=rank)
                terminated = u._finished and not u._truncated
                truncated = u._truncated
                info = infos[i]
                if u._finished:
                    info.update(u._info())
                    info["invalid_action"] = invalid
                reward, truncated = _wrapped_step(chain, reward, terminated, truncated, info)
            rewards[i] = reward
            dones[i] = terminated or truncated
            infos[i]["TimeLimit.truncated"] = truncated and not terminated
        buffers = self.buf_obs
        write_observations(units, buffers["requests"], buffers["mask"], buffers["globals"])
        for i, obs in slow.items():
            self._save_obs(i, obs)
        for i in np.flatnonzero(dones).tolist():
            infos[i]["terminal_observation"] = OrderedDict((key, buffers[key][i].copy()) for key in self.keys)
            obs, self.reset_infos[i] = self.envs[i].reset()
            self._save_obs(i, obs)
            self._refresh((i,))
        return self._obs_from_buf(), rewards, dones, infos

    def _obs_from_buf(self) -> VecEnvObs:
        return OrderedDict((key, self.buf_obs[key].copy()) for key in self.keys)

    def env_method(self, method_name: str, *method_args, indices: VecEnvIndices = None, **method_kwargs) -> list[Any]:
        if method_name == "action_masks" and not method_args and not method_kwargs:  # MaskablePPO, every step
            return [self._units[i].action_masks() for i in self._get_indices(indices)]
        return super().env_method(method_name, *method_args, indices=indices, **method_kwargs)


def _wrapped_step(chain: list[tuple[int, Any]], reward: float, terminated: bool, truncated: bool, info: dict) -> tuple[float, bool]:
    """What the wrappers' ``step`` would make of the ServeEnv's step (innermost first)."""
    for kind, wrapper in chain:
        if kind == TIME_LIMIT:
            wrapper._elapsed_steps += 1
            if wrapper._elapsed_steps >= wrapper._max_episode_steps:
                truncated = True
        elif kind == REWARD:
            reward = wrapper.reward_from_engine(terminated or truncated)
        else:  # SB3's Monitor.step
            monitor = wrapper
            monitor.rewards.append(float(reward))
            if terminated or truncated:
                monitor.needs_reset = True
                ep_rew, ep_len = sum(monitor.rewards), len(monitor.rewards)
                ep_info = {"r": round(ep_rew, 6), "l": ep_len, "t": round(time.time() - monitor.t_start, 6)}
                for key in monitor.info_keywords:
                    ep_info[key] = info[key]
                monitor.episode_returns.append(ep_rew)
                monitor.episode_lengths.append(ep_len)
                monitor.episode_times.append(time.time() - monitor.t_start)
                ep_info.update(monitor.current_reset_info)
                if monitor.results_writer:
                    monitor.results_writer.write_row(ep_info)
                info["episode"] = ep_info
            monitor.total_steps += 1
    return reward, truncated


def vec_env_class(name: str) -> type:
    """The SB3 VecEnv class of ``TrainConfig.vec_env``: ``vector`` (:class:`ServeVecEnv`),
    ``subproc`` (``SubprocVecEnv``, one process per env) or ``dummy`` (``DummyVecEnv``)."""
    from stable_baselines3.common.vec_env import SubprocVecEnv

    from .config import VEC_ENVS

    classes = {"vector": ServeVecEnv, "subproc": SubprocVecEnv, "dummy": DummyVecEnv}
    if name not in classes:
        raise fail("vec_env", name, "one of " + ", ".join(VEC_ENVS))
    return classes[name]
