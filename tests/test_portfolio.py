"""Portfolio agents (train.portfolio): the wrapper, the policy head, cloning, acting, the CLI."""

from __future__ import annotations

import math

import gymnasium as gym
import numpy as np
import pytest
import torch
import yaml
from stable_baselines3 import PPO

import baselines
import llmsched_env  # noqa: F401  (registers the environments)
from baselines.agent import PolicyAgent
from llmsched_env.sim.validation import ConfigError
from train.agents import act, load_policy, run_episode
from train.bc import behaviour_clone, collect, imitation_loss
from train.cli import main
from train.config import TrainConfig
from train.networks import SetPortfolioPolicy
from train.portfolio import PortfolioWrapper, check_portfolio, find_portfolio

ENV = {"num_requests": 40, "num_slots": 8, "load": 0.95}
NET = {"features_extractor_kwargs": {"embed_dim": 16, "num_heads": 2, "num_layers": 1, "ff_dim": 32}}


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tests/conftest.py


def make(portfolio=("trail", "fcfs"), **kwargs):
    return PortfolioWrapper(gym.make("llmsched/Serve-v2", scenario="chat-a100-40gb", **{**ENV, **kwargs}), portfolio)


def play(env, pick, seed=3):
    """Per-request finish times of an episode in which ``pick(step)`` gives each action."""
    env.reset(options={"sim_seed": seed})
    done, step, info = False, 0, {}
    while not done:
        _, _, terminated, truncated, info = env.step(pick(step))
        done, step = terminated or truncated, step + 1
    return info["summary"], env.unwrapped.records.to_arrays()


@pytest.mark.parametrize("index, name", [(0, "trail"), (1, "fcfs")])
def test_always_picking_one_heuristic_is_that_heuristic_through_the_env(index, name):
    portfolio_summary, portfolio_records = play(make(), lambda step: index)
    plain = gym.make("llmsched/Serve-v2", scenario="chat-a100-40gb", **ENV)
    agent = PolicyAgent(baselines.parse(name))
    plain.reset(options={"sim_seed": 3})
    done, info = False, {}
    while not done:
        _, _, terminated, truncated, info = plain.step(agent.act(plain))
        done = terminated or truncated
    assert portfolio_summary["e2e_mean_s"] == pytest.approx(info["summary"]["e2e_mean_s"], rel=1e-12)
    assert portfolio_summary["preemptions"] == info["summary"]["preemptions"]
    np.testing.assert_allclose(portfolio_records["finish_time"], plain.unwrapped.records.to_arrays()["finish_time"], rtol=1e-12)


def test_switching_heuristics_loses_no_request_and_changes_the_run():
    summary, records = play(make(), lambda step: step % 2)
    assert summary["finished"] == ENV["num_requests"] and summary["unfinished"] == 0
    assert sorted(records["id"].tolist()) == list(range(ENV["num_requests"]))  # none lost, none twice
    trail, _ = play(make(), lambda step: 0)
    assert summary["e2e_mean_s"] != trail["e2e_mean_s"]  # the picks reach the engine


@pytest.mark.parametrize("action", [2, -1, 0.5, math.nan, [0, 1]])
def test_bad_actions_name_the_action_and_the_range(action):
    env = make()
    env.reset(options={"sim_seed": 0})
    with pytest.raises(ConfigError, match=r"action=.*expected one integer in \[0, 1\] \(portfolio\)"):
        env.step(action)


@pytest.mark.parametrize(
    "names, message",
    [(["trail"], "at least 2"), ("trail", "at least 2"), (["trail", "nope"], "nope"), (["sjf", "sjf"], "names 'sjf' twice"),
     (["srpt", "fcfs"], "oracle")],
)
def test_bad_portfolios_are_clear_errors(names, message):
    with pytest.raises(ConfigError, match=message):
        check_portfolio(names)


def test_a_portfolio_needs_the_rank_mode():
    with pytest.raises(ConfigError, match="action_mode='rank'"):
        PortfolioWrapper(gym.make("llmsched/Serve-v2", scenario="chat-a100-40gb", **ENV, action_mode="admit"))


def test_mlfq_in_the_portfolio_brings_its_wake_ups():
    env = make(("trail", "mlfq"))
    assert env.unwrapped._wakeup_source is not None
    assert make(("sjf", "fcfs")).unwrapped._wakeup_source is None  # no member with wake-ups: none installed
    assert find_portfolio(gym.wrappers.TimeLimit(env, 10)) is env


def model_on(env):
    return PPO(SetPortfolioPolicy, env, n_steps=32, batch_size=32, seed=0, device="cpu", policy_kwargs=NET)


def test_portfolio_logits_ignore_slot_order_and_empty_slots():
    env = make()
    policy = model_on(env).policy
    obs, _ = env.reset(options={"sim_seed": 1})
    for _ in range(15):
        obs, *_ = env.step(0)
    n = int(obs["mask"].sum())
    assert n >= 2
    perm = np.r_[np.random.default_rng(0).permutation(n), np.arange(n, len(obs["mask"]))]
    shuffled = {"requests": obs["requests"][perm], "mask": obs["mask"][perm], "globals": obs["globals"]}

    def logits(o):
        t = {k: torch.as_tensor(v).unsqueeze(0) for k, v in o.items()}
        with torch.no_grad():
            return policy.action_net(policy.mlp_extractor.forward_actor(policy.extract_features(t)))[0].numpy()

    assert logits(obs).shape == (2,)
    np.testing.assert_allclose(logits(obs), logits(shuffled), atol=1e-5)


def test_cloning_a_member_teaches_the_agent_to_pick_it():
    env = make()
    model = model_on(env)
    demos = collect(baselines.parse("fcfs"), env, [5], gamma=0.99)
    assert set(demos.actions.tolist()) == {1} and demos.actions.dtype == np.int64
    before = imitation_loss(model.policy, demos)
    behaviour_clone(model.policy, demos, epochs=3, batch_size=64, learning_rate=3e-3)
    assert imitation_loss(model.policy, demos) < before
    obs, _ = env.reset(options={"sim_seed": 5})
    assert act(model, env, obs) == 1  # its argmax is the teacher
    with pytest.raises(ConfigError, match="not in the portfolio"):
        collect(baselines.parse("sjf"), env, [5], gamma=0.99)


def test_acting_samples_the_picks_seeded_by_the_workload(monkeypatch):
    env = make()
    model = model_on(env)  # near-uniform at initialisation: both heuristics get picked
    picks: list[int] = []
    step = PortfolioWrapper.step
    monkeypatch.setattr(PortfolioWrapper, "step", lambda self, action: (picks.append(int(action)), step(self, action))[1])
    first = run_episode(model, env, 4)["summary"]
    sampled = list(picks)
    assert set(sampled) == {0, 1}  # sampled, not the argmax
    picks.clear()
    assert run_episode(model, env, 4)["summary"] == first and picks == sampled  # the same picks on the same workload
    obs, _ = env.reset(options={"sim_seed": 4})
    assert act(model, env, obs) == act(model, env, obs)  # without a generator: the argmax


def test_a_portfolio_model_needs_its_wrapper_and_a_rank_model_needs_none():
    env = make()
    model = model_on(env)
    plain = env.env  # the rank-mode env under the wrapper
    obs, _ = plain.reset(options={"sim_seed": 0})
    with pytest.raises(ConfigError, match="PortfolioWrapper"):
        act(model, plain, obs)


def test_the_earliest_wake_up_of_the_members_is_installed():
    from train.portfolio import _EarliestWakeup

    wake = _EarliestWakeup([lambda requests, now: None, lambda requests, now: 7, lambda requests, now: 3])
    assert wake([], 0.0) == 3
    assert _EarliestWakeup([lambda requests, now: None])([], 0.0) is None
    env = make(("trail", "mlfq"))
    assert isinstance(env.unwrapped._wakeup_source, _EarliestWakeup)  # both members have wake-ups


def write_config(tmp_path, **extra):
    config = {
        "algo": "ppo_portfolio",
        "scenario": "chat-a100-40gb",
        "env_kwargs": {"num_requests": 30, "num_slots": 8},
        "portfolio": ["trail", "fcfs"],
        "n_timesteps": 64,
        "n_envs": 2,
        "hyperparams": {"n_steps": 32, "batch_size": 32, "n_epochs": 1, "policy_kwargs": NET},
        "reward_reference": "teacher",
        "eval_freq": 64,
        "eval_episodes": 1,
        "eval_baselines": ["fcfs"],
        "bc": {"teacher": "auto", "episodes": 1, "epochs": 1},
        "progress_bar": False,
        **extra,
    }
    path = tmp_path / "portfolio.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def test_a_portfolio_agent_trains_and_llmsched_eval_runs_it(tmp_path):
    out = tmp_path / "run"
    assert main(["-c", str(write_config(tmp_path)), "--out", str(out), "-q"]) == 0
    written = yaml.safe_load((out / "config.yaml").read_text())
    assert written["portfolio"] == ["trail", "fcfs"] and written["bc"]["teacher"] in ("trail", "fcfs")
    agent = load_policy(out / "best_model.zip")
    assert agent.portfolio == ("trail", "fcfs")
    config = gym.make("llmsched/Serve-v2", scenario="chat-a100-40gb", num_requests=30).unwrapped.config
    first = agent.simulate(config, seed=11)
    assert first.summary["finished"] == 30
    assert agent.simulate(config, seed=11).summary == first.summary  # seeded picks: the same run


def test_portfolio_config_errors(tmp_path):
    with pytest.raises(ConfigError, match="not in the portfolio"):
        TrainConfig.from_dict({"algo": "ppo_portfolio", "portfolio": ["trail", "fcfs"], "bc": {"teacher": "sjf"}})
    with pytest.raises(ConfigError, match="portfolio"):
        TrainConfig.from_dict({"algo": "ppo_portfolio", "portfolio": ["trail"]})
    with pytest.raises(ConfigError, match="action_mode"):
        TrainConfig.from_dict({"algo": "ppo_portfolio", "env_kwargs": {"action_mode": "admit"}})
    with pytest.raises(ConfigError, match="ppo_portfolio only"):
        TrainConfig.from_dict({"algo": "ppo", "portfolio": ["trail", "fcfs"]})
    with pytest.raises(ConfigError, match="policy_kwargs.distribution"):
        TrainConfig.from_dict({"algo": "ppo_portfolio", "hyperparams": {"policy_kwargs": {"distribution": "plackett-luce"}}})
    with pytest.raises(ConfigError, match="bc.dagger_rounds=1"):
        TrainConfig.from_dict({"algo": "ppo_portfolio", "bc": {"teacher": "trail", "dagger_rounds": 1}})
    assert TrainConfig.from_dict({"algo": "ppo_portfolio"}).portfolio == ("trail", "mlfq", "sjf", "fcfs")
    assert TrainConfig.from_dict({"algo": "ppo"}).portfolio is None


def test_teacher_auto_picks_among_parametrised_members():
    from train.bc import strongest_heuristic

    config = gym.make("llmsched/Serve-v2", scenario="chat-a100-40gb", num_requests=30).unwrapped.config
    teacher, scores = strongest_heuristic(config, [1], candidates=("trail:C=0.5", "fcfs"))
    assert set(scores) == {"trail:C=0.5", "fcfs"} and teacher in scores
    with pytest.raises(ConfigError, match="bc.teacher='auto'"):
        strongest_heuristic(config, [1], candidates=("nope",))


def test_resuming_needs_the_same_portfolio(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["-c", str(write_config(tmp_path, bc=None, reward_reference="trail")), "--out", str(out), "-q", "--eval-freq", "0"]) == 0
    other = write_config(tmp_path, bc=None, reward_reference="trail", portfolio=["sjf", "fcfs"])
    assert main(["-c", str(other), "-i", str(out / "final_model.zip"), "--out", str(tmp_path / "again")]) == 2
    assert "portfolio=['trail', 'fcfs']" in capsys.readouterr().err
