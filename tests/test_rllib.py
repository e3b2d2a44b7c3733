"""The RLlib backend (train/rllib.py): config, the set-encoder RLModule and its masked Gaussian,
env registration, checkpoints as llmsched-eval policies, and (slow) PPO on a local Ray.

Skipped when Ray is absent (the ``ray`` extra)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch
import yaml

pytest.importorskip("ray.rllib")

import llmsched_env  # noqa: E402,F401  (registers the environments)
from eval.policies import expand, load_model  # noqa: E402
from llmsched_env.sim.validation import ConfigError  # noqa: E402
from train import rllib  # noqa: E402
from train.cli import main as train_main  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
TINY_ENV = {"num_slots": 8, "episode_requests": 30}
TINY_MODEL = {"embed_dim": 16, "num_heads": 2, "num_layers": 1, "ff_dim": 32}


def tiny_config(**changes) -> rllib.RLlibConfig:
    data = {"env_kwargs": TINY_ENV, "model": TINY_MODEL, "iterations": 2, "num_env_runners": 2,
            "hyperparams": {"train_batch_size_per_learner": 128, "minibatch_size": 64, "num_epochs": 1}}  # fmt: skip
    data.update(changes)
    return rllib.RLlibConfig.from_dict(data)


def tiny_module(config: rllib.RLlibConfig) -> rllib.SetRankModule:
    env = rllib.make_env(config.env_config | {"env": config.env})
    return rllib.SetRankModule(observation_space=env.observation_space, action_space=env.action_space, model_config=config.model)


# -- config -----------------------------------------------------------------------------------------


def test_config_file_is_the_builtin_default():
    data = yaml.safe_load((ROOT / "configs" / "train" / "rllib_ppo.yaml").read_text())
    assert rllib.RLlibConfig.from_dict(data) == rllib.RLlibConfig()


def test_config_round_trips_through_its_dict():
    config = tiny_config()
    assert rllib.RLlibConfig.from_dict(config.to_dict()) == config


@pytest.mark.parametrize(
    "data, match",
    [
        ({"iterations": -1}, "iterations=-1"),
        ({"num_envs_per_env_runner": 0}, "num_envs_per_env_runner=0"),
        ({"hyperparams": {"learning_rate": 1e-3}}, "learning_rate"),
        ({"model": {"depth": 3}}, "depth"),
        ({"env_kwargs": {"action_mode": "admit"}}, "action_mode='admit'"),
        ({"env_kwargs": {"preemption_control": True}}, "preemption_control=True"),
        ({"env": "llmsched/Serve-v1"}, "env='llmsched/Serve-v1'"),
        ({"reward_reference": "nope"}, "reward_reference"),
        ({"episodes": 3}, "episodes"),
        ({"scenario": "cluster-chat-multiturn"}, "cluster scenario"),
    ],
)
def test_bad_config_names_the_field(data, match):
    with pytest.raises(ConfigError, match=match):
        rllib.RLlibConfig.from_dict(data)


def test_cli_rejects_the_other_backends_flags(tmp_path, capsys):
    assert train_main(["--backend", "rllib", "--n-envs", "4", "--out", str(tmp_path / "run")]) == 2
    assert "--backend rllib does not read --n-envs" in capsys.readouterr().err
    assert train_main(["--iterations", "3", "--out", str(tmp_path / "run")]) == 2
    assert "--backend sb3 does not read --iterations" in capsys.readouterr().err
    assert train_main(["--backend", "rllib", "--scenario", "chat-bursty", "reasoning", "--out", str(tmp_path / "run")]) == 2
    assert "one scenario" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


# -- the module and its distribution ----------------------------------------------------------------


def test_masked_gaussian_counts_occupied_slots_only():
    loc = torch.tensor([[0.1, -0.2, 0.3, 0.0]])
    log_std = torch.full_like(loc, -1.0)
    occupied = torch.tensor([[1.0, 1.0, 0.0, 0.0]])
    dist = rllib.MaskedDiagGaussian.from_logits(torch.cat([loc, log_std, occupied], dim=-1))
    normal = torch.distributions.Normal(loc[:, :2], log_std[:, :2].exp())
    action = torch.tensor([[0.5, 0.0, 0.9, -0.9]])
    assert torch.allclose(dist.logp(action), normal.log_prob(action[:, :2]).sum(-1))
    assert torch.allclose(dist.entropy(), normal.entropy().sum(-1))
    # what an empty slot holds changes nothing
    moved = rllib.MaskedDiagGaussian.from_logits(torch.cat([loc + torch.tensor([[0, 0, 5.0, 5.0]]), log_std, occupied], dim=-1))
    assert torch.allclose(moved.logp(action), dist.logp(action))
    assert torch.allclose(moved.kl(dist), torch.zeros(1), atol=1e-6)
    assert torch.equal(dist.to_deterministic().sample(), loc)
    assert rllib.MaskedDiagGaussian.required_input_dim(gym.spaces.Box(-1, 1, (4,))) == 12


def test_module_scores_value_and_empty_slots():
    config = tiny_config()
    module = tiny_module(config)
    env = rllib.make_env(config.env_config | {"env": config.env})
    observation, _ = env.reset(seed=0)
    for _ in range(5):
        observation, *_ = env.step(env.action_space.sample())
    batch = {"obs": {k: torch.as_tensor(v).unsqueeze(0) for k, v in observation.items()}}
    out = module.forward_train(batch)
    inputs = out["action_dist_inputs"]
    K = TINY_ENV["num_slots"]
    assert inputs.shape == (1, 3 * K)
    mask = torch.as_tensor(observation["mask"])
    assert torch.equal(inputs[0, 2 * K :], (mask > 0.5).float())
    assert torch.all(inputs[0, :K][mask < 0.5] == 0)  # empty slots: mean exactly 0
    values = module.compute_values(batch, embeddings=out["embeddings"])
    assert values.shape == (1,) and torch.isfinite(values).all()
    assert torch.allclose(values, module.compute_values(batch))
    # an empty queue gives finite outputs (the global token is always attended to)
    empty = {"obs": {k: torch.zeros_like(v) for k, v in batch["obs"].items()}}
    assert torch.isfinite(module.forward_exploration(empty)["action_dist_inputs"]).all()


def test_module_treats_the_slots_as_a_set():
    module = tiny_module(tiny_config())
    K = TINY_ENV["num_slots"]
    space = module.observation_space
    rng = np.random.default_rng(0)
    obs = {"requests": rng.random((1, *space["requests"].shape), dtype=np.float32),
           "mask": np.zeros((1, K), np.float32), "globals": rng.random((1, *space["globals"].shape), dtype=np.float32)}  # fmt: skip
    obs["mask"][0, :5] = 1.0
    perm = np.r_[rng.permutation(5), np.arange(5, K)]
    permuted = {"requests": obs["requests"][:, perm], "mask": obs["mask"][:, perm], "globals": obs["globals"]}
    with torch.no_grad():
        scores = module.mean_scores({k: torch.as_tensor(v) for k, v in obs.items()})
        scores_p = module.mean_scores({k: torch.as_tensor(v) for k, v in permuted.items()})
    assert torch.allclose(scores[:, perm], scores_p, atol=1e-5)


def test_module_refuses_admit_mode():
    env = gym.make("llmsched/Serve-v2", num_slots=8, action_mode="admit")
    with pytest.raises(ConfigError, match="rank mode without preemption control"):
        rllib.SetRankModule(observation_space=env.observation_space, action_space=env.action_space, model_config={})


def test_registered_creator_builds_the_env_from_plain_data():
    from ray.tune.registry import ENV_CREATOR, _global_registry

    config = tiny_config()
    rllib.register_envs()
    creator = _global_registry.get(ENV_CREATOR, "llmsched/Serve-v2")
    env = creator(json.loads(json.dumps(config.env_config)))  # what travels to a worker is plain data
    assert env.unwrapped.num_slots == TINY_ENV["num_slots"]
    assert type(env).__name__ == "ReferenceReward"
    assert not isinstance(rllib.make_env({**config.env_config, "env": config.env, "reward_reference": None}), type(env))


# -- checkpoints as evaluation policies ----------------------------------------------------------------


def fake_checkpoint(path: Path, config: rllib.RLlibConfig) -> rllib.SetRankModule:
    """The RLModule part of a checkpoint, as ``Algorithm.save_to_path`` lays it out, without training."""
    module = tiny_module(config)
    module.save_to_path(str(path.joinpath(*rllib.MODULE_PATH)))
    (path / rllib.INFO_FILE).write_text(json.dumps(rllib.training_info(config)))
    return module


def test_checkpoint_is_an_eval_policy(tmp_path):
    config = tiny_config()
    module = fake_checkpoint(tmp_path / "run" / "checkpoint", config)
    spec = f"rllib:{tmp_path / 'run' / 'checkpoint'}"
    [entry] = expand((spec,))
    assert (entry.label, entry.kind) == ("run", "model")
    agent = load_model(spec)
    for a, b in zip(agent.module.state_dict().values(), module.state_dict().values()):
        assert torch.equal(a, b)
    sim = config.scenario.sim.replace(workload=dataclasses.replace(config.scenario.sim.workload, num_requests=20))
    first, second = agent.simulate(sim, 3), agent.simulate(sim, 3)
    assert first.summary["finished"] == 20 and first.summary == second.summary  # deterministic
    assert np.array_equal(np.sort(first.records["id"]), np.arange(20))


def test_bad_checkpoints_are_input_errors(tmp_path):
    with pytest.raises(ConfigError, match="checkpoint folder does not exist"):
        load_model(f"rllib:{tmp_path / 'nowhere'}")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match="llmsched_info.json"):
        load_model(f"rllib:{tmp_path / 'empty'}")
    (tmp_path / "empty" / rllib.INFO_FILE).write_text(json.dumps({"algo": rllib.ALGO, "agent_options": {}}))
    with pytest.raises(ConfigError, match="cannot load the checkpoint"):
        load_model(f"rllib:{tmp_path / 'empty'}")


# -- PPO on a local Ray -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def local_ray():
    """One local Ray session (2 CPUs) for the tests of this module that need one."""
    import ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


@pytest.mark.slow
def test_ppo_trains_on_env_runners_and_its_checkpoint_is_evaluated(local_ray, tmp_path):
    from eval.cli import main as eval_main

    out = tmp_path / "run"
    pairs = [f"{k}:{v}" for k, v in TINY_ENV.items()]
    args = ["--backend", "rllib", "--env-kwargs", *pairs, "--iterations", "2", "--num-env-runners", "2", "--out", str(out), "-q",
            "--hyperparams", "train_batch_size_per_learner:128", "minibatch_size:64", "num_epochs:1"]  # fmt: skip
    assert train_main(args) == 0
    progress = [json.loads(line) for line in (out / "progress.jsonl").read_text().splitlines()]
    assert [row["iteration"] for row in progress] == [1, 2]
    assert progress[-1]["env_steps"] >= 256
    assert rllib.read_info(out / "checkpoint")["agent_options"]["num_slots"] == TINY_ENV["num_slots"]
    assert rllib.RLlibConfig.from_dict(yaml.safe_load((out / "config.yaml").read_text())).iterations == 2
    agent = load_model(f"rllib:{out / 'checkpoint'}")
    assert isinstance(agent.module, rllib.SetRankModule)
    evaluation = tmp_path / "eval"
    assert eval_main(["--policies", "fcfs", f"rllib:{out / 'checkpoint'}", "--scenarios", "chat-a100-40gb", "--num-requests", "30",
                      "--seeds", "0", "--jobs", "1", "--out", str(evaluation), "--no-plots", "--no-tensorboard"]) == 0  # fmt: skip
    records = json.loads((evaluation / "results.json").read_text())
    assert {r["policy"] for r in records} == {"fcfs", "run"}
    assert all(r["finished"] == 30 for r in records)
