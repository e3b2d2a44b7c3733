"""Environment speed: ``llmsched/Serve-v1`` steps per second, one core, and the vector env.

Agents: a random agent (uniform scores / uniform valid admissions) and FCFS as an agent (scores
from arrival order / admit the oldest waiting request), in both action modes, K = 32 slots, the
default workload (ShareGPT lengths at load 0.9), 1,000 requests per episode. The agent's own time
is included, as in a training loop. For comparison the script also times Gymnasium's CartPole-v1.

Then the vector env (``gym.make_vec(..., vectorization_mode="vector_entry_point")``, N engines in
one process, random actions, rank mode): Serve-v1 as above and Serve-v2's default scenario
(chat-a100-40gb, 64 slots), in env steps per second (N per batch step).

    python benchmarks/bench_env.py
    python benchmarks/bench_env.py --vector-only --num-envs 16 --seconds 20
"""

from __future__ import annotations

import argparse
import os
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


def vector_steps_per_second(env_id: str, num_envs: int, seconds: float, **kwargs) -> float:
    """Env steps per second of the vector env with random scores (after one warm-up episode)."""
    venv = gym.make_vec(env_id, num_envs=num_envs, vectorization_mode="vector_entry_point", num_requests=1000, **kwargs)
    rng = np.random.default_rng(0)
    actions = rng.uniform(-1, 1, (64, *venv.action_space.shape)).astype(np.float32)
    venv.reset(seed=0)
    for i in range(200):  # warm up (the first resets measure the engine's capacity)
        venv.step(actions[i % 64])
    steps, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        venv.step(actions[steps % 64])
        steps += 1
    return steps * num_envs / (time.perf_counter() - start)


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
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num-envs", type=int, default=8, help="engines in the vector env (default 8)")
    parser.add_argument("--seconds", type=float, default=10.0, help="time per vector-env figure")
    parser.add_argument("--vector-only", action="store_true", help="only the vector env figures")
    args = parser.parse_args()
    print(f"machine: {describe()}; load average {os.getloadavg()[0]:.1f}; "
          f"simulator compiled: {llmsched_env.sim.COMPILED}")
    print(f"vector env, {args.num_envs} engines, random scores:")
    for env_id, kwargs in (("llmsched/Serve-v1", {"num_slots": 32}), ("llmsched/Serve-v2", {})):
        rate = vector_steps_per_second(env_id, args.num_envs, args.seconds, **kwargs)
        print(f"  {env_id} {kwargs or '(chat-a100-40gb, 64 slots)'}: {rate:,.0f} env steps/s")
    if args.vector_only:
        return
    print(f"{'action mode':<12}{'agent':<8}{'steps':>8}{'steps/s':>10}")
    for mode in ("rank", "admit"):
        for agent in ("random", "fcfs"):
            rate, steps = steps_per_second(mode, agent)
            print(f"{mode:<12}{agent:<8}{steps:>8,}{rate:>10,.0f}")
    print(f"\nGymnasium CartPole-v1 on this machine: {cartpole():,.0f} steps/s")


if __name__ == "__main__":
    main()
