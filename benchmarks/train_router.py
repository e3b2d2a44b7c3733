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

The training is ``llmsched-train --scenario <cluster scenario>`` (``train/router.py``); the best
model is chosen on the validation workloads, which here are the held-out seeds of the table (so
the agent's row is optimistic by that selection; ``llmsched-eval`` on other seeds is not).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

if not __package__:  # run as a script: make the repository root importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from baselines.routing import available_routers, make_router  # noqa: E402
from benchmarks.bench_baselines import ci  # noqa: E402
from benchmarks.machine import describe  # noqa: E402
from llmsched_env.sim.cluster import Cluster  # noqa: E402
from train.router import load_policy  # noqa: E402
from train.router import RouterTrainConfig, train_router  # noqa: E402

HELD_OUT = 10_000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=80_000)
    parser.add_argument("--train-requests", type=int, default=300)
    parser.add_argument("--eval-requests", type=int, default=1000)
    parser.add_argument("--eval-seeds", type=int, default=5)
    parser.add_argument("--scenario", default="cluster-chat-multiturn")
    parser.add_argument("--out", type=Path, default=None, help="run directory (default: a temporary one)")
    args = parser.parse_args()

    config = RouterTrainConfig(
        scenario=args.scenario, n_timesteps=args.steps, episode_requests=args.train_requests,
        eval_requests=args.eval_requests, eval_episodes=args.eval_seeds, eval_seed=HELD_OUT, eval_freq=max(args.steps // 4, 1),
    )  # fmt: skip
    print(f"machine: {describe()}; scenario {args.scenario}; {args.steps} training steps (llmsched-train's router training)")
    with tempfile.TemporaryDirectory() as tmp:
        out = args.out or Path(tmp)
        t0 = time.perf_counter()
        train_router(config, out, out / "tb", quiet=True, progress=False, num_threads=1)
        train_s = time.perf_counter() - t0
        agent = load_policy(out / "best_model.zip")
        eval_config = config.cluster(args.eval_requests)
        seeds = [HELD_OUT + k for k in range(args.eval_seeds)]
        rows = [("ppo-router (ours)", [Cluster(eval_config, seed=s).run(agent).summary for s in seeds])]
    for name in available_routers():
        rows.append((name, [Cluster(eval_config, seed=s).run(make_router(name)).summary for s in seeds]))
    print(f"trained in {train_s:.0f} s (best model by validation on the same held-out seeds {seeds[0]}..{seeds[-1]}, "
          f"{args.eval_requests} requests each)\n")
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
