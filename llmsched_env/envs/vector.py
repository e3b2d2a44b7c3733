"""N ``llmsched/Serve-*`` engines stepped in one process, observations built as one numpy batch.

``gym.make_vec("llmsched/Serve-v2", num_envs=N, vectorization_mode="vector_entry_point", **kwargs)``
returns a :class:`ServeVectorEnv`: a ``gymnasium.vector.VectorEnv`` over N :class:`ServeEnv`
built with the same keywords. It gives, element by element, what N ServeEnvs would give (a test
compares them), without their per-step costs: one action check for the whole batch, no per-step
``info`` dicts, and the features of every env's slots computed by the compiled
``llmsched_env.sim.observe`` into one list that becomes the batch's arrays at once
(:func:`~llmsched_env.envs.serve.write_observations`, the path the single env uses too).

* Spaces: ``single_observation_space`` / ``single_action_space`` are the ServeEnv's; the batched
  ``observation_space`` and ``action_space`` add a leading axis of N.
* Seeding: ``reset(seed=s)`` resets env i with seed ``s + i`` (a list of N seeds gives each its
  own), exactly as N ServeEnvs seeded ``s, s + 1, ...``; later episodes draw their simulation seeds
  from each env's own generator. ``options={"sim_seed": n}`` or ``{"sim_seed": [n_0, ..., n_N-1]}``
  serves given workloads (an int gives every env the same one).
* Autoreset: gymnasium's default, ``AutoresetMode.NEXT_STEP``. The step that ends env i's episode
  returns its last observation with ``terminated``/``truncated``; the next step ignores its action,
  resets it and returns the first observation of the new episode with reward 0.
* ``infos``: only what a batch needs, as gymnasium's vector infos (arrays with ``_key`` masks):
  ``summary`` (the run summary, ``infos["summary"]["e2e_mean_s"][i]``, where ``_summary[i]``) and
  ``sim_seed`` for the envs whose episode ended in this step (the ServeEnv's other per-step keys are
  not collected: read ``env.envs[i]``); in ``admit`` mode ``action_mask`` (N, actions) and
  ``invalid_action`` (N,) at every step, and ``action_masks()`` gives the masks.
* ``max_episode_steps`` (the registration's safety net, 100,000) truncates an episode after that
  many steps, as gymnasium's ``TimeLimit`` does (no summary then).
"""

from __future__ import annotations

from typing import Any, Sequence

import gymnasium as gym
import numpy as np
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from ..sim.validation import ConfigError, check_positive, fail
from .serve import ServeEnv, write_observations


class ServeVectorEnv(VectorEnv):
    """N ServeEnvs in one process with batched observations (see the module docstring).

    Args:
        num_envs: number of engines.
        max_episode_steps: truncate episodes after this many steps (None: never).
        copy: return copies of the observation arrays (False: the internal buffers, overwritten
            by the next step).
        envs: the ServeEnvs to step (default: ``num_envs`` built from ``kwargs``); they must share
            their spaces.
        kwargs: ServeEnv's keywords (``scenario``, ``num_slots``, ``action_mode``, ...).
    """

    metadata = {"autoreset_mode": AutoresetMode.NEXT_STEP, "render_modes": []}

    def __init__(
        self,
        num_envs: int = 1,
        *,
        max_episode_steps: int | None = None,
        copy: bool = True,
        envs: Sequence[ServeEnv] | None = None,
        **kwargs: Any,
    ) -> None:
        if envs is None:
            num_envs = check_positive("num_envs", num_envs, integer=True)
            envs = [ServeEnv(**kwargs) for _ in range(num_envs)]
        elif kwargs:
            raise ConfigError(f"ServeVectorEnv: pass either envs or env keywords, not both (got {sorted(kwargs)})")
        if max_episode_steps is not None:
            max_episode_steps = check_positive("max_episode_steps", max_episode_steps, integer=True)
        self.envs: list[ServeEnv] = list(envs)
        if not self.envs:
            raise fail("envs", envs, "at least one ServeEnv")
        first = self.envs[0]
        for env in self.envs[1:]:
            if env.observation_space != first.observation_space or env.action_space != first.action_space:
                raise ConfigError("ServeVectorEnv: every env needs the same observation and action spaces")
        n = self.num_envs = len(self.envs)
        self.single_observation_space = first.observation_space
        self.single_action_space = first.action_space
        self.observation_space = batch_space(self.single_observation_space, n)
        self.action_space = batch_space(self.single_action_space, n)
        self.max_episode_steps = max_episode_steps
        self.copy = copy
        self.rank = first.action_mode == "rank"
        space = self.single_observation_space
        self.buffers = {key: np.zeros((n,) + space[key].shape, np.float32) for key in ("requests", "mask", "globals")}
        self._autoreset = np.zeros(n, dtype=bool)
        self._steps = np.zeros(n, dtype=np.int64)
        self._started = False

    # ------------------------------------------------------------------------------ episodes
    def reset(self, *, seed: int | Sequence[int | None] | None = None, options: dict | None = None):
        n = self.num_envs
        if seed is None or isinstance(seed, (int, np.integer)):
            seeds = [None if seed is None else int(seed) + i for i in range(n)]
        else:
            seeds = list(seed)
            if len(seeds) != n:
                raise fail("seed", seed, f"an int or a list of {n} seeds (one per env)")
        per_env = split_options(options, n)
        for env, s, o in zip(self.envs, seeds, per_env):
            env.reset(seed=s, options=o)
        self._autoreset[:] = False
        self._steps[:] = 0
        self._started = True
        write_observations(self.envs, self.buffers["requests"], self.buffers["mask"], self.buffers["globals"])
        infos: dict[str, Any] = {"sim_seed": np.array([env.sim_seed for env in self.envs], dtype=np.int64)}
        if not self.rank:
            infos["action_mask"] = self.action_masks()
        return self._observations(), infos

    def step(self, actions):
        if not self._started:
            raise gym.error.ResetNeeded("call reset() before step()")
        actions = check_actions(self.envs, actions, self.single_action_space, self._autoreset)
        n = self.num_envs
        rewards = np.zeros(n, dtype=np.float64)
        terminated = np.zeros(n, dtype=bool)
        truncated = np.zeros(n, dtype=bool)
        invalid = np.zeros(n, dtype=bool)
        infos: dict[str, Any] = {}
        limit = self.max_episode_steps
        for i, env in enumerate(self.envs):
            if self._autoreset[i]:
                env.reset()
                self._steps[i] = 0
                continue
            rewards[i], invalid[i] = env._act(actions[i], checked=self.rank)
            self._steps[i] += 1
            truncated[i] = env._truncated or (limit is not None and self._steps[i] >= limit)
            terminated[i] = env._finished and not env._truncated
            if env._finished:
                self._add_info(infos, {"summary": env._info()["summary"], "sim_seed": env.sim_seed}, i)
        write_observations(self.envs, self.buffers["requests"], self.buffers["mask"], self.buffers["globals"])
        self._autoreset = terminated | truncated
        if not self.rank:
            infos["action_mask"] = self.action_masks()
            infos["invalid_action"] = invalid
        return self._observations(), rewards, terminated, truncated, infos

    def action_masks(self) -> np.ndarray:
        """The valid actions of every env (``admit`` mode), an (N, actions) bool array."""
        return np.stack([env.action_masks() for env in self.envs])

    def close_extras(self, **kwargs: Any) -> None:
        for env in self.envs:
            env.close()

    def _observations(self) -> dict[str, np.ndarray]:
        if self.copy:
            return {key: value.copy() for key, value in self.buffers.items()}
        return dict(self.buffers)


def split_options(options: dict | None, n: int) -> list[dict | None]:
    """Per-env reset options: ``sim_seed`` may be one int (every env) or a list of n."""
    if not options:
        return [options] * n
    sim_seed = options.get("sim_seed")
    if isinstance(sim_seed, (list, tuple, np.ndarray)):
        if len(sim_seed) != n:
            raise fail("reset options sim_seed", sim_seed, f"an int or a list of {n} (one per env)")
        return [{**options, "sim_seed": s} for s in sim_seed]
    return [options] * n


def check_actions(envs: Sequence[ServeEnv], actions: Any, space: gym.Space, skip: np.ndarray | None = None) -> np.ndarray:
    """The batch of actions as an array, checked at once in ``rank`` mode (each env's visible
    scores finite and in [-1, 1], as the ServeEnv checks them); envs marked in ``skip`` are
    not checked (their action is ignored). ``admit`` actions are checked by each env."""
    actions = np.asarray(actions)
    n = len(envs)
    if actions.shape[:1] != (n,):
        raise ConfigError(f"actions have shape {actions.shape}: expected ({n}, ...) (one action per env)")
    if not isinstance(space, gym.spaces.Box):
        return actions
    if actions.shape[1:] != space.shape:
        raise ConfigError(f"actions have shape {actions.shape}: expected {(n, *space.shape)} (rank mode)")
    if np.isfinite(actions).all() and actions.min() >= -1.0 and actions.max() <= 1.0:
        return actions
    for i, env in enumerate(envs):  # something is off somewhere (maybe only in empty slots): check each env
        if skip is None or not skip[i]:
            try:
                env._check_scores(actions[i])
            except ConfigError as err:
                raise ConfigError(f"env {i}: {err}") from None
    return actions
