"""Agent networks: exact co-simulation, conservation, job metrics, presets, baselines and
llmsched/AgentNetwork-v1 (checkers, determinism, rewards, agent path == direct path)."""

from __future__ import annotations

import dataclasses
import math
import warnings
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env

import baselines
import llmsched_env  # noqa: F401  (registers the environments)
from baselines.network import ClassPriority, MaxPressure, PerEngine, StagePriority, parse
from llmsched_env.envs.network import AgentNetworkEnv
from llmsched_env.sim import ConfigError, EngineConfig, LinearCostModel, PredictorConfig, RequestBatch
from llmsched_env.sim.cost import resolve_hardware
from llmsched_env.sim.engine import Engine
from llmsched_env.sim.network import (
    CALL_FIELDS,
    CallConfig,
    DelayConfig,
    EngineSpec,
    Network,
    NetworkConfig,
    WorkflowClass,
    load_network_config,
    simulate_network,
)
from llmsched_env.sim.network import JOB_RECORD_FIELDS, available_network_presets, job_summary, network_preset
from llmsched_env.sim.request import RequestState

CONFIGS = Path(__file__).resolve().parents[1] / "configs" / "network"
ENV_ID = "llmsched/AgentNetwork-v1"


def constant(seconds: float) -> LinearCostModel:
    """Every iteration takes ``seconds`` whatever the batch."""
    return LinearCostModel(intercept_ms=seconds * 1000.0, prefill_token_ms=0.0, decode_ms=0.0, decode_ctx_ms=0.0)


def engine(name: str, seconds: float | None = None, **fields) -> EngineSpec:
    cfg = EngineConfig(**({"max_num_batched_tokens": 768, "num_gpu_blocks": 10**6} | fields))
    return EngineSpec(name, cfg, None if seconds is None else constant(seconds))


def call(where: str, prompt: int, output: int, context: float = 0.0) -> CallConfig:
    return CallConfig(engine=where, lengths="fixed", prompt_mean=prompt, output_mean=output, context=context)


def one_job(name: str, *stages, at: float = 0.0, delay: float = 0.0) -> WorkflowClass:
    """A class with a single job arriving at ``at``; each stage a call or a tuple of calls."""
    stages = tuple(s if isinstance(s, tuple) else (s,) for s in stages)
    return WorkflowClass(name, stages=stages, arrival_times=(at,), delay=DelayConfig(mean_s=delay))


def run(engines, classes, policy=None, **config) -> tuple:
    net = NetworkConfig(engines=tuple(engines), classes=tuple(classes), **({"num_jobs": None} | config))
    result = simulate_network(net, policy, record_calls=True)
    calls = [dict(zip(CALL_FIELDS, c)) for c in result.calls]
    return result, calls


def call_key(c: tuple) -> tuple:
    return c[0], c[2], c[3]  # job, stage, call


def jct(result, cls: int = 0) -> float:
    jobs = result.jobs
    i = int(np.flatnonzero(jobs["cls"] == cls)[0])
    assert jobs["state"][i] == RequestState.FINISHED
    return float(jobs["finish_time"][i] - jobs["arrival"][i])


# ------------------------------------------------------------------------------------------------
# Exact timing on hand-computed cases


@pytest.mark.parametrize("delay", [0.0, 2.5])
def test_two_call_chain_alone_takes_its_two_calls_plus_the_delay(delay):
    # constant 1-s iterations: each call is one prefill iteration (emits token 1) + 31 decodes
    result, calls = run([engine("e1", 1.0), engine("e2", 1.0)], [one_job("A", call("e1", 32, 32), call("e2", 512, 32), delay=delay)])
    assert jct(result) == 64.0 + delay
    assert [c["finish_time"] - c["arrival"] for c in calls] == [32.0, 32.0]
    assert calls[1]["arrival"] == calls[0]["finish_time"] + delay


def test_two_call_chain_on_a_real_cost_model_equals_its_calls_run_alone():
    spec = engine("gpu", hardware="llama2-7b/a100", max_num_batched_tokens=2048)

    def alone(prompt: int, output: int) -> float:
        hw = resolve_hardware(spec.engine)
        batch = RequestBatch(np.zeros(1), np.array([prompt]), np.array([output]), np.array([float(output)]))
        finish = []
        Engine(spec.engine, hw.cost, hw.num_blocks, [batch], on_record=lambda r: finish.append(r.finish_time)).run()
        return finish[0]

    result, _ = run([spec], [one_job("A", call("gpu", 3000, 40), call("gpu", 700, 120), delay=1.25)])
    assert jct(result) == pytest.approx(alone(3000, 40) + 1.25 + alone(700, 120), rel=1e-12)


def test_a_call_handed_over_mid_iteration_joins_the_next_batch():
    # e1 (1 s iterations) decodes a background job from t=0; A's first call ends on e2 at 0.7 s and its
    # second call reaches e1 mid-iteration: it joins the batch built at 1.0 s and finishes at 2.0 s.
    bg = one_job("bg", call("e1", 1, 10))
    a = one_job("A", call("e2", 1, 1), call("e1", 1, 1))
    result, calls = run([engine("e1", 1.0), engine("e2", 0.7)], [bg, a])
    assert jct(result, cls=1) == pytest.approx(2.0, abs=1e-12)
    assert jct(result, cls=0) == 10.0


def test_fork_join_waits_for_the_slowest_branch():
    # stage 1 on e1 [0, 1]; +0.5 s; branches: e1 (2 tokens) 1.5 -> 3.5, e2 (3 tokens at 0.7 s) 1.5 -> 3.6;
    # join at 3.6; +0.5 s; stage 3 on e2: 4.1 -> 4.8
    job = one_job("F", call("e1", 1, 1), (call("e1", 1, 2), call("e2", 1, 3)), call("e2", 1, 1), delay=0.5)
    result, calls = run([engine("e1", 1.0), engine("e2", 0.7)], [job])
    assert jct(result) == pytest.approx(4.8, abs=1e-12)
    last = [c for c in calls if c["stage"] == 2][0]
    assert last["arrival"] == pytest.approx(3.6 + 0.5, abs=1e-12)


def test_context_adds_the_previous_stage_tokens_to_the_prompt():
    job = one_job("C", call("e1", 100, 20), (call("e1", 10, 5, context=0.5), call("e1", 7, 3)), call("e1", 1, 1, context=1.0))
    _, calls = run([engine("e1", 1.0)], [job])
    prompts = {(c["stage"], c["call"]): c["prompt_len"] for c in calls}
    assert prompts == {(0, 0): 100, (1, 0): 10 + 60, (1, 1): 7, (2, 0): 1 + (70 + 5) + (7 + 3)}


# ------------------------------------------------------------------------------------------------
# Co-simulation against iteration-by-iteration stepping; conservation


def busy_network(fast_forward: bool, **config) -> NetworkConfig:
    """Three engines, chains and a fork-join, tool delays, context, KV tight enough to preempt
    (and to reject a few long calls, failing their jobs)."""
    kw = dict(fast_forward=fast_forward, max_num_batched_tokens=512, max_num_seqs=32)
    engines = (
        EngineSpec("a", EngineConfig(hardware="llama2-7b/a100", num_gpu_blocks=120, **kw)),
        EngineSpec("b", EngineConfig(hardware="llama2-7b/a100", num_gpu_blocks=100, preemption_mode="swap", **kw)),
        EngineSpec("c", EngineConfig(num_gpu_blocks=10**5, **kw), constant(0.02)),
    )
    ln = dict(lengths="lognormal", prompt_mean=300, output_mean=80, max_prompt_len=2000, max_output_len=400)
    classes = (
        WorkflowClass("chain", stages=((CallConfig("a", **ln),), (CallConfig("b", context=1.0, **ln),), (CallConfig("c", **ln),)), rate=2.0, delay=DelayConfig("exponential", 0.3)),
        WorkflowClass(
            "fork",
            stages=((CallConfig("c", **ln),), (CallConfig("a", **ln), CallConfig("b", **ln), CallConfig("c", context=0.5, **ln)), (CallConfig("a", **ln),)),
            rate=1.0,
            delay=DelayConfig("lognormal", 0.2, sigma=1.0),
        ),
    )
    predictor = PredictorConfig(kind="refining", refresh_every=16)  # refreshed predictions are events too
    return NetworkConfig(engines=engines, classes=classes, predictor=predictor, **({"num_jobs": 120, "seed": 3} | config))


@pytest.mark.parametrize("policy", [None, "trail", "lbfs", "max-pressure"])
def test_fast_forward_network_equals_iteration_by_iteration_stepping(policy):
    runs = []
    for fast_forward in (True, False):
        net = Network(busy_network(fast_forward), None if policy is None else parse(policy), record_calls=True)
        result = net.run()
        for e in net.engines:
            e.check_invariants()
        runs.append(result)
    fast, slow = runs
    assert fast.summary["jobs_finished"] + fast.summary["jobs_failed"] == 120
    assert sum(s["preemptions"] for s in fast.engine_summaries.values()) > 0
    a, b = sorted(fast.calls, key=call_key), sorted(slow.calls, key=call_key)
    assert [c[:5] for c in a] == [c[:5] for c in b]
    np.testing.assert_allclose([c[5:9] for c in a], [c[5:9] for c in b], rtol=1e-9)
    np.testing.assert_allclose(fast.jobs["finish_time"], slow.jobs["finish_time"], rtol=1e-9)


def test_jobs_and_calls_are_conserved_across_engines():
    config = busy_network(True)
    net = Network(config, record_calls=True)
    result = net.run()
    s, jobs = result.summary, result.jobs
    assert s["jobs_arrived"] == 120 == s["jobs_finished"] + s["jobs_failed"] and s["jobs_unfinished"] == 0
    assert s["jobs_failed"] == sum(e["rejected"] for e in result.engine_summaries.values()) > 0
    assert net.buffer_calls == [0] * len(net.buffers) and net.jobs_in_system == 0 and not net.live_jobs
    # every call of every finished job ran exactly once, on its buffer's engine, after its stage was
    # released; a failed job has exactly one rejected call and never reaches a later stage
    calls = [dict(zip(CALL_FIELDS, c)) for c in result.calls]
    per_job = {}
    for c in calls:
        per_job.setdefault(c["job"], []).append(c)
    sizes = [[len(stage) for stage in wf.stages] for wf in config.classes]
    for j, cls, state in zip(jobs["id"], jobs["cls"], jobs["state"]):
        mine = per_job[int(j)]
        if state == RequestState.REJECTED:
            rejected = [c for c in mine if c["state"] == RequestState.REJECTED]
            assert len(rejected) == 1 and all(c["stage"] <= rejected[0]["stage"] for c in mine)
            continue
        assert sorted((c["stage"], c["call"]) for c in mine) == [(s_, k) for s_, n in enumerate(sizes[cls]) for k in range(n)]
        ends = [max(c["finish_time"] for c in mine if c["stage"] == s_) for s_ in range(len(sizes[cls]))]
        for c in mine:
            assert c["state"] == RequestState.FINISHED
            assert c["engine"] == net.buffers[net._stage_buffer[cls][c["stage"]] + c["call"]].engine
            if c["stage"] > 0:
                assert c["arrival"] >= ends[c["stage"] - 1]
    # per engine: calls that arrived == calls recorded (finished or rejected: none is left inside)
    for name, e in zip(net.engine_names, net.engines):
        summary = result.engine_summaries[name]
        assert e.arrived == summary["arrived"] == summary["finished"] + summary["rejected"]
        assert e.arrived == sum(1 for c in calls if net.engine_names[c["engine"]] == name)
    # Little's law: the integral of jobs in the system is the total job completion time
    total = float(np.sum(jobs["finish_time"] - jobs["arrival"]))
    assert net.job_area == pytest.approx(total, rel=1e-9)
    assert s["jobs_in_system_mean"] == pytest.approx(total / s["duration_s"], rel=1e-9)


def test_time_limit_reports_unfinished_jobs_never_drops_them():
    net = Network(busy_network(True, num_jobs=None, max_time_s=20.0))
    result = net.run()
    s = result.summary
    assert net.truncated and s["duration_s"] >= 20.0
    assert s["jobs_unfinished"] > 0
    assert s["jobs_arrived"] == s["jobs_finished"] + s["jobs_unfinished"] + s["jobs_failed"] == len(result.jobs["id"])
    assert np.all(result.jobs["arrival"] < 20.0)
    unfinished = result.jobs["state"] == RequestState.WAITING
    assert np.all(np.isnan(result.jobs["finish_time"][unfinished]))


def test_a_call_that_can_never_fit_fails_its_job():
    small = engine("tiny", 1.0, num_gpu_blocks=4, block_size=16)  # 64 tokens of KV
    ok = one_job("ok", call("tiny", 10, 5))
    bad = one_job("bad", call("tiny", 10, 5), call("tiny", 100, 5), at=1.0)
    result, _ = run([small], [ok, bad])
    s = result.summary
    assert (s["jobs_finished"], s["jobs_failed"], s["jobs_unfinished"]) == (1, 1, 0)
    assert result.engine_summaries["tiny"]["rejected"] == 1


def test_same_seed_same_run_other_seed_other_jobs_and_common_random_numbers():
    config = busy_network(True, num_jobs=60)
    a = simulate_network(config, seed=5, record_calls=True)
    b = simulate_network(config, seed=5, record_calls=True)
    c = simulate_network(config, seed=6, record_calls=True)
    np.testing.assert_array_equal(np.array(a.calls, dtype=float), np.array(b.calls, dtype=float))  # NaN == NaN here
    assert a.summary.keys() == b.summary.keys()
    np.testing.assert_array_equal([v for v in a.summary.values() if not isinstance(v, str)], [v for v in b.summary.values() if not isinstance(v, str)])
    assert len(a.calls) != len(c.calls) or not np.array_equal(np.array(a.calls, dtype=float), np.array(c.calls, dtype=float), equal_nan=True)
    # every policy sees the same jobs (arrivals, classes, lengths) for a seed
    d = simulate_network(config, parse("lbfs"), seed=5, record_calls=True)
    np.testing.assert_array_equal(a.jobs["arrival"], d.jobs["arrival"])
    lengths = [sorted((c[0], c[2], c[3], c[6], c[7]) for c in r.calls) for r in (a, d)]  # job, stage, call, prompt, output
    assert lengths[0] == lengths[1]


def test_one_class_does_not_change_the_jobs_of_another():
    config = busy_network(True, num_jobs=None, max_time_s=10.0)
    faster = config.replace(classes=(dataclasses.replace(config.classes[0], rate=4.0), config.classes[1]))
    arrivals = [simulate_network(c).jobs for c in (config, faster)]
    fork = [j["arrival"][j["cls"] == 1] for j in arrivals]
    np.testing.assert_array_equal(fork[0], fork[1])


# ------------------------------------------------------------------------------------------------
# Job metrics


def test_job_summary_on_hand_made_records():
    F, W, R = int(RequestState.FINISHED), int(RequestState.WAITING), int(RequestState.REJECTED)
    records = {
        "id": np.arange(5),
        "cls": np.array([0, 0, 1, 1, 0]),
        "arrival": np.array([0.0, 1.0, 2.0, 3.0, 4.0]),
        "finish_time": np.array([10.0, 5.0, 8.0, np.nan, 4.5]),
        "state": np.array([F, F, F, W, R]),
        "stages_done": np.array([2, 2, 3, 1, 0]),
    }
    s = job_summary(records, None, duration=20.0, class_names=["x", "y"])
    assert (s["jobs_arrived"], s["jobs_finished"], s["jobs_unfinished"], s["jobs_failed"]) == (5, 3, 1, 1)
    assert s["jct_mean_s"] == pytest.approx((10 + 4 + 6) / 3)
    assert s["jct_p50_s"] == 6.0 and s["jct_p90_s"] == pytest.approx(9.2)
    assert s["jobs_per_s"] == 3 / 20
    assert (s["class/x/jobs_arrived"], s["class/x/jobs_finished"], s["class/x/jct_mean_s"]) == (3, 2, 7.0)
    assert (s["class/y/jobs_finished"], s["class/y/jct_mean_s"], s["class/y/jobs_per_s"]) == (1, 6.0, 1 / 20)
    assert s["stability"] == "inconclusive" and math.isnan(s["jobs_backlog_slope_per_s"])
    with pytest.raises(ConfigError, match="stages_done"):
        job_summary({k: v for k, v in records.items() if k != "stages_done"}, None, duration=1.0, class_names=["x", "y"])
    assert JOB_RECORD_FIELDS == tuple(records)


def test_jobs_in_system_series_is_the_job_count_over_time():
    # two jobs of 64 s overlapping by 14 s: mean jobs in system over 114 s = 128 / 114
    a = one_job("A", call("e1", 32, 32), call("e2", 32, 32))
    b = one_job("B", call("e2", 32, 32), call("e1", 32, 32), at=50.0)
    result, _ = run([engine("e1", 1.0), engine("e2", 1.0)], [a, b])
    assert result.summary["duration_s"] == 114.0
    assert result.summary["jobs_in_system_mean"] == pytest.approx(128 / 114)
    assert result.series.in_system_area == pytest.approx(128.0)


# ------------------------------------------------------------------------------------------------
# Configuration


@pytest.mark.parametrize(
    "change, field",
    [
        (lambda d: d["classes"][0]["stages"][1][0].update(engine="e3"), "classes[0].stages[1][0].engine"),
        (lambda d: d["engines"][1].update(name="e1"), "engines[*].name"),
        (lambda d: d["classes"][0].update(arrival_times=[1.0]), "rate"),
        (lambda d: d["classes"][0]["stages"][0][0].update(context=0.5), "context"),
        (lambda d: d["classes"][0]["stages"][1][0].update(context=1.5), "context"),
        (lambda d: d["classes"][1].update(rate=-1.0), "rate"),
        (lambda d: d["classes"][1]["delay"].update(kind="uniform"), "delay.kind"),
        (lambda d: d["engines"][0].update(max_num_batched_tokens=0), "max_num_batched_tokens"),
        (lambda d: d["engines"][0]["cost"].update(kind="quadratic"), "cost.kind"),
        (lambda d: d["engines"][0].update(gpus=2), "unknown key"),
        (lambda d: d.update(max_time_s=None), "num_jobs"),
        (lambda d: d["classes"][0]["stages"][0][0].update(prompt_mean=0), "prompt_mean"),
    ],
)
def test_bad_network_config_names_the_field(change, field):
    data = network_preset("rybko-stolyar").to_dict()
    change(data)
    with pytest.raises(ConfigError, match=field.replace("[", r"\[").replace("]", r"\]").replace("*", r"\*")):
        NetworkConfig.from_dict(data)


@pytest.mark.parametrize("name", available_network_presets())
def test_presets_match_their_yaml_files_and_round_trip(name):
    config = network_preset(name)
    assert load_network_config(CONFIGS / f"{name.replace('-', '_')}.yaml") == config
    assert NetworkConfig.from_dict(config.to_dict()) == config
    with pytest.raises(ConfigError, match="preset"):
        network_preset("no-such-preset")


def test_rybko_stolyar_preset_loads_each_engine_at_0_9():
    config = network_preset("rybko-stolyar")
    for spec in config.engines:
        assert spec.cost.iteration_time(700, 1, 1, 60, 10**6) == 1.0  # one time unit whatever the batch
        work = sum(wf.rate * (c.prompt_mean + c.output_mean) for wf in config.classes for st in wf.stages for c in st if c.engine == spec.name)
        assert work / spec.engine.max_num_batched_tokens == pytest.approx(0.9)


def test_delay_distributions_have_their_means():
    rng = np.random.default_rng(0)
    for cfg in (DelayConfig("exponential", 2.0), DelayConfig("lognormal", 2.0, sigma=1.0), DelayConfig("exponential", 2.0, max_s=1.0), DelayConfig("lognormal", 3.0, sigma=0.8, max_s=2.5)):
        assert cfg.sample(rng, 400_000).mean() == pytest.approx(cfg.mean(), rel=0.01)
    assert DelayConfig("constant", 2.0, max_s=1.5).mean() == 1.5
    assert np.all(DelayConfig("constant", 2.0).sample(rng, 3) == 2.0)


# ------------------------------------------------------------------------------------------------
# Baselines


def test_class_priority_with_the_fbfs_order_equals_fbfs():
    config = network_preset("rybko-stolyar").replace(max_time_s=300.0)
    order = {"e1": ["A:1", "B:2"], "e2": ["B:1", "A:2"]}
    by_class = simulate_network(config, ClassPriority(order)).jobs
    by_stage = simulate_network(config, StagePriority("first")).jobs
    np.testing.assert_array_equal(by_class["finish_time"], by_stage["finish_time"])
    lbfs = simulate_network(config, parse("priority:e1=B:2>A:1,e2=A:2>B:1")).jobs
    np.testing.assert_array_equal(lbfs["finish_time"], simulate_network(config, parse("lbfs")).jobs["finish_time"])


@pytest.mark.parametrize("order, message", [({"e3": ["A:1"]}, "priority engine"), ({"e1": ["A:2"]}, "label")])
def test_class_priority_rejects_unknown_engines_and_labels(order, message):
    with pytest.raises(ConfigError, match=message):
        Network(network_preset("rybko-stolyar"), ClassPriority(order))


def test_parse_builds_every_network_policy():
    assert isinstance(parse("fbfs"), StagePriority) and parse("lbfs").name == "lbfs"
    assert isinstance(parse("max-pressure"), MaxPressure)
    per = parse("trail:C=0.5")
    assert isinstance(per, PerEngine) and per.name == "trail:C=0.5"
    assert isinstance(per.policy, baselines.Trail)
    with pytest.raises(ConfigError):
        parse("priority:e1")
    with pytest.raises(ConfigError):
        parse("no-such-policy")


def test_rybko_stolyar_priority_orders_decide_stability():
    """Li, Dai & Peng §5.4: priority to the last stage of each route lets the backlog grow without
    bound at load 0.9; the reverse order keeps it bounded (benchmarks/bench_network.py: 20,000 units)."""
    config = network_preset("rybko-stolyar").replace(max_time_s=4000.0)
    lbfs = simulate_network(config, StagePriority("last"), seed=1).summary
    fbfs = simulate_network(config, StagePriority("first"), seed=1).summary
    assert lbfs["stability"] == "unstable" and lbfs["jobs_backlog_slope_per_s"] > 0.3
    assert fbfs["stability"] == "stable" and abs(fbfs["jobs_backlog_slope_per_s"]) < 0.03
    assert fbfs["jobs_finished"] / fbfs["jobs_arrived"] > 0.95 > 0.8 > lbfs["jobs_finished"] / lbfs["jobs_arrived"]


@pytest.mark.slow
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_rybko_stolyar_over_the_full_horizon(seed):
    config = network_preset("rybko-stolyar")
    results = {spec: simulate_network(config, parse(spec), seed=seed).summary for spec in ("lbfs", "fbfs", "fcfs", "max-pressure")}
    assert results["lbfs"]["stability"] == "unstable" and results["lbfs"]["jobs_backlog_slope_per_s"] > 0.5
    for spec in ("fbfs", "fcfs", "max-pressure"):
        assert results[spec]["stability"] == "stable", spec
        assert abs(results[spec]["jobs_backlog_slope_per_s"]) < 0.01, spec


# ------------------------------------------------------------------------------------------------
# The environment


ENV_KWARGS = [dict(num_jobs=30), dict(preset="coding-agents", num_jobs=12, num_slots=4, predictor="refining"), dict(num_jobs=None, max_time_s=40.0, rate_scale=1.3)]


@pytest.mark.parametrize("kwargs", ENV_KWARGS)
def test_env_passes_gymnasium_and_sb3_checkers(kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # SB3 recommends flat observations (as for Serve-v1)
        check_env(gym.make(ENV_ID, **kwargs).unwrapped)
        sb3_check_env(gym.make(ENV_ID, **kwargs))


def play(env, seed, rng_seed=0, agent=None):
    rng = np.random.default_rng(rng_seed)
    obs, info = env.reset(seed=seed) if isinstance(seed, int) else env.reset(options={"sim_seed": seed[0]})
    trace, rewards = [obs], []
    while True:
        action = agent(env.unwrapped) if agent else rng.uniform(-1, 1, env.action_space.shape).astype(np.float32)
        obs, reward, terminated, truncated, info = env.step(action)
        assert isinstance(reward, float) and isinstance(terminated, bool) and isinstance(truncated, bool)
        trace.append(obs)
        rewards.append(reward)
        if terminated or truncated:
            return trace, rewards, info, terminated, truncated


@pytest.mark.parametrize("kwargs", ENV_KWARGS[::2])
def test_env_is_deterministic_per_seed(kwargs):
    env = gym.make(ENV_ID, **kwargs)
    a, ra, _, _, _ = play(env, 7)
    b, rb, _, _, _ = play(env, 7)
    c, rc, _, _, _ = play(env, 8)
    assert ra == rb and rc != ra
    for x, y in zip(a, b):
        for key in x:
            np.testing.assert_array_equal(x[key], y[key])


@pytest.mark.parametrize("kwargs, ends", [(ENV_KWARGS[0], "terminated"), (ENV_KWARGS[2], "truncated")])
def test_env_return_is_minus_the_total_job_time_over_the_scale(kwargs, ends):
    env = gym.make(ENV_ID, **kwargs)
    _, rewards, info, terminated, truncated = play(env, 3)
    assert {"terminated": terminated, "truncated": truncated}[ends]
    jobs = env.unwrapped.result.jobs
    end = info["summary"]["duration_s"]
    total = float(np.sum(np.where(np.isnan(jobs["finish_time"]), end, jobs["finish_time"]) - jobs["arrival"]))
    assert -sum(rewards) * env.unwrapped._reward_scale == pytest.approx(total, rel=1e-9)
    assert info["summary"]["jobs_arrived"] == info["jobs_arrived"] == len(jobs["id"])


def test_env_agent_path_equals_the_direct_path():
    """An agent scoring the visible calls FBFS-style reproduces StagePriority('first') run directly."""
    env = gym.make(ENV_ID, num_jobs=40, num_slots=128)

    def fbfs(unwrapped) -> np.ndarray:
        scores = np.zeros(unwrapped.action_space.shape, dtype=np.float32)
        for e, slots in enumerate(unwrapped.slots):
            for j, r in enumerate(slots):
                scores[e * unwrapped.num_slots + j] = -0.1 * r.meta.buffer.stage
        return scores

    for sim_seed in (1, 2):
        _, _, info, _, _ = play(env, (sim_seed,), agent=fbfs)
        direct = simulate_network(env.unwrapped.config, StagePriority("first"), seed=sim_seed)
        np.testing.assert_array_equal(env.unwrapped.result.jobs["finish_time"], direct.jobs["finish_time"])
        assert info["summary"]["jct_mean_s"] == direct.summary["jct_mean_s"]


def test_env_observation_marks_engines_classes_and_stages():
    env = AgentNetworkEnv(num_jobs=30, num_slots=8)
    obs, _ = env.reset(seed=0)
    for _ in range(10):
        obs, *_ = env.step(np.zeros(env.action_space.shape, dtype=np.float32))
    F0 = len(llmsched_env.sim.observe.REQUEST_FEATURES)
    for e, slots in enumerate(env.slots):
        for j, r in enumerate(slots):
            row = obs["requests"][e * 8 + j]
            assert row[0] == 1.0 and obs["mask"][e * 8 + j] == 1.0
            assert row[F0 + e] == 1.0 and row[F0 + 2 + r.meta.buffer.cls] == 1.0
            assert row[F0 + 4] == float(r.meta.buffer.stage) and row[F0 + 5] == float(r.meta.buffer.last)


@pytest.mark.parametrize(
    "kwargs, message",
    [(dict(bogus=1), "unknown argument"), (dict(num_slots=0), "num_slots"), (dict(preset="x"), "preset"), (dict(rate_scale=0), "rate_scale"), (dict(predictor="psychic"), "predictor.kind")],
)
def test_env_rejects_bad_arguments(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        AgentNetworkEnv(**kwargs)


def test_env_works_with_make_vec():
    envs = gym.make_vec(ENV_ID, num_envs=2, vectorization_mode="sync", num_jobs=10)
    obs, _ = envs.reset(seed=0)
    for _ in range(5):
        obs, reward, *_ = envs.step(envs.action_space.sample())
    assert obs["requests"].shape[0] == 2 and reward.shape == (2,)


def test_env_rejects_bad_actions_and_renders():
    env = AgentNetworkEnv(num_jobs=10, num_slots=4, render_mode="ansi")
    env.reset(seed=0)
    with pytest.raises(ConfigError, match="shape"):
        env.step(np.zeros(3, dtype=np.float32))
    with pytest.raises(ConfigError, match="NaN"):
        env.step(np.full(env.action_space.shape, np.nan, dtype=np.float32))
    text = env.render()
    assert "jobs in system" in text and "e1" in text and "A:1" in text


def test_env_config_path_and_predictor_override():
    env = AgentNetworkEnv(config_path=str(CONFIGS / "rybko_stolyar.yaml"), predictor="oracle", num_jobs=5)
    assert env.config.predictor.kind == "oracle"
    assert env.config.engines == network_preset("rybko-stolyar").engines


@pytest.mark.filterwarnings("ignore:.*out of date")
def test_v0_sets_admission_preemption_on_every_engine():
    v0, v1 = gym.make("llmsched/AgentNetwork-v0"), gym.make(ENV_ID)
    assert all(e.engine.admission_preemption for e in v0.unwrapped.config.engines)
    assert not any(e.engine.admission_preemption for e in v1.unwrapped.config.engines)
    with pytest.raises(ConfigError, match="admission_preemption=1 is invalid"):
        gym.make(ENV_ID, admission_preemption=1)
