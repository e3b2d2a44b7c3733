"""Evaluation wall time against the number of workers: the local process pool and Ray tasks.

One fixed grid (every baseline on ``chat-a100-40gb``, ``--requests`` requests per run, ``--seeds``
seeds) is run by ``eval.runner.run_all`` with N workers: N processes of the local backend, and a
local Ray started with N CPUs for the Ray backend (``llmsched-eval --backend ray``). Printed per N:
the grid's wall time on each backend, Ray's start-up (``ray.init``, not in the grid's time), and
the speed-up over one worker. The figure (``--plot``, the README's) draws the grid times with the
ideal ``T(1) / N``. The 1-minute load average after each row tells whether other work shared
the machine (a busy machine has no free core for another worker). On a cluster,
``--ray-address ADDR`` runs the Ray rows there, N being the most tasks in flight, and Ray's
start-up is the connection's.

Both backends must give the same records (only ``wall_s`` differs): the script checks it.

    python benchmarks/bench_ray.py                       # N = 1, 2, 4, ... up to the cores
    python benchmarks/bench_ray.py --workers 1 2 --plot benchmarks/assets/eval_workers.png
    python benchmarks/bench_ray.py --ray-address auto --workers 1 8 64 256   # a cluster

Needs the ``ray`` extra (``pip install -e ".[ray]"``).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

if not __package__:  # run as a script: make the repository root importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.machine import describe  # noqa: E402
from eval.config import EvalConfig  # noqa: E402
from eval.policies import expand  # noqa: E402
from eval.runner import build_grid, run_all  # noqa: E402


def default_workers() -> list[int]:
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    workers = [1]
    while workers[-1] * 2 <= cores:
        workers.append(workers[-1] * 2)
    return workers if workers[-1] == cores else [*workers, cores]


def timed_grid(runs: list, jobs: int, backend: str) -> tuple[float, list[dict]]:
    """Seconds to run the grid and its records (``wall_s`` left out), sorted by run."""
    records: list[dict] = []
    start = time.perf_counter()
    assert run_all(runs, jobs, lambda run, result: records.append(result.record), progress=f"{backend} x{jobs}", backend=backend)
    seconds = time.perf_counter() - start
    return seconds, sorted(({k: v for k, v in r.items() if k != "wall_s"} for r in records), key=lambda r: r["run"])


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--workers", nargs="+", type=int, default=default_workers(), help="worker counts (default: 1, 2, 4, ... cores)")
    p.add_argument("--requests", type=int, default=1000, help="requests per run")
    p.add_argument("--seeds", type=int, default=2, help="seeds per policy")
    p.add_argument("--scenario", default="chat-a100-40gb")
    p.add_argument("--plot", help="write the figure to this PNG")
    p.add_argument("--ray-address", help="run the Ray rows on this cluster (N: tasks in flight); default: a local Ray of N CPUs")
    args = p.parse_args()

    import ray

    config = EvalConfig.from_dict(
        {"policies": ["all-baselines"], "scenarios": [args.scenario], "num_requests": args.requests, "seeds": args.seeds}
    )
    runs = build_grid(config, expand(config.policies))
    print(f"machine: {describe()}; Ray {ray.__version__}")
    print(f"grid: {len(runs)} runs (every baseline on {args.scenario}, {args.requests:,} requests, {args.seeds} seeds)\n")
    print(f"{'workers':>7}  {'local s':>8}  {'ray s':>7}  {'ray start s':>11}  {'local speed-up':>14}  {'ray speed-up':>12}  {'load avg':>8}")
    rows = []
    reference = None
    for n in args.workers:
        local_s, local_records = timed_grid(runs, n, "local")
        start = time.perf_counter()
        if args.ray_address:
            ray.init(address=args.ray_address, log_to_driver=False)
        else:
            ray.init(num_cpus=n, include_dashboard=False, log_to_driver=False)
        startup_s = time.perf_counter() - start
        try:
            ray_s, ray_records = timed_grid(runs, n if args.ray_address else 0, "ray")
        finally:
            ray.shutdown()
        if ray_records != local_records:
            print(f"MISMATCH: the Ray backend's records differ from the local ones with {n} workers", file=sys.stderr)
            return 1
        reference = reference or (local_s, ray_s)
        rows.append((n, local_s, ray_s, startup_s, os.getloadavg()[0]))
        print(f"{n:>7}  {local_s:>8.1f}  {ray_s:>7.1f}  {startup_s:>11.1f}  {reference[0] / local_s:>14.2f}  {reference[1] / ray_s:>12.2f}  "
              f"{rows[-1][4]:>8.1f}")  # other load on the machine: a busy one flattens the curve
    print("\nrecords identical on both backends at every worker count (wall_s aside)")
    if args.plot:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        ns = [r[0] for r in rows]
        fig, ax = plt.subplots(figsize=(5.5, 3.6))
        ax.plot(ns, [r[1] for r in rows], "o-", label="local processes")
        ax.plot(ns, [r[2] for r in rows], "s-", label=f"Ray tasks ({'cluster' if args.ray_address else 'local Ray'})")
        ax.plot(ns, [rows[0][1] / n for n in ns], "k:", label="ideal T(1)/N")
        ax.set_xscale("log", base=2)
        ax.set_xticks(ns, [str(n) for n in ns])
        ax.set_xlabel("workers")
        ax.set_ylabel("grid wall time (s)")
        busy = max(r[4] for r in rows)
        ax.set_title(f"{len(runs)}-run evaluation grid, {describe().split(',')[1].strip()}, load average up to {busy:.1f}", fontsize=9)
        ax.set_ylim(bottom=0)
        ax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(args.plot, dpi=120)
        print(f"wrote {args.plot}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
