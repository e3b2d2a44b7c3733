"""llmsched/Serve-v1: checkers, determinism, vector envs, actions, rewards, policy-as-agent."""

from __future__ import annotations

import math
import warnings

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env

import llmsched_env  # noqa: F401  (registers the environments)
from llmsched_env.envs.serve import GLOBAL_FEATURES, ServeEnv
from llmsched_env.sim import FCFS, ConfigError, simulate
from llmsched_env.sim.observe import NUM_REQUEST_FEATURES
from llmsched_env.sim.request import RequestState

SMALL = dict(num_requests=40, load=0.9)
KWARG_SETS = [
    dict(),
    dict(action_mode="admit"),
    dict(batching="vllm", max_num_batched_tokens=8192, preemption_mode="swap", num_gpu_blocks=600, num_slots=8),
    dict(workload="azure-code", predictor="refining", decision_interval=20, reward="throughput"),
    dict(action_mode="admit", batching="static", max_num_batched_tokens=8192, reward="slo_goodput", slo_ttft_s=2.0, slo_tpot_s=0.1),
    dict(hardware="codellama-34b/a100", workload="arxiv-summarization", predictor="oracle", load=1.2, max_time_s=60.0),
]


def make(**kwargs) -> gym.Env:
    return gym.make("llmsched/Serve-v1", **{**SMALL, **kwargs})


def play(env: gym.Env, seed=None, options=None, policy="random", rng_seed=0, max_steps=100_000):
    """Run one episode; returns (observations, rewards, final info)."""
    rng = np.random.default_rng(rng_seed)
    obs, info = env.reset(seed=seed, options=options)
    observations, rewards = [obs], []
    for _ in range(max_steps):
        action = choose(env, info, rng, policy)
        obs, reward, terminated, truncated, info = env.step(action)
        observations.append(obs)
        rewards.append(reward)
        if terminated or truncated:
            break
    return observations, rewards, info


def choose(env: gym.Env, info: dict, rng: np.random.Generator, policy: str):
    unwrapped = env.unwrapped
    if unwrapped.action_mode == "rank":
        if policy == "fcfs":  # earlier arrivals get higher scores
            scores = np.zeros(unwrapped.num_slots, dtype=np.float32)
            arrivals = np.array([r.arrival for r in unwrapped.slots])
            if len(arrivals):
                scores[: len(arrivals)] = -np.argsort(np.argsort(arrivals)) / max(len(arrivals), 1)
            return scores
        return rng.uniform(-1, 1, unwrapped.num_slots).astype(np.float32)
    mask = info["action_mask"]
    if policy == "fcfs":  # admit the oldest visible waiting request, else advance
        held = [i for i, r in enumerate(unwrapped.slots) if mask[i]]
        return min(held, key=lambda i: unwrapped.slots[i].arrival) if held else unwrapped.num_slots
    return int(rng.choice(np.flatnonzero(mask)))


@pytest.mark.parametrize("kwargs", KWARG_SETS, ids=lambda k: ",".join(f"{a}={b}" for a, b in k.items()) or "default")
def test_both_env_checkers_pass(kwargs):
    env = make(**kwargs)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*unconventional shape.*")
        check_env(env.unwrapped, skip_render_check=True)
        sb3_check_env(ServeEnv(**{**SMALL, **kwargs}), warn=True)


def test_spaces_and_dtypes():
    env = make()
    obs, info = env.reset(seed=1)
    K = env.unwrapped.num_slots
    assert obs["requests"].shape == (K, NUM_REQUEST_FEATURES) and obs["requests"].dtype == np.float32
    assert obs["mask"].shape == (K,) and obs["globals"].shape == (len(GLOBAL_FEATURES),)
    assert env.observation_space.contains(obs)
    obs2, reward, terminated, truncated, info = env.step(env.action_space.sample())
    assert type(reward) is float and type(terminated) is bool and type(truncated) is bool
    assert obs2["requests"] is not obs["requests"]  # fresh arrays each step


def test_same_seed_same_trajectory_and_seeds_differ():
    a = play(make(), seed=3)
    b = play(make(), seed=3)
    c = play(make(), seed=4)
    assert a[1] == b[1]
    for x, y in zip(a[0], b[0]):
        for key in x:
            np.testing.assert_array_equal(x[key], y[key])
    assert a[1] != c[1]


def test_episode_runs_to_the_end_and_reports_the_summary():
    observations, rewards, info = play(make(num_requests=60), seed=0)
    s = info["summary"]
    assert s["arrived"] == 60 and s["finished"] + s["rejected"] == 60 and s["unfinished"] == 0
    assert info["completed"] == s["finished"]


@pytest.mark.parametrize("mode", ["rank", "admit"])
def test_latency_return_is_total_response_time_over_scale(mode):
    env = make(action_mode=mode, num_requests=50)
    _, rewards, info = play(env, seed=2)
    unwrapped = env.unwrapped
    records = unwrapped.records.to_arrays()
    total = float(np.sum(np.where(records["state"] == RequestState.FINISHED, records["finish_time"], unwrapped.engine.now) - records["arrival"]))
    assert sum(rewards) == pytest.approx(-total / unwrapped._reward_scale, rel=1e-9)
    assert -100 < sum(rewards) < 0


def play_flags(env: gym.Env, seed: int) -> tuple[bool, bool, dict]:
    """Run one random episode; returns its last (terminated, truncated, info)."""
    rng = np.random.default_rng(0)
    _, info = env.reset(seed=seed)
    while True:
        _, _, terminated, truncated, info = env.step(choose(env, info, rng, "random"))
        if terminated or truncated:
            return terminated, truncated, info


def test_time_limit_truncates_and_reports_unfinished():
    env = make(num_requests=400, load=2.0, max_time_s=30.0)
    terminated, truncated, info = play_flags(env, seed=0)
    s = info["summary"]
    assert truncated is True and terminated is False
    assert s["unfinished"] > 0 and s["arrived"] == s["finished"] + s["unfinished"] + s["rejected"]


def test_time_limit_before_the_last_arrival_truncates_even_with_an_empty_system():
    # 40 requests at a trickle: at t=30 s the system is empty but most requests are still to come
    env = make(load=0.02, max_time_s=30.0)
    terminated, truncated, info = play_flags(env, seed=0)
    assert truncated is True and terminated is False
    assert info["summary"]["arrived"] < 40


def test_an_episode_that_ends_in_time_terminates():
    terminated, truncated, info = play_flags(make(num_requests=30), seed=0)
    assert terminated is True and truncated is False and info["summary"]["finished"] == 30


@pytest.mark.filterwarnings("ignore:.*out of date")
def test_v0_is_v1_with_admission_preemption():
    v0, v1 = gym.make("llmsched/Serve-v0", **SMALL), make()
    assert v0.unwrapped.config.engine.admission_preemption is True
    assert v1.unwrapped.config.engine.admission_preemption is False
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*unconventional shape.*")
        check_env(v0.unwrapped, skip_render_check=True)


def test_fcfs_as_agent_matches_the_engine_run_request_by_request():
    """The policy-as-agent path: FCFS scores through the rank action give the engine's FCFS run."""
    kwargs = dict(num_requests=80, load=0.95, num_slots=256, num_gpu_blocks=1500)
    env = make(**kwargs)
    play(env, options={"sim_seed": 11}, policy="fcfs")
    agent_records = env.unwrapped.records.to_arrays()
    config = env.unwrapped.config
    direct = simulate(config, FCFS(), seed=11).records
    order_a, order_d = np.argsort(agent_records["id"]), np.argsort(direct["id"])
    for key in direct:
        np.testing.assert_allclose(agent_records[key][order_a], direct[key][order_d], rtol=1e-9, equal_nan=True, err_msg=key)


def test_admit_mode_fcfs_picks_match_the_engine_run():
    env = make(action_mode="admit", num_requests=60, num_slots=256)
    play(env, options={"sim_seed": 5}, policy="fcfs")
    agent_records = env.unwrapped.records.to_arrays()
    direct = simulate(env.unwrapped.config, FCFS(), seed=5).records
    np.testing.assert_allclose(np.sort(agent_records["finish_time"]), np.sort(direct["finish_time"]), rtol=1e-9)


def test_admit_mode_masks_and_invalid_picks():
    env = make(action_mode="admit")
    obs, info = env.reset(seed=0)
    unwrapped = env.unwrapped
    mask = info["action_mask"]
    assert mask.dtype == bool and mask.shape == (unwrapped.num_slots + 1,) and mask.any()
    np.testing.assert_array_equal(mask, unwrapped.action_masks())
    # at the first arrival the engine is idle and a request waits: it must be admitted
    assert mask[0] and not mask[unwrapped.num_slots]
    empty_slot = unwrapped.num_slots - 1  # no request there: an invalid pick
    obs, reward, _, _, info = env.step(empty_slot)
    assert info["invalid_action"] is True
    # the invalid pick was replaced by the first valid action: admitting slot 0 (no time passed)
    assert reward == 0.0 and not unwrapped.slots[0].held
    obs, reward, _, _, info = env.step(0)  # slot 0 is admitted already: invalid again, now advance is valid
    assert info["invalid_action"] is True and info["time_s"] > 0.0


def test_render_modes():
    env = make(render_mode="ansi")
    env.reset(seed=0)
    env.step(env.action_space.sample())
    text = env.render()
    assert "KV [" in text and "t=" in text
    env = make(render_mode="rgb_array")
    env.reset(seed=0)
    for _ in range(5):
        env.step(env.action_space.sample())
    image = env.render()
    assert image.shape == (400, 640, 3) and image.dtype == np.uint8 and image.min() < 255


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_make_vec(mode):
    envs = gym.make_vec("llmsched/Serve-v1", num_envs=2, vectorization_mode=mode, **SMALL)
    obs, info = envs.reset(seed=0)
    assert obs["requests"].shape[0] == 2
    for _ in range(5):
        obs, reward, terminated, truncated, info = envs.step(envs.action_space.sample())
    envs.close()


def test_sb3_vec_envs_and_ppo_smoke():
    from stable_baselines3 import PPO
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.vec_env import SubprocVecEnv

    env = make_vec_env("llmsched/Serve-v1", n_envs=2, env_kwargs=SMALL)
    model = PPO("MultiInputPolicy", env, n_steps=32, batch_size=32, n_epochs=1, device="cpu", seed=0)
    model.learn(64)
    env.close()
    # worker processes import the module named before the colon, which registers the env
    sub = make_vec_env("llmsched_env:llmsched/Serve-v1", n_envs=2, env_kwargs=SMALL, vec_env_cls=SubprocVecEnv)
    sub.reset()
    sub.step(np.stack([sub.action_space.sample() for _ in range(2)]))
    sub.close()


def test_maskable_ppo_smoke():
    from sb3_contrib import MaskablePPO

    env = make(action_mode="admit")
    model = MaskablePPO("MultiInputPolicy", env, n_steps=32, batch_size=32, n_epochs=1, device="cpu", seed=0)
    model.learn(64)


def test_true_length_hidden_unless_oracle():
    """Changing the true output lengths of the requests in the system changes no observation."""
    env = make(predictor="lognormal", num_requests=200, load=1.0)
    rng = np.random.default_rng(0)
    obs, info = env.reset(seed=0)
    for _ in range(40):  # some requests decoding, some waiting
        obs, _, _, _, info = env.step(choose(env, info, rng, "random"))
    unwrapped = env.unwrapped
    r = unwrapped.slots[0]
    features = dict(zip(llmsched_env.sim.observe.REQUEST_FEATURES, obs["requests"][0]))
    assert features["predicted_total"] == pytest.approx(math.log1p(int(r.predicted_output)) / math.log1p(16384), rel=1e-6)
    assert r.predicted_output != r.output_len
    unwrapped.engine.sync()
    for request in unwrapped.engine.live:
        request.output_len += 1000  # the truth changes, nothing the agent sees may
    again = unwrapped._observe()
    for key in obs:
        np.testing.assert_array_equal(obs[key], again[key], err_msg=key)


# ---------------------------------------------------------------------------------------------
# Bad input


def test_wrong_shape_nan_and_out_of_range_actions():
    env = make()
    env.reset(seed=0)
    with pytest.raises(ConfigError, match="shape"):
        env.step(np.zeros(3, dtype=np.float32))
    bad = np.zeros(env.unwrapped.num_slots, dtype=np.float32)
    bad[0] = np.nan
    with pytest.raises(ConfigError, match="NaN or infinite"):
        env.step(bad)
    bad[0] = -5.0
    with pytest.raises(ConfigError, match=r"outside the action space: expected values in \[-1, 1\]"):
        env.step(bad)
    with pytest.raises(ConfigError, match="sim_seed='abc' is invalid: expected an integer >= 0"):
        env.reset(options={"sim_seed": "abc"})
    admit = make(action_mode="admit")
    admit.reset(seed=0)
    with pytest.raises(ConfigError, match="expected an integer in"):
        admit.step(admit.unwrapped.num_slots + 5)
    with pytest.raises(ConfigError, match="one integer"):
        admit.step(np.array([0.5]))


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(bogus=1), "unknown argument.*'bogus'.*allowed"),
        (dict(action_mode="steer"), "action_mode"),
        (dict(reward="fun"), "reward"),
        (dict(num_slots=0), "num_slots"),
        (dict(load=-0.5), "load"),
        (dict(batching="lifo"), "batching"),
        (dict(workload="nope"), "lengths"),
        (dict(reward="slo_goodput"), "slo_ttft_s"),
        (dict(engine_kwargs=dict(block_sizee=16)), "block_sizee"),
        (dict(engine_kwargs=[("block_size", 16)]), "engine_kwargs=.* expected a mapping"),
        (dict(admission_preemption="yes"), "admission_preemption='yes' is invalid: expected true or false"),
    ],
)
def test_bad_kwargs_name_the_argument(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        make(**kwargs)


def test_spec_is_json_serialisable():
    env = make(engine_kwargs=dict(watermark=0.02), workload_kwargs=dict(arrival_cv=2.0), arrival="gamma")
    assert "watermark" in env.spec.to_json()


def test_preemption_cost_features_and_free_swap_follow_a_swap():
    """Per slot: the tokens a recompute would prefill again and the KV a swap would move; globally
    the free swap space, which a swap-out of that request reduces by exactly its blocks."""
    env = make(preemption_control=True, num_requests=60, load=1.0)
    u = env.unwrapped
    rng = np.random.default_rng(0)
    obs, info = env.reset(seed=3)
    for _ in range(30):
        action = np.zeros((u.num_slots, 5), dtype=np.float32)
        action[:, 0] = rng.uniform(-1, 1, u.num_slots)
        action[:, 1] = -1.0  # nobody evicted yet
        obs, *_ = env.step(action)
    u.engine.sync()
    column = {name: i for i, name in enumerate(llmsched_env.sim.observe.REQUEST_FEATURES)}
    holders = [i for i, r in enumerate(u.slots) if r.blocks > 0 and r.state == RequestState.RUNNING]
    assert holders
    i = holders[0]
    r = u.slots[i]
    blocks = -(-r.kv_tokens // u.config.engine.block_size)
    assert obs["requests"][i, column["recompute_tokens"]] == pytest.approx(math.log1p(r.kv_tokens) / math.log1p(16384), rel=1e-6)
    assert obs["requests"][i, column["swap_fraction"]] == pytest.approx(blocks / u.engine.num_blocks, rel=1e-6)
    swap_total = u.engine.swap_capacity_blocks
    free_before = obs["globals"][GLOBAL_FEATURES.index("free_swap")]
    assert free_before == pytest.approx(u.engine.free_swap_blocks / swap_total, rel=1e-6)
    action = np.zeros((u.num_slots, 5), dtype=np.float32)
    action[:, 1] = -1.0
    action[i, 1] = 1.0  # evict slot i now ...
    action[i, 3] = 1.0  # ... by swapping it out
    swapped_before = r.swap_preemptions
    free_blocks_before = u.engine.free_swap_blocks
    obs, *_ = env.step(action)
    assert r.swap_preemptions == swapped_before + 1
    # the swap-out took its blocks; whatever came back in since gave its blocks back
    assert u.engine.free_swap_blocks <= free_blocks_before
    if r.state == RequestState.SWAPPED:
        assert free_blocks_before - u.engine.free_swap_blocks >= blocks


def test_rgb_array_is_a_labelled_picture_and_human_draws_with_matplotlib():
    env = make(render_mode="rgb_array")
    env.reset(seed=0)
    for _ in range(5):
        env.step(env.action_space.sample())
    image = env.render()
    assert image.shape == (400, 640, 3) and image.dtype == np.uint8
    # text (titles, axis labels, legend) and both panels: dark pixels well beyond the two lines
    assert (image.min(axis=2) < 80).mean() > 0.01
    human = make(render_mode="human")
    human.reset(seed=0)
    human.step(human.action_space.sample())  # draws the window (matplotlib; no pygame)
    assert human.render() is None
    human.close()


@pytest.mark.parametrize("env_id", ["llmsched/Serve-v2", "llmsched/AgentNetwork-v1", "llmsched/Cluster-v0"])
def test_sb3_make_vec_env(env_id):
    """SB3's make_vec_env asks for render_mode='rgb_array': every env accepts it."""
    from stable_baselines3.common.env_util import make_vec_env

    kwargs = {"llmsched/Serve-v2": {"num_requests": 30}, "llmsched/AgentNetwork-v1": {"num_jobs": 10}}.get(env_id, {"num_requests": 30})
    venv = make_vec_env(env_id, n_envs=2, seed=0, env_kwargs=kwargs)
    venv.reset()
    venv.step(np.stack([venv.action_space.sample() for _ in range(2)]))
    frames = venv.get_images()
    assert len(frames) == 2 and frames[0].ndim == 3
    venv.close()
