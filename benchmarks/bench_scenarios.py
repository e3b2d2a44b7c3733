"""Every baseline on every scenario: mean latency relative to FCFS, with 95 % intervals.

For each scenario of ``llmsched_env.scenarios`` (or those given) at loads 0.9 and 0.95, runs every
baseline on the same seeds (common random numbers: all policies serve the same requests) and
prints, per policy, the mean over seeds of the per-seed ratio of its mean end-to-end latency to
FCFS's, with a 95 % t-interval over the seeds, plus its p99 ratio and how many runs were stable.

    PYTHONPATH=. python benchmarks/bench_scenarios.py [--scenarios NAME ...] [--loads 0.9 0.95] [--seeds 5] [--jobs 2]
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.machine import describe  # noqa: E402


def t95(n: int) -> float:
    """Two-sided 95 % Student t quantile for n - 1 degrees of freedom."""
    table = {2: 12.706, 3: 4.303, 4: 3.182, 5: 2.776, 6: 2.571, 7: 2.447, 8: 2.365, 9: 2.306, 10: 2.262}
    return table.get(n, 1.96 + 2.4 / max(n - 1, 1))


def run(args: tuple[str, float, int, str]) -> tuple[str, float, int, str, dict]:
    scenario, load, seed, policy = args
    import baselines
    from llmsched_env import scenarios
    from llmsched_env.sim import simulate

    config = scenarios.sim_config(scenario, load=load)
    summary = simulate(config, baselines.parse(policy), seed=seed).summary
    keep = ("e2e_mean_s", "e2e_p99_s", "ttft_mean_s", "output_tokens_per_s", "stability", "preemptions", "slo_attainment")
    return scenario, load, seed, policy, {k: summary[k] for k in keep}


def main() -> None:
    import baselines
    from llmsched_env import scenarios

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    single = [n for n in scenarios.names() if n not in scenarios.cluster_names()]  # cluster ones: bench_cluster.py
    parser.add_argument("--scenarios", nargs="+", default=single)
    parser.add_argument("--loads", nargs="+", type=float, default=[0.9, 0.95])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--policies", nargs="+", default=baselines.available())
    parser.add_argument("--jobs", type=int, default=len(os.sched_getaffinity(0)))
    args = parser.parse_args()
    print(describe())
    grid = [(s, x, seed, p) for s in args.scenarios for x in args.loads for seed in range(args.seeds) for p in args.policies]
    start = time.perf_counter()
    with ProcessPoolExecutor(args.jobs) as pool:
        results = list(pool.map(run, grid, chunksize=4))
    print(f"{len(grid)} runs in {time.perf_counter() - start:.0f} s on {args.jobs} processes; {args.seeds} seeds per cell\n")
    table = {(s, x, seed, p): r for s, x, seed, p, r in results}
    for s in args.scenarios:
        print(f"## {s}: {scenarios.get(s).summary}")
        for x in args.loads:
            fcfs = [table[(s, x, seed, "fcfs")] for seed in range(args.seeds)]
            print(f"load {x:g}: FCFS mean e2e {np.mean([r['e2e_mean_s'] for r in fcfs]):.2f} s")
            print(f"  {'policy':15}{'e2e / fcfs':>18}{'p99 / fcfs':>12}{'ttft / fcfs':>12}{'stable':>8}{'preempt.':>10}")
            rows = []
            for p in args.policies:
                runs = [table[(s, x, seed, p)] for seed in range(args.seeds)]
                ratio = np.array([r["e2e_mean_s"] / f["e2e_mean_s"] for r, f in zip(runs, fcfs)])
                p99 = np.mean([r["e2e_p99_s"] / f["e2e_p99_s"] for r, f in zip(runs, fcfs)])
                ttft = np.mean([r["ttft_mean_s"] / f["ttft_mean_s"] for r, f in zip(runs, fcfs)])
                half = t95(len(ratio)) * ratio.std(ddof=1) / math.sqrt(len(ratio)) if len(ratio) > 1 else math.nan
                stable = sum(r["stability"] == "stable" for r in runs)
                pre = np.mean([r["preemptions"] for r in runs])
                rows.append((ratio.mean(), f"  {p:15}{ratio.mean():10.3f} ±{half:6.3f}{p99:12.3f}{ttft:12.3f}{stable:>5}/{len(runs)}{pre:10.0f}"))
            for _, line in sorted(rows):
                print(line)
        print()


if __name__ == "__main__":
    main()
