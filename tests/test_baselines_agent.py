"""Heuristics through the environment, and preemption as an action (issue: preemption control)."""

from __future__ import annotations

import warnings

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env

import baselines
import llmsched_env  # noqa: F401
from baselines import PolicyAgent
from baselines.preemption import recompute_seconds, swap_seconds
from llmsched_env.envs.serve import ServeEnv
from llmsched_env.sim import EngineConfig, LinearCostModel, RequestBatch, simulate
from llmsched_env.sim.engine import Engine
from llmsched_env.sim.request import PreemptionMode, RecordBuffer, RequestState

# every request visible, KV tight enough that preemptions happen
ENV = dict(num_requests=70, load=0.95, num_slots=256, num_gpu_blocks=1200)


def play(env, agent: PolicyAgent, sim_seed: int):
    agent.bind(env)
    obs, info = env.reset(options={"sim_seed": sim_seed})
    while True:
        obs, reward, terminated, truncated, info = env.step(agent.act(env))
        if terminated or truncated:
            return env.unwrapped.records.to_arrays(), info


def assert_same_records(a: dict, b: dict) -> None:
    order_a, order_b = np.argsort(a["id"]), np.argsort(b["id"])
    for key in a:
        np.testing.assert_allclose(a[key][order_a], b[key][order_b], rtol=1e-9, equal_nan=True, err_msg=key)


# Preemption-mode baselines need preemption_control to pass their mode through the env (below);
# admission control (MC-SF's ``admit``) is not an order, and the rank action carries only orders.
ORDERS = [
    spec for spec in baselines.available()
    if not hasattr(baselines.parse(spec), "preemption_mode") and not hasattr(baselines.parse(spec), "admit")
]  # fmt: skip


@pytest.mark.parametrize("spec", ORDERS)
def test_engine_path_and_env_path_agree(spec):
    predictor = "refining" if spec in ("trail", "sprpt") else "lognormal"
    env = gym.make("llmsched/Serve-v1", predictor=predictor, **ENV)
    for sim_seed in (1, 2):
        via_env, _ = play(env, PolicyAgent(baselines.parse(spec)), sim_seed)
        direct = simulate(env.unwrapped.config, baselines.parse(spec), seed=sim_seed).records
        assert_same_records(via_env, direct)


@pytest.mark.parametrize("spec", ["fcfs"])
def test_admit_mode_agent_matches_the_engine_for_fcfs(spec):
    env = gym.make("llmsched/Serve-v1", action_mode="admit", **ENV)
    via_env, _ = play(env, PolicyAgent(baselines.parse(spec)), 3)
    direct = simulate(env.unwrapped.config, baselines.parse(spec), seed=3).records
    assert_same_records(via_env, direct)


def test_preemption_baselines_through_the_env_with_preemption_control():
    env = gym.make("llmsched/Serve-v1", preemption_control=True, **ENV)
    for spec in ("vllm-recompute", "swap-first", "cost-aware"):
        via_env, _ = play(env, PolicyAgent(baselines.parse(spec)), 4)
        direct = simulate(env.unwrapped.config, baselines.parse(spec), seed=4).records
        if spec != "cost-aware":  # cost-aware prices the KV at the moment of preemption, the env at the epoch
            assert_same_records(via_env, direct)
        assert len(via_env["id"]) == ENV["num_requests"]


# ---------------------------------------------------------------------------------------------
# Preemption modes chosen by policy, costs by hand


ONE_SECOND = LinearCostModel(intercept_ms=1000.0, prefill_token_ms=0.0, decode_ms=0.0, decode_ctx_ms=0.0)


def tiny(policy, swap_s=0.25, swap_bytes=1024.0, rows=((0.0, 2, 6), (0.0, 2, 4))):
    arrival, prompt, output = (np.asarray(c) for c in zip(*rows))
    batch = RequestBatch(arrival.astype(float), prompt.astype(np.int64), output.astype(np.int64), predicted_len=output.astype(float))
    records = RecordBuffer()
    engine = Engine(
        EngineConfig(block_size=2, watermark=0.0), ONE_SECOND, 4, [batch], policy,
        swap_block_bytes=swap_bytes, swap_seconds_per_block=swap_s, on_record=records.append,
    )
    return engine, records


def test_policy_chooses_the_preemption_mode():
    # the same 4-block scenario as tests/test_engine.py: request 1 is preempted at iteration 4
    for spec, mode_field in (("vllm-recompute", "recompute_preemptions"), ("swap-first", "swap_preemptions")):
        engine, records = tiny(baselines.parse(spec))
        engine.run()
        b = records.to_arrays()
        assert b[mode_field][b["id"] == 1][0] == 1, spec


def test_cost_aware_picks_the_cheaper_mode():
    engine, _ = tiny(baselines.parse("cost-aware"), swap_s=1e-3)
    r = engine  # a request with 4 tokens of KV: recompute costs a 4-token prefill of the 1 s model = 0 extra
    policy = baselines.parse("cost-aware")
    from llmsched_env.sim.request import Request

    req = Request(0, 0.0, 2, 6, 6.0)
    req.kv_tokens = 4
    assert recompute_seconds(req, r) == 0.0 and swap_seconds(req, r) == pytest.approx(2 * 2 * 1e-3)
    assert policy.preemption_mode(req, r) == PreemptionMode.RECOMPUTE  # 0 s beats 4 ms
    costly = LinearCostModel(intercept_ms=1000.0, prefill_token_ms=100.0, decode_ms=0.0, decode_ctx_ms=0.0)
    engine2 = Engine(EngineConfig(block_size=2), costly, 4, [], swap_block_bytes=1024.0, swap_seconds_per_block=1e-3)
    assert policy.preemption_mode(req, engine2) == PreemptionMode.SWAP  # 0.3 s of prefill vs 4 ms of PCIe


def test_agent_eviction_charges_swap_time_and_frees_kv():
    """Evict the first request by hand after its first token: 2-token KV = 1 block out, 1 back in."""
    s = 0.25
    engine, records = tiny(None, swap_s=s, rows=((0.0, 2, 3),))
    assert engine.run_until_epoch()  # the arrival
    engine.advance()  # iteration 1: prefill -> first token at t=1
    r = engine.live[0]
    free_before = engine.free_blocks
    engine.evict(r, PreemptionMode.SWAP)
    assert r.state == RequestState.SWAPPED and engine.free_blocks == free_before + 1 and r.swap_blocks == 1
    engine.run()
    rec = records.to_arrays()
    # it 2: swap out (1 block) and nothing else to run -> the request swaps back in at once (1 block):
    # iteration 2 = 1 s + 2 * 0.25 s, then token 2; iteration 3: token 3 -> finish at 3.5 s
    assert rec["finish_time"][0] == pytest.approx(3.0 + 2 * s)
    assert rec["swapped_blocks"][0] == 1 and engine.stats.swap_time == pytest.approx(2 * s)


def test_evicting_a_waiting_request_is_an_error():
    engine, _ = tiny(None)
    engine.run_until_epoch()
    from llmsched_env.sim import ConfigError

    with pytest.raises(ConfigError, match="expected a request holding KV"):
        engine.evict(engine.live[0])


# ---------------------------------------------------------------------------------------------
# The env with preemption control


@pytest.mark.parametrize("mode", ["rank", "admit"])
def test_env_checkers_with_preemption_control(mode):
    kwargs = dict(num_requests=40, preemption_control=True, action_mode=mode, num_gpu_blocks=700, preemption_mode="swap")
    env = gym.make("llmsched/Serve-v1", **kwargs)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*unconventional shape.*")
        check_env(env.unwrapped, skip_render_check=True)
        sb3_check_env(ServeEnv(**kwargs), warn=True)


def test_random_evictions_lose_no_request_and_count_modes():
    env = gym.make("llmsched/Serve-v1", num_requests=60, preemption_control=True, num_gpu_blocks=1500)
    rng = np.random.default_rng(0)
    env.reset(seed=0)
    while True:
        action = rng.uniform(-1, 1, env.action_space.shape).astype(np.float32)
        action[:, 1] = np.where(rng.random(action.shape[0]) < 0.05, 1.0, -1.0)  # evict 5 % of slots
        _, _, terminated, truncated, info = env.step(action)
        if terminated or truncated:
            break
    s = info["summary"]
    assert s["arrived"] == 60 and s["finished"] + s["rejected"] == 60
    assert s["preemptions"] == s["preemptions_recompute"] + s["preemptions_swap"] + s["preemptions_restart"] > 0
    assert s["preemptions_swap"] > 0 and s["preemptions_restart"] > 0


def test_admit_mode_preempt_actions_are_masked_to_kv_holders():
    env = gym.make("llmsched/Serve-v1", num_requests=40, action_mode="admit", preemption_control=True)
    obs, info = env.reset(seed=0)
    u = env.unwrapped
    K = u.num_slots
    assert env.action_space.n == 4 * K + 1
    obs, _, _, _, info = env.step(0)  # admit the first request
    obs, _, _, _, info = env.step(K)  # advance: it is now running
    mask = info["action_mask"]
    holders = [i for i, r in enumerate(u.slots) if r.blocks > 0]
    assert holders and all(mask[K + 1 + 3 * i + m] for i in holders for m in (0, 2))
    others = [i for i in range(K) if i not in holders]
    assert not any(mask[K + 1 + 3 * i + m] for i in others for m in range(3))
    i = holders[0]
    obs, reward, _, _, info = env.step(K + 1 + 3 * i + PreemptionMode.RESTART)
    assert reward == 0.0 and u.engine.stats.preemptions == 1


def test_preemption_control_is_validated():
    from llmsched_env.sim import ConfigError

    with pytest.raises(ConfigError, match="preemption_control"):
        gym.make("llmsched/Serve-v1", preemption_control="yes")
    env = gym.make("llmsched/Serve-v1", preemption_control=True)
    env.reset(seed=0)
    with pytest.raises(ConfigError, match="expected \\(32, 5\\)"):
        env.step(np.zeros(32, dtype=np.float32))
