"""Train a routing agent on ``llmsched/Cluster-v0`` with MaskablePPO and compare it with the routing
baselines on held-out seeds.

The scenario is ``cluster-chat-multiturn`` of ``llmsched_env.scenarios`` (4 A100 replicas,
multi-turn chat with prefix caching, load 0.8); training episodes are ``--train-requests``
requests long, evaluation episodes ``--eval-requests``, on simulation seeds 10,000 + k that training
never sees. The agent acts on observations only (per replica: queue, batch, free KV, iteration
time, cached share of the arriving prompt; the request's lengths); its evaluation is
deterministic (the most likely action).

    python benchmarks/train_router.py                       # 80k steps, about 3 min on 2 cores
    python benchmarks/train_router.py --steps 5000 --eval-seeds 2   # smoke run
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

if not __package__:  # run as a script: make the repository root importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from baselines.routing import available_routers, make_router  # noqa: E402
from benchmarks.bench_baselines import ci  # noqa: E402
from benchmarks.bench_cluster import scenarios  # noqa: E402
from benchmarks.machine import describe  # noqa: E402
from llmsched_env.envs.cluster import ClusterEnv  # noqa: E402
from llmsched_env.sim.cluster import Cluster  # noqa: E402

HELD_OUT = 10_000


def agent_episode(model, config, seed: int) -> dict:
    env = ClusterEnv.from_config(config)
    obs, info = env.reset(options={"sim_seed": seed})
    done = False
    while not done:
        action, _ = model.predict(obs, deterministic=True, action_masks=env.action_masks())
        obs, _, terminated, truncated, info = env.step(int(action))
        done = terminated or truncated
    return info["summary"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=80_000)
    parser.add_argument("--train-requests", type=int, default=300)
    parser.add_argument("--eval-requests", type=int, default=1000)
    parser.add_argument("--eval-seeds", type=int, default=5)
    parser.add_argument("--scenario", default="cluster-chat-multiturn")
    parser.add_argument("--gamma", type=float, default=0.95)
    parser.add_argument("--ent-coef", type=float, default=0.01)
    parser.add_argument("--save", default=None, help="write the trained model here (.zip)")
    args = parser.parse_args()

    import torch
    from sb3_contrib import MaskablePPO

    torch.set_num_threads(1)
    train_config = scenarios(args.train_requests)[args.scenario]
    eval_config = scenarios(args.eval_requests)[args.scenario]
    env = ClusterEnv.from_config(train_config)
    model = MaskablePPO("MultiInputPolicy", env, n_steps=1024, batch_size=256, learning_rate=3e-4, gamma=args.gamma,
                        ent_coef=args.ent_coef, seed=0, verbose=0)
    print(f"machine: {describe()}; scenario {args.scenario}; {args.steps} training steps")
    t0 = time.perf_counter()
    model.learn(total_timesteps=args.steps)
    train_s = time.perf_counter() - t0
    if args.save:
        model.save(args.save)
    seeds = [HELD_OUT + k for k in range(args.eval_seeds)]
    rows = []
    agent = [agent_episode(model, eval_config, s) for s in seeds]
    rows.append(("ppo-router (ours)", agent))
    for name in available_routers():
        rows.append((name, [Cluster(eval_config, seed=s).run(make_router(name)).summary for s in seeds]))
    print(f"trained in {train_s:.0f} s; held-out seeds {seeds[0]}..{seeds[-1]}, {args.eval_requests} requests each\n")
    print(f"{'router':<20}{'e2e mean s':>16}{'e2e p99 s':>16}{'hit rate':>14}")
    ranked = sorted(rows, key=lambda row: float(np.mean([s["e2e_mean_s"] for s in row[1]])))
    for name, summaries in ranked:
        cells = []
        for key in ("e2e_mean_s", "e2e_p99_s"):
            m, h = ci([s[key] for s in summaries])
            cells.append(f"{m:>10.3f}±{h:<5.2g}")
        m, h = ci([s["prefix_hit_rate_tokens"] for s in summaries])
        print(f"{name:<20}{''.join(cells)}{m:>9.1%}±{h:<4.1%}")


if __name__ == "__main__":
    main()
