"""The fuzz suite (benchmarks/fuzz.py): a fast slice here, a longer one in the slow run."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.fuzz import ServeChecks, fuzz  # noqa: E402


def test_fuzz_fast_slice_finds_no_violation():
    tally = fuzz(2_000, seed=0, sim_every=2, network_every=2, repeat_every=2, max_episode_steps=1_500, out=lambda *a: None)
    assert tally.violations == []
    assert tally.env_steps >= 2_000 and tally.sim_runs > 0 and tally.network_steps > 0 and tally.determinism_checks > 0


def test_fuzz_checks_catch_a_lost_request():
    import gymnasium as gym
    import numpy as np

    env = gym.make("llmsched/Serve-v2", num_requests=10).unwrapped
    env.reset(seed=0)
    observation, reward, *_ = env.step(np.zeros(env.action_space.shape, dtype=np.float32))
    checks = ServeChecks()
    assert checks(env, observation, reward) is None
    env.engine.live.pop()  # a request vanishes
    assert "accounted for" in checks(env, observation, reward)


@pytest.mark.slow
def test_fuzz_long_slice_finds_no_violation():
    tally = fuzz(200_000, seed=1, out=lambda *a: None)
    assert tally.violations == [], tally.violations[:3]
