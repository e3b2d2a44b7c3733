"""PPO minibatches grouped by slot occupancy (train.buffers)."""

from __future__ import annotations

import numpy as np
import pytest
import yaml

from llmsched_env.sim.validation import ConfigError
from train.buffers import OccupancyRolloutBuffer, occupancy_minibatches
from train.config import TrainConfig


def test_minibatches_cover_every_sample_once_and_group_similar_occupancy():
    rng = np.random.default_rng(0)
    np.random.seed(0)
    occupancy = rng.integers(1, 65, 1000)
    permutation = np.random.permutation(1000)
    batches = occupancy_minibatches(permutation, occupancy, 50, window=8)
    assert sorted(np.concatenate(batches).tolist()) == list(range(1000))  # each sample once
    assert [len(b) for b in batches].count(50) == 20
    grouped = np.mean([occupancy[b].max() for b in batches])
    random = np.mean([occupancy[permutation[i : i + 50]].max() for i in range(0, 1000, 50)])
    assert grouped < 0.7 * random  # the fullest observation of a minibatch: well below a random minibatch's (uniform 1-64: 38 against 63)
    # window 1: the random permutation's own minibatches (in another order)
    plain = occupancy_minibatches(permutation, occupancy, 50, window=1)
    assert sorted(tuple(sorted(b.tolist())) for b in plain) == sorted(tuple(sorted(permutation[i : i + 50].tolist())) for i in range(0, 1000, 50))


def test_training_with_occupancy_minibatches_uses_the_buffer(tmp_path):
    from train.cli import main

    config = {
        "env_kwargs": {"num_requests": 20, "num_slots": 8},
        "n_timesteps": 128, "n_envs": 2, "minibatches": "by-occupancy",
        "hyperparams": {"n_steps": 64, "batch_size": 32, "n_epochs": 1,
                        "policy_kwargs": {"features_extractor_kwargs": {"embed_dim": 16, "num_heads": 2, "num_layers": 1, "ff_dim": 32}}},
        "eval_freq": 0, "eval_episodes": 1, "eval_baselines": ["fcfs"], "bc": None, "progress_bar": False,
    }  # fmt: skip
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(config))
    assert TrainConfig.from_dict(config).algo_kwargs()["rollout_buffer_class"] is OccupancyRolloutBuffer
    assert main(["-c", str(path), "--out", str(tmp_path / "run"), "-q"]) == 0
    assert yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())["minibatches"] == "by-occupancy"


def test_occupancy_minibatches_are_for_the_rank_and_portfolio_algorithms():
    assert "rollout_buffer_class" not in TrainConfig.from_dict({}).algo_kwargs()
    with pytest.raises(ConfigError, match="minibatches='by-occupancy' is for algo ppo"):
        TrainConfig.from_dict({"algo": "ppo_mask", "env_kwargs": {"action_mode": "admit"}, "minibatches": "by-occupancy"})
    with pytest.raises(ConfigError, match="minibatches"):
        TrainConfig.from_dict({"minibatches": "sorted"})
