"""Runs that must end and inputs that must not crash: livelocks stopped with a verdict (engine,
simulate, env, llmsched-eval), MLFQ under restart preemption, whole numbers written as floats."""

from __future__ import annotations

import json

import gymnasium as gym
import numpy as np
import pytest

import baselines
import llmsched_env  # noqa: F401  (registers the envs)
from pathlib import Path

from llmsched_env.sim import ConfigError, EngineConfig, SimConfig, WorkloadConfig, load_config, simulate

REPO = Path(__file__).resolve().parents[1]

# the issue's configurations: MLFQ's demotion with restart preemption, and little KV
ISSUE_CASES = [
    ("mlfq", 200, 20),
    ("mlfq", 500, 300),
    ("mlfq:starve_s=3.0", 200, 20),
    ("mlfq:starve_s=3.0", 500, 300),
]


def restart_config(blocks: int, requests: int, **engine) -> SimConfig:
    return SimConfig(
        engine=EngineConfig(num_gpu_blocks=blocks, preemption_mode="restart", **engine), workload=WorkloadConfig(num_requests=requests), load=0.9
    )


class LeastServedFirst:
    """Least attained service first: a restarted request (no tokens left) jumps ahead of the others."""

    name = "las"
    dynamic = True

    def priorities(self, requests, now):
        return [r.generated for r in requests]


@pytest.mark.parametrize("policy, blocks, requests", ISSUE_CASES)
def test_mlfq_under_restart_preemption_finishes_every_request(policy, blocks, requests):
    s = simulate(restart_config(blocks, requests), baselines.parse(policy), seed=0).summary
    assert s["livelock"] == 0 and s["stability"] != "livelock"
    assert s["finished"] + s["rejected"] == requests and s["unfinished"] == 0


def test_mlfq_counts_the_service_a_restart_threw_away():
    from llmsched_env.sim.request import Request

    mlfq = baselines.make("mlfq")
    r = Request(0, 0.0, 100, 500, 500.0)
    r.generated = 40
    served = mlfq.level(r)
    r.generated, r.discarded_tokens = 0, 40  # restarted: the tokens are gone, the service is not
    assert mlfq.level(r) == served > mlfq.level(Request(1, 0.0, 100, 500, 500.0))


@pytest.fixture
def mlfq_before_the_guard(monkeypatch):
    """MLFQ as it was: service counted from the tokens held, so a restart sends a request back to
    level 0 (the issue's run that never ended)."""
    import baselines.mlfq

    monkeypatch.setattr(baselines.mlfq, "_service", lambda r: r.generated)


def test_simulate_reports_a_livelock_as_a_verdict(mlfq_before_the_guard):
    result = simulate(restart_config(200, 20), baselines.make("mlfq"), seed=0)
    s = result.summary
    assert s["livelock"] == 1 and s["stability"] == "livelock" and result.stats.livelock
    assert s["arrived"] == s["finished"] + s["unfinished"] + s["rejected"] == 20 and s["unfinished"] > 0  # none lost
    assert result.livelock.startswith("livelock: ") and "no request finished" in result.livelock
    assert s["preemptions"] > 100 * s["unfinished"]
    again = simulate(restart_config(200, 20), baselines.make("mlfq"), seed=0)
    assert json.dumps(again.summary, default=str) == json.dumps(s, default=str)  # deterministic


def test_the_livelock_bound_is_validated():
    assert EngineConfig(livelock_preemptions=20.0).livelock_preemptions == 20
    for bad in (-1, 2.5, "many", None):
        with pytest.raises(ConfigError, match=r"livelock_preemptions=.* is invalid: expected an integer >= 0"):
            EngineConfig(livelock_preemptions=bad)


def test_env_truncates_a_livelocked_episode_with_its_verdict():
    """An agent that evicts (restart) every request at every iteration: nothing ever finishes."""
    env = gym.make(
        "llmsched/Serve-v2", num_requests=20, num_gpu_blocks=400, preemption_mode="restart", preemption_control=True,
        decision_interval=1, num_slots=32,
    )  # fmt: skip
    env.reset(seed=0)
    action = np.zeros((32, 5), dtype=np.float32)
    action[:, 1] = 1.0  # evict
    action[:, 4] = 1.0  # by restart
    for steps in range(1, 100_000):
        _, reward, terminated, truncated, info = env.step(action)
        assert np.isfinite(reward)
        if terminated or truncated:
            break
    assert truncated and not terminated
    assert info["livelock"].startswith("livelock: ") and info["summary"]["livelock"] == 1
    assert info["summary"]["stability"] == "livelock" and info["summary"]["unfinished"] > 0


def test_eval_shows_a_livelock_as_a_verdict(tmp_path, capsys, mlfq_before_the_guard):
    from eval.cli import main

    out = tmp_path / "out"
    argv = ["--workloads", "sharegpt", "--policies", "fcfs", "mlfq", "--loads", "0.9", "--num-seeds", "1", "--num-requests", "20"]
    argv += ["--set", "sim.engine.preemption_mode=restart", "--set", "sim.engine.num_gpu_blocks=200"]
    assert main(argv + ["--jobs", "1", "--no-plots", "--no-tensorboard", "--out", str(out)]) == 0
    records = {r["policy"]: r for r in json.loads((out / "results.json").read_text())}
    assert records["mlfq"]["livelock"] == 1 and records["mlfq"]["stability"] == "livelock" and records["mlfq"]["unfinished"] > 0
    assert records["fcfs"]["livelock"] == 0
    assert "1 run stopped as a livelock" in capsys.readouterr().err
    assert " livelock 1/1 |" in (out / "summary.md").read_text()


# -- whole numbers written as floats -------------------------------------------------------------


def test_whole_floats_are_stored_as_ints_and_run():
    engine = EngineConfig(max_num_seqs=8.0, max_num_batched_tokens=2048.0, block_size=16.0, num_gpu_blocks=np.int64(3000))
    for name in ("max_num_seqs", "max_num_batched_tokens", "block_size", "num_gpu_blocks"):
        assert type(getattr(engine, name)) is int, name
    s = simulate(SimConfig(engine=engine, workload=WorkloadConfig(num_requests=30.0)), seed=0).summary
    assert s["finished"] + s["rejected"] == 30


def test_half_numbers_are_config_errors():
    with pytest.raises(ConfigError, match=r"max_num_seqs=8.5 is invalid: expected an integer > 0"):
        EngineConfig(max_num_seqs=8.5)


def test_whole_floats_from_yaml_set_and_network_yaml(tmp_path, capsys):
    path = tmp_path / "run.yaml"
    path.write_text("engine:\n  max_num_seqs: 8.0\n  block_size: 16.0\nworkload:\n  num_requests: 20.0\n")
    config = load_config(path)
    assert type(config.engine.max_num_seqs) is int and type(config.workload.num_requests) is int
    assert simulate(config, seed=0).summary["arrived"] == 20

    from eval.cli import main

    out = tmp_path / "out"
    argv = ["--workloads", "sharegpt", "--policies", "fcfs", "--loads", "0.5", "--num-seeds", "1", "--num-requests", "20"]
    assert main(argv + ["--set", "sim.engine.max_num_seqs=8.0", "--jobs", "1", "--no-plots", "--no-tensorboard", "--out", str(out)]) == 0
    assert main(argv + ["--set", "sim.engine.max_num_seqs=8.5", "--jobs", "1", "--out", str(tmp_path / "bad")]) == 2
    err = capsys.readouterr().err
    assert "max_num_seqs=8.5 is invalid: expected an integer > 0" in err and "Traceback" not in err

    from llmsched_env.sim.network import load_network_config, simulate_network

    text = (REPO / "configs" / "network" / "rybko_stolyar.yaml").read_text()
    network = tmp_path / "net.yaml"
    network.write_text(text.replace("max_num_seqs: 768", "max_num_seqs: 768.0").replace("max_time_s: 20000.0", "max_time_s: 50.0"))
    config = load_network_config(network)
    assert all(type(spec.engine.max_num_seqs) is int for spec in config.engines)
    assert simulate_network(config, seed=0).summary["jobs_arrived"] > 0


# -- AgentNetwork: a step after every reset --------------------------------------------------------


def _finish_in_one_step(env) -> dict:
    observation, info = env.reset(seed=0)
    assert env.observation_space.contains(observation)
    observation, reward, terminated, truncated, info = env.step(np.zeros(env.action_space.shape, dtype=np.float32))
    assert (terminated or truncated) and np.isfinite(reward) and "summary" in info
    return info


def test_agent_network_gives_a_step_when_no_job_arrives_in_time():
    env = gym.make("llmsched/AgentNetwork-v1", preset="rybko-stolyar", num_jobs=None, max_time_s=0.01)
    info = _finish_in_one_step(env)
    assert info["summary"]["jobs_arrived"] == 0


def test_agent_network_gives_a_step_when_every_call_is_rejected(tmp_path):
    text = (REPO / "configs" / "network" / "rybko_stolyar.yaml").read_text()
    path = tmp_path / "tiny.yaml"  # one 16-token block per engine: every call is too long to serve
    path.write_text(text.replace("num_gpu_blocks: 1000000000", "num_gpu_blocks: 1").replace("max_time_s: 20000.0", "max_time_s: 20.0"))
    env = gym.make("llmsched/AgentNetwork-v1", config_path=str(path))
    info = _finish_in_one_step(env)
    assert info["summary"]["jobs_finished"] == 0


# -- messages that name the field, the value and what is allowed -----------------------------------


@pytest.mark.parametrize("env_id", ["llmsched/Serve-v2", "llmsched/AgentNetwork-v1"])
def test_score_actions_follow_one_rule_in_both_envs(env_id):
    kwargs = {"num_requests": 10} if env_id == "llmsched/Serve-v2" else {"num_jobs": 5}
    env = gym.make(env_id, **kwargs).unwrapped
    env.reset(seed=0)
    shape = env.action_space.shape
    with pytest.raises(ConfigError, match=r"action of <U1 values \['a', 'a', 'a'\] is invalid: expected numbers in \[-1, 1\]"):
        env.step(np.full(shape, "a").tolist())
    with pytest.raises(ConfigError, match=r"outside the action space: expected values in \[-1, 1\]"):
        env.step(np.full(shape, 3.0, dtype=np.float32))
    with pytest.raises(ConfigError, match=r"action has shape \(2,\): expected"):
        env.step([0.0, 0.0])


def test_damaged_traces_name_the_file_and_the_missing_column(tmp_path, capsys):
    import gzip

    from eval.cli import main
    from llmsched_env.sim.traces import TraceError, read_trace

    good = gzip.compress(b"TIMESTAMP,ContextTokens,GeneratedTokens\n" + b"2023-11-16 18:15:46.6805900,100,20\n" * 500)
    damaged = tmp_path / "trace.csv.gz"
    damaged.write_bytes(good[:30] + bytes(b ^ 0x5A for b in good[30:60]) + good[60:])
    with pytest.raises(TraceError, match=f"{damaged}: cannot be read as a"):
        read_trace(damaged)
    argv = ["--policies", "fcfs", "--workloads", str(damaged), "--rates", "1", "--num-seeds", "1", "--jobs", "1"]
    assert main(argv + ["--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert str(damaged) in err and "Traceback" not in err and err.count("\n") == 1
    partial = tmp_path / "partial.csv"
    partial.write_text("TIMESTAMP,ContextTokens\n2023-11-16 18:15:46.6805900,100\n")
    with pytest.raises(TraceError, match="looks like an Azure trace but lacks the column\\(s\\) 'GeneratedTokens'"):
        read_trace(partial)


def test_eval_jobs_must_be_positive(tmp_path, capsys):
    from eval.cli import main

    assert main(["--jobs", "0", "--out", str(tmp_path / "out")]) == 2
    assert "--jobs=0 is invalid: expected an integer >= 1" in capsys.readouterr().err


@pytest.mark.parametrize(
    "pair, message",
    [
        ("learning_rate:-1", "hyperparams.learning_rate=-1 is invalid: expected a finite number > 0"),
        ("n_steps:8.5", "hyperparams.n_steps=8.5 is invalid: expected an integer >= 1"),
        ("gamma:1.5", "hyperparams.gamma=1.5 is invalid: expected a finite number >= 0 and <= 1"),
    ],
)
def test_train_hyperparameters_are_checked(tmp_path, capsys, pair, message):
    from train.cli import main

    assert main(["--hyperparams", pair, "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and "Traceback" not in err


def _tiny_rank_model(tmp_path: Path, num_slots: int) -> Path:
    from stable_baselines3 import PPO

    from train.agents import attach_info
    from train.networks import SetRankPolicy

    env_kwargs = {"num_requests": 20, "num_slots": num_slots}
    env = gym.make("llmsched/Serve-v2", **env_kwargs)
    tiny = {"features_extractor_kwargs": {"embed_dim": 16, "num_heads": 2, "num_layers": 1, "ff_dim": 32}}
    model = PPO(SetRankPolicy, env, n_steps=64, batch_size=64, device="cpu", policy_kwargs=tiny)
    attach_info(model, "ppo", "llmsched/Serve-v2", env_kwargs)
    path = tmp_path / "agent.zip"
    model.save(path)
    return path


def test_a_model_for_other_slots_is_a_clear_error(tmp_path, capsys):
    from train.agents import load_model
    from train.cli import main

    path = _tiny_rank_model(tmp_path, 8)
    assert main(["-i", str(path), "--out", str(tmp_path / "run"), "-n", "64"]) == 2
    err = capsys.readouterr().err
    assert "was made for num_slots=8" in err and "this one has num_slots=64" in err and "Traceback" not in err
    model = load_model(path)
    observation, _ = gym.make("llmsched/Serve-v2", num_requests=20, num_slots=16).reset(seed=0)
    with pytest.raises(ConfigError, match=r"this model was made for .* \(num_slots=8\)"):
        model.predict(observation, deterministic=True)
