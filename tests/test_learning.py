"""The pieces that make training learn: masked log-probabilities, Plackett-Luce orders, the
memory-aware MC-SF baseline, scenario mixtures and the behaviour-cloning teacher."""

from __future__ import annotations

import math

import gymnasium as gym
import numpy as np
import pytest
import torch

import baselines
import llmsched_env  # noqa: F401
from baselines.mcsf import MCSF, peak_memory
from llmsched_env import scenarios
from llmsched_env.envs.mixture import ScenarioMixture
from llmsched_env.sim import ConfigError, EngineConfig, PredictorConfig, SimConfig, WorkloadConfig, simulate
from train.bc import strongest_heuristic
from train.networks import SetRankPolicy, plackett_luce_log_prob

TINY_NET = {"features_extractor_kwargs": {"embed_dim": 16, "num_heads": 2, "num_layers": 1, "ff_dim": 32}}


def policy_for(env: gym.Env, **kwargs) -> SetRankPolicy:
    return SetRankPolicy(env.observation_space, env.action_space, lambda _: 1e-3, **TINY_NET, **kwargs)


def test_plackett_luce_log_prob_of_a_hand_computed_order():
    scores = torch.tensor([[math.log(1.0), math.log(2.0), math.log(3.0), 5.0]])
    mask = torch.tensor([[True, True, True, False]])
    actions = torch.tensor([[0.1, 0.5, -0.3, 0.9]])  # order of the occupied slots: 1, 0, 2 (slot 3 empty)
    # P = 2/6 * 1/4 * 3/3
    expected = math.log(2 / 6) + math.log(1 / 4) + math.log(1.0)
    assert plackett_luce_log_prob(scores, actions, mask).item() == pytest.approx(expected, rel=1e-6)
    # the orders of three slots are a distribution: their probabilities sum to 1
    import itertools

    total = 0.0
    for perm in itertools.permutations(range(3)):
        a = torch.zeros(1, 4)
        for rank, slot in enumerate(perm):
            a[0, slot] = 1.0 - rank * 0.5
        total += plackett_luce_log_prob(scores, a, mask).exp().item()
    assert total == pytest.approx(1.0, rel=1e-6)


@pytest.mark.parametrize("distribution", ["gaussian", "plackett-luce"])
def test_log_probabilities_cover_only_the_occupied_slots(distribution):
    env = gym.make("llmsched/Serve-v2", num_slots=8, num_requests=20)
    obs, _ = env.reset(seed=0)
    policy = policy_for(env, distribution=distribution)
    batch = {k: torch.as_tensor(v).unsqueeze(0) for k, v in obs.items()}
    n = int(obs["mask"].sum())
    assert 0 < n < 8
    with torch.no_grad():
        actions, _, log_prob = policy(batch)
        _, again, _ = policy.evaluate_actions(batch, actions)
        assert again.item() == pytest.approx(log_prob.item(), rel=1e-5, abs=1e-5)
        changed = actions.clone()
        changed[0, n:] = -changed[0, n:] * 0.5  # what the env ignores: the empty slots' entries
        _, masked, _ = policy.evaluate_actions(batch, changed)
    assert masked.item() == pytest.approx(log_prob.item(), rel=1e-5, abs=1e-5)
    if distribution == "plackett-luce":  # its actions are squashed into the space (Gaussian samples are clipped by SB3)
        assert np.all(np.abs(actions.numpy()) < 1.0)


def test_plackett_luce_deterministic_action_sorts_by_score_and_clones_a_teacher():
    from train.bc import behaviour_clone, collect

    env = gym.make("llmsched/Serve-v2", num_slots=8, num_requests=30)
    policy = policy_for(env, distribution="plackett-luce")
    demos = collect(baselines.parse("sjf"), env, [1, 2], gamma=0.99)
    losses = behaviour_clone(policy, demos, epochs=6, batch_size=64, learning_rate=3e-3)
    assert losses[-1] < losses[0]  # the likelihood of the teacher's orders rises


# -- MC-SF ------------------------------------------------------------------------------------------


def test_peak_memory_of_a_hand_computed_batch():
    # A holds 10 tokens for 3 more iterations, B 5 tokens for 1: at t=0 both run (15), at t=2 only
    # A (10 + 2 = 12); the peak is 15
    assert peak_memory([10.0, 5.0], [3, 1]) == 15.0
    # C 100 tokens for 50 iterations with D 1 token for 60: at t=49 both run: 100+49 + 1+49 = 199
    assert peak_memory([100.0, 1.0], [50, 60]) == 199.0


def test_mcsf_admits_only_what_fits_until_the_batch_finishes():
    # 20 blocks of 16 tokens (320 tokens, watermark 0); oracle predictions; fixed 100-token
    # prompts with 100-token outputs: one request peaks at 199 tokens, two at 2 x 199 > 320
    config = SimConfig(
        engine=EngineConfig(num_gpu_blocks=20, watermark=0.0, max_num_batched_tokens=512),
        workload=WorkloadConfig(lengths="fixed", prompt_mean=100, output_mean=100, arrival="deterministic", num_requests=6),
        predictor=PredictorConfig(kind="oracle"),
        rate=100.0,
    )
    mcsf = simulate(config, MCSF(), seed=0).summary
    fcfs = simulate(config, baselines.parse("fcfs"), seed=0).summary
    assert mcsf["preemptions"] == 0 and mcsf["finished"] == 6  # one at a time, never overflowing
    assert fcfs["preemptions"] > 0  # admitting on free blocks alone overflows as the KV grows
    assert baselines.parse("mcsf:max_wait_s=5").dynamic and not MCSF().dynamic
    with pytest.raises(ConfigError, match="mcsf.max_wait_s"):
        MCSF(max_wait_s=0)


def test_mcsf_aging_guard_serves_a_long_waiting_request_first():
    from llmsched_env.sim.request import Request

    old, new = Request(0, 0.0, 10, 500, 500.0), Request(1, 9.0, 10, 5, 5.0)
    plain = MCSF().priorities([old, new], now=10.0)
    aged = MCSF(max_wait_s=5.0).priorities([old, new], now=10.0)
    assert plain[1] < plain[0] and aged[0] < aged[1]


# -- mixtures and teachers -------------------------------------------------------------------------


def test_a_mixture_draws_episodes_by_weight_with_one_policy_interface():
    envs = [gym.make("llmsched/Serve-v2", scenario=name, num_slots=8, num_requests=10) for name in ("chat-a100-40gb", "mixed-slo")]
    mix = ScenarioMixture(envs, [3.0, 1.0])
    picks = []
    for episode in range(40):
        _, info = mix.reset(seed=episode if episode == 0 else None)
        picks.append(info["scenario_index"])
        assert mix.unwrapped.scenario_name == ("chat-a100-40gb", "mixed-slo")[info["scenario_index"]]
    assert 0.55 < np.mean(np.asarray(picks) == 0) < 0.95
    mix.reset(seed=3)
    first = [mix.reset()[1]["scenario_index"] for _ in range(10)]
    mix.reset(seed=3)
    assert [mix.reset()[1]["scenario_index"] for _ in range(10)] == first
    other = gym.make("llmsched/Serve-v2", num_slots=16, num_requests=10)
    with pytest.raises(ConfigError, match="same observation"):
        ScenarioMixture([envs[0], other], [1.0, 1.0])


def test_auto_teacher_is_the_strongest_non_oracle_heuristic():
    config = scenarios.sim_config("chat-a100-40gb", num_requests=300)
    name, scores = strongest_heuristic(config, [0, 1], candidates=("fcfs", "sjf"))
    assert name == min(scores, key=scores.get) and set(scores) == {"fcfs", "sjf"}
    assert scores["sjf"] < scores["fcfs"]  # queues form: shortest first wins


def test_mixture_seeds_give_independent_streams():
    envs = [gym.make("llmsched/Serve-v2", scenario=name, num_slots=8, num_requests=10) for name in ("chat-a100-40gb", "mixed-slo")]
    mix = ScenarioMixture(envs, [1.0, 1.0])
    mix.reset(seed=0)
    a = [e.unwrapped.np_random.integers(1 << 30) for e in envs]
    mix.reset(seed=1)
    b = [e.unwrapped.np_random.integers(1 << 30) for e in envs]
    assert len(set(a + b)) == 4  # no env of seed 0 shares a stream with an env of seed 1


def test_plackett_luce_predict_is_the_policys_deterministic_action():
    env = gym.make("llmsched/Serve-v2", num_slots=8, num_requests=20)
    obs, _ = env.reset(seed=0)
    policy = policy_for(env, distribution="plackett-luce")
    batch = {k: torch.as_tensor(v).unsqueeze(0) for k, v in obs.items()}
    with torch.no_grad():
        expected = policy(batch, deterministic=True)[0].numpy()[0]
    action, _ = policy.predict(obs, deterministic=True)
    np.testing.assert_allclose(action, expected, rtol=1e-4, atol=1e-7)  # float32 rounding across thread counts
