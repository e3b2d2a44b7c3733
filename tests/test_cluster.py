"""Serving clusters: co-simulation, routers (direct and through the env), Cluster-v0's contract."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import llmsched_env  # noqa: F401  (registers the environments)
from baselines.routing import RouterAgent, available_routers, make_router, parse_router
from llmsched_env.envs.cluster import ClusterEnv
from llmsched_env.sim import EngineConfig, SimConfig, WorkloadConfig, simulate
from llmsched_env.sim.cluster import Cluster, ClusterConfig
from llmsched_env.sim.validation import ConfigError

SMALL = dict(num_requests=120, workload_kwargs={"max_prompt_len": 4096})


def small_config(n=3, prefix="multi-turn", caching=True, requests=150, **kw) -> ClusterConfig:
    workload = WorkloadConfig(lengths="azure-conv", num_requests=requests, prefix=prefix, max_prompt_len=4096, num_conversations=12)
    return ClusterConfig(replicas=(EngineConfig(enable_prefix_caching=caching),) * n, workload=workload, **kw)


def test_one_replica_cluster_is_the_single_engine_run():
    config = small_config(n=1, load=0.9)
    result = Cluster(config, seed=4).run(make_router("round-robin"))
    single = simulate(SimConfig(engine=config.replicas[0], workload=config.workload, rate=config.arrival_rate()), seed=4)
    order = np.argsort(single.records["id"])
    for key, values in single.records.items():
        np.testing.assert_array_equal(values[order], result.records[key], err_msg=key)


@pytest.mark.parametrize("name", available_routers())
def test_every_router_gives_the_same_run_directly_and_through_the_env(name):
    env = gym.make("llmsched/Cluster-v0", num_replicas=3, **SMALL)
    config = env.unwrapped.config
    agent = RouterAgent(make_router(name))
    _, info = env.reset(options={"sim_seed": 7})
    agent.reset(info["sim_seed"])
    done, total = False, 0.0
    while not done:
        _, reward, terminated, truncated, info = env.step(agent.act(env))
        total += reward
        done = terminated or truncated
    assert terminated and not truncated
    direct = Cluster(config, seed=7).run(make_router(name))
    assert info["summary"] == pytest.approx(direct.summary, nan_ok=True)
    for key, values in direct.records.items():
        np.testing.assert_array_equal(values, env.unwrapped.result.records[key], err_msg=key)
    # the return is minus the total response time over the scale (Little's law)
    finished = direct.records
    response = (finished["finish_time"] - finished["arrival"]).sum()
    assert -total * env.unwrapped._reward_scale == pytest.approx(response, rel=1e-9)


def test_no_request_is_lost_and_replicas_stay_consistent():
    config = small_config(n=3, load=1.0)
    cluster = Cluster(config, seed=2)
    router = make_router("prefix-affinity")
    router.reset(2)
    while (r := cluster.next_arrival()) is not None:
        for engine in cluster.engines:
            engine.check_invariants()
            assert engine.now >= r.arrival or not engine.live  # nobody built a batch past it unaware
        cluster.assign(router.route(r, cluster))
    result = cluster.finish("prefix-affinity")
    assert result.records["id"].tolist() == list(range(150))
    assert sum(result.routed) == 150 and result.summary["finished"] == 150
    for engine in cluster.engines:
        engine.check_invariants()
        assert engine.free_blocks == engine.num_blocks


def test_prefix_affinity_follows_the_conversation_and_beats_round_robin():
    config = small_config(n=4, load=0.8, requests=300)
    rr = Cluster(config, seed=1).run(make_router("round-robin"))
    affinity = Cluster(config, seed=1).run(make_router("prefix-affinity"))
    assert affinity.summary["prefix_hit_rate_tokens"] > rr.summary["prefix_hit_rate_tokens"] + 0.15
    assert affinity.summary["e2e_mean_s"] < rr.summary["e2e_mean_s"]


def test_routers_hand_cases():
    config = small_config(n=3, load=0.5)
    cluster = Cluster(config, seed=0)
    r = cluster.next_arrival()
    rr = make_router("round-robin")
    rr.reset(0)
    assert [rr.route(r, cluster) for _ in range(4)] == [0, 1, 2, 0]
    cluster.assign(1)
    r = cluster.next_arrival()
    assert make_router("least-outstanding").route(r, cluster) == 0  # replica 1 holds a request
    assert cluster.outstanding(1) == 1 and cluster.outstanding(0) == 0
    with pytest.raises(ConfigError, match="replica"):
        cluster.assign(3)
    assert parse_router("weighted:w_prefix=1.5").w_prefix == 1.5
    with pytest.raises(ConfigError, match="router='nope'"):
        make_router("nope")
    with pytest.raises(ConfigError, match="cache_threshold"):
        make_router("prefix-affinity", cache_threshold=2)


def test_cluster_env_passes_both_checkers():
    from stable_baselines3.common.env_checker import check_env as sb3_check_env

    check_env(ClusterEnv(num_replicas=2, num_requests=30))
    with pytest.warns(UserWarning):  # the per-replica rows are a 2-D observation
        sb3_check_env(ClusterEnv(num_replicas=2, num_requests=30))


def _episode(env, seed, actions):
    obs, info = env.reset(seed=seed)
    out = [obs["replicas"].copy()]
    rewards = []
    rng = np.random.default_rng(0)
    done = False
    while not done:
        obs, reward, terminated, truncated, info = env.step(int(rng.integers(actions)))
        out.append(obs["replicas"].copy())
        rewards.append(reward)
        done = terminated or truncated
    return info["sim_seed"], np.concatenate(out), rewards


def test_cluster_env_is_deterministic_under_reset_seed():
    env = gym.make("llmsched/Cluster-v0", num_replicas=2, **SMALL)
    a = _episode(env, 11, 2)
    b = _episode(env, 11, 2)
    c = _episode(env, 12, 2)
    assert a[0] == b[0] and np.array_equal(a[1], b[1]) and a[2] == b[2]
    assert a[0] != c[0]


def test_heterogeneous_replicas_and_masks():
    env = ClusterEnv(num_replicas=2, hardware=["llama2-7b/a100", "llama2-7b/h100"], **SMALL)
    assert [e.hardware for e in env.config.replicas] == ["llama2-7b/a100", "llama2-7b/h100"]
    # a replica too small for long prompts is masked for them
    config = ClusterConfig(replicas=(EngineConfig(num_gpu_blocks=40), EngineConfig()), workload=WorkloadConfig(lengths="azure-conv", num_requests=30))
    env = ClusterEnv.from_config(config)
    env.reset(seed=0)
    seen = set()
    done = False
    while not done:
        fits = env.request.prompt_len + env.request.output_len - 1 <= 40 * 16
        assert env.action_masks().tolist() == [fits, True]
        seen.add(fits)
        _, _, terminated, truncated, info = env.step(0)
        assert info["invalid_action"] == (not fits)
        done = terminated or truncated
    assert seen == {True, False} and info["summary"]["rejected"] == 0
    with pytest.raises(ConfigError, match="hardware"):
        ClusterEnv(num_replicas=3, hardware=["llama2-7b/a100"])
    with pytest.raises(ConfigError, match="unknown argument"):
        ClusterEnv(replicas=2)
    env.reset(seed=0)
    with pytest.raises(ConfigError, match="action"):
        env.step(5)


def test_cluster_scenarios_build_configs_and_envs():
    from llmsched_env import scenarios

    names = scenarios.cluster_names()
    assert {"cluster-chat-multiturn", "cluster-system-prompt", "cluster-hetero"} <= set(names)
    hetero = scenarios.cluster_config("cluster-hetero", num_requests=50)
    assert [e.hardware for e in hetero.replicas] == ["llama2-7b/a100"] * 2 + ["llama2-7b/h100"] * 2
    assert hetero.workload.num_requests == 50 and all(e.enable_prefix_caching for e in hetero.replicas)
    env = gym.make("llmsched/Cluster-v0", scenario="cluster-system-prompt", num_requests=40)
    assert env.unwrapped.config.workload.prefix == "system-prompt" and env.action_space.n == 4
    with pytest.raises(ConfigError, match="cluster scenario"):
        scenarios.cluster_config("chat-bursty")
    assert "cluster-hetero" not in scenarios.leaderboard()


def test_cluster_stability_is_its_replicas_verdict():
    # below capacity every replica is stable; far above it (all to one replica) one replica's backlog grows
    stable = Cluster(small_config(n=2, load=0.5, requests=400), seed=1).run(make_router("round-robin"))
    assert [s["stability"] for s in stable.replica_summaries] == ["stable", "stable"]
    assert stable.summary["stability"] == "stable"

    class AllToZero:
        name = "all-to-zero"

        def reset(self, seed):
            pass

        def route(self, request, cluster):
            return 0

    overloaded = Cluster(small_config(n=2, load=1.6, requests=400), seed=1).run(AllToZero())
    assert overloaded.replica_summaries[0]["stability"] == "unstable"
    assert overloaded.summary["stability"] == "unstable"
    assert stable.summary["backlog_slope_per_s"] == pytest.approx(sum(s["backlog_slope_per_s"] for s in stable.replica_summaries))
