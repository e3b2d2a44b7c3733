"""The vector env (gym.make_vec, vector_entry_point) and its SB3 adapter match the single envs."""

from __future__ import annotations

import functools

import gymnasium as gym
import numpy as np
import pytest
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.vec_env import DummyVecEnv

import llmsched_env  # noqa: F401  (registers the environments)
from llmsched_env.envs.vector import ServeVectorEnv
from llmsched_env.sim import ConfigError
from train.config import TrainConfig
from train.rewards import ReferenceReward
from train.vec_env import ServeVecEnv, vec_env_class

N = 3
SMALL = dict(num_requests=30, num_slots=6)


def random_actions(space: gym.Space, masks: np.ndarray | None, rng: np.random.Generator) -> np.ndarray:
    if masks is None:
        return rng.uniform(-1, 1, (N, *space.shape)).astype(np.float32)
    return np.array([rng.choice(np.flatnonzero(m)) for m in masks])


@pytest.mark.parametrize("env_id, mode", [("llmsched/Serve-v2", "rank"), ("llmsched/Serve-v2", "admit"), ("llmsched/Serve-v1", "rank")])
def test_make_vec_matches_n_single_envs_element_by_element(env_id, mode):
    venv = gym.make_vec(env_id, num_envs=N, vectorization_mode="vector_entry_point", action_mode=mode, **SMALL)
    assert isinstance(venv, ServeVectorEnv) and venv.metadata["autoreset_mode"] == gym.vector.AutoresetMode.NEXT_STEP
    singles = [gym.make(env_id, action_mode=mode, **SMALL) for _ in range(N)]
    assert venv.single_observation_space == singles[0].observation_space
    assert venv.observation_space["requests"].shape == (N, *singles[0].observation_space["requests"].shape)
    obs, infos = venv.reset(seed=11)
    expected = [env.reset(seed=11 + i) for i, env in enumerate(singles)]
    assert list(infos["sim_seed"]) == [info["sim_seed"] for _, info in expected]
    rng = np.random.default_rng(0)
    done = [False] * N
    ended = 0
    for _ in range(400):
        masks = infos.get("action_mask")
        actions = random_actions(venv.single_action_space, masks, rng)
        obs, rewards, terminated, truncated, infos = venv.step(actions)
        for i, env in enumerate(singles):
            if done[i]:  # next-step autoreset: the action is ignored, the env starts its next episode
                single_obs, _ = env.reset()
                single = (0.0, False, False)
            else:
                single_obs, reward, term, trunc, info = env.step(actions[i])
                single = (reward, term, trunc)
                if term or trunc:
                    ended += 1
                    assert infos["_summary"][i] and infos["summary"]["e2e_mean_s"][i] == info["summary"]["e2e_mean_s"]
                if mode == "admit":
                    np.testing.assert_array_equal(infos["action_mask"][i], info["action_mask"])
            done[i] = single[1] or single[2]
            assert (rewards[i], terminated[i], truncated[i]) == single
            for key in single_obs:
                np.testing.assert_array_equal(obs[key][i], single_obs[key], err_msg=key)
    assert ended >= N  # every env went through an autoreset at least once


def test_vector_seeds_options_and_bad_actions():
    venv = gym.make_vec("llmsched/Serve-v2", num_envs=N, vectorization_mode="vector_entry_point", **SMALL)
    _, infos = venv.reset(options={"sim_seed": [5, 6, 7]})
    assert list(infos["sim_seed"]) == [5, 6, 7]
    _, infos = venv.reset(seed=[3, None, 4], options={"sim_seed": 9})
    assert list(infos["sim_seed"]) == [9, 9, 9]
    with pytest.raises(ConfigError, match="sim_seed"):
        venv.reset(options={"sim_seed": [1, 2]})
    actions = np.zeros((N, 6), dtype=np.float32)
    actions[1, 0] = np.nan  # slot 0 of env 1 holds a request after reset
    with pytest.raises(ConfigError, match="env 1: .*NaN"):
        venv.step(actions)
    with pytest.raises(ConfigError, match="shape"):
        venv.step(np.zeros((N, 5), dtype=np.float32))
    assert venv.max_episode_steps == 100_000  # the registration's safety net


@pytest.mark.parametrize("mode", ["rank", "admit"])
def test_sb3_adapter_matches_dummy_vec_env_with_monitor_and_reference_reward(mode):
    kwargs = dict(SMALL, action_mode=mode)
    wrapper = functools.partial(ReferenceReward, reference="fcfs")
    make = functools.partial(make_vec_env, "llmsched/Serve-v2", n_envs=N, seed=7, env_kwargs=kwargs, wrapper_class=wrapper)
    dummy, fast = make(vec_env_cls=DummyVecEnv), make(vec_env_cls=ServeVecEnv)
    a, b = dummy.reset(), fast.reset()
    rng = np.random.default_rng(1)
    episodes = 0
    for _ in range(300):
        for key in a:
            np.testing.assert_array_equal(a[key], b[key], err_msg=key)
        masks = None
        if mode == "admit":
            masks = np.stack(dummy.env_method("action_masks"))
            np.testing.assert_array_equal(masks, np.stack(fast.env_method("action_masks")))
        actions = random_actions(dummy.action_space, masks, rng)
        a, reward_a, done_a, infos_a = dummy.step(actions)
        b, reward_b, done_b, infos_b = fast.step(actions)
        np.testing.assert_array_equal(reward_a, reward_b)
        np.testing.assert_array_equal(done_a, done_b)
        for x, y in zip(infos_a, infos_b):
            assert x["TimeLimit.truncated"] == y["TimeLimit.truncated"]
            if "terminal_observation" in x:
                episodes += 1
                for key in x["terminal_observation"]:
                    np.testing.assert_array_equal(x["terminal_observation"][key], y["terminal_observation"][key])
                assert (x["episode"]["r"], x["episode"]["l"]) == (y["episode"]["r"], y["episode"]["l"])
                assert x["summary"] == y["summary"]
    assert episodes >= N


def test_sb3_adapter_trains_maskable_ppo_and_is_the_default():
    from sb3_contrib import MaskablePPO

    assert TrainConfig().vec_env == "vector" and vec_env_class("vector") is ServeVecEnv
    with pytest.raises(ConfigError, match="vec_env"):
        vec_env_class("threads")
    venv = make_vec_env("llmsched/Serve-v2", n_envs=2, seed=0, vec_env_cls=ServeVecEnv, env_kwargs=dict(SMALL, action_mode="admit"))
    model = MaskablePPO("MultiInputPolicy", venv, n_steps=32, batch_size=32, n_epochs=1, device="cpu", seed=0)
    model.learn(64)
