"""Environment speed: ``llmsched/Serve-v1`` steps per second, one core.

Agents: a random agent (uniform scores / uniform valid admissions) and FCFS as an agent (scores
from arrival order / admit the oldest waiting request), in both action modes, K = 32 slots, the
default workload (ShareGPT lengths at load 0.9), 1,000 requests per episode. The agent's own time
is included, as in a training loop. For comparison the script also times Gymnasium's CartPole-v1.

    python benchmarks/bench_env.py
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import gymnasium as gym
import numpy as np

if not __package__:  # run as a script: make the repository root importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import llmsched_env
from benchmarks.machine import describe  # noqa: E402


def fcfs_scores(env) -> np.ndarray:
    u = env.unwrapped
    scores = np.zeros(u.num_slots, dtype=np.float32)
    n = len(u.slots)
    if n:
        arrivals = np.fromiter((r.arrival for r in u.slots), float, n)
        scores[:n] = -np.argsort(np.argsort(arrivals)) / n  # earliest arrival scores highest
    return scores


def fcfs_pick(env, mask: np.ndarray) -> int:
    u = env.unwrapped
    held = np.flatnonzero(mask[:-1])
    if len(held) == 0:
        return u.num_slots
    return int(min(held, key=lambda i: u.slots[i].arrival))


def steps_per_second(mode: str, agent: str, episodes: int = 2, slots: int = 32) -> tuple[float, int]:
    env = gym.make("llmsched/Serve-v1", action_mode=mode, num_slots=slots, num_requests=1000)
    rng = np.random.default_rng(0)
    random_scores = rng.uniform(-1, 1, (1024, slots)).astype(np.float32)
    env.reset(seed=0)  # the first reset measures the engine's capacity (cached afterwards)
    steps, elapsed = 0, 0.0
    for episode in range(episodes):
        obs, info = env.reset(seed=episode)
        start = time.perf_counter()
        done = False
        while not done:
            if mode == "rank":
                action = random_scores[steps % 1024] if agent == "random" else fcfs_scores(env)
            else:
                mask = info["action_mask"]
                action = int(rng.choice(np.flatnonzero(mask))) if agent == "random" else fcfs_pick(env, mask)
            obs, reward, terminated, truncated, info = env.step(action)
            steps += 1
            done = terminated or truncated
        elapsed += time.perf_counter() - start
    return steps / elapsed, steps


def cartpole() -> float:
    env = gym.make("CartPole-v1")
    env.reset(seed=0)
    n, start = 0, time.perf_counter()
    while n < 100_000:
        _, _, terminated, truncated, _ = env.step(n % 2)
        n += 1
        if terminated or truncated:
            env.reset()
    return n / (time.perf_counter() - start)


def main() -> None:
    print(f"machine: {describe()}; "
          f"simulator compiled: {llmsched_env.sim.COMPILED}")
    print(f"{'action mode':<12}{'agent':<8}{'steps':>8}{'steps/s':>10}")
    for mode in ("rank", "admit"):
        for agent in ("random", "fcfs"):
            rate, steps = steps_per_second(mode, agent)
            print(f"{mode:<12}{agent:<8}{steps:>8,}{rate:>10,.0f}")
    print(f"\nGymnasium CartPole-v1 on this machine: {cartpole():,.0f} steps/s")


if __name__ == "__main__":
    main()
