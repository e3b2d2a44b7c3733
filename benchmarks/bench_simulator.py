"""Simulator speed and memory: simulated requests per wall second, events per second, peak memory.

For the default engine (Llama-2-7B on one A100, Sarathi batching, FCFS) and ShareGPT-like and
arXiv-like length mixes, at loads 0.5, 0.9 and 1.1 with 10k and 100k requests. Each case runs in
its own process so its peak memory (max RSS) is its own; per-request records are streamed into the
summary (``keep_records=False``), so memory should follow the requests in the system, not the
requests simulated. Also prints the start-up time (import + first simulation of one request).

    python benchmarks/bench_simulator.py            # the full grid (about a minute compiled)
    python benchmarks/bench_simulator.py --quick    # 10k requests only

The figures quoted in the README come from this script; it prints the machine they ran on.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
from pathlib import Path

if not __package__:  # run as a script: make the repository root importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.machine import describe  # noqa: E402

CHILD = r"""
import json, resource, sys, time
t0 = time.perf_counter()
from llmsched_env.sim import COMPILED, SimConfig, WorkloadConfig, simulate
from llmsched_env.sim.capacity import sustainable_rate
lengths, load, n = sys.argv[1], float(sys.argv[2]), int(sys.argv[3])
config = SimConfig(load=load, keep_records=False, workload=WorkloadConfig(lengths=lengths, num_requests=n))
sustainable_rate(config.engine, config.workload)  # measured separately: cached per config
t1 = time.perf_counter()
result = simulate(config)
wall = time.perf_counter() - t1
print(json.dumps(dict(
    wall=wall, capacity_s=t1 - t0, events=result.stats.stretches, iterations=result.stats.iterations,
    max_rss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, compiled=COMPILED,
    stability=result.summary["stability"], finished=result.summary["finished"],
    in_system_mean=result.summary["in_system_mean"],
)))
"""

STARTUP = r"""
import time
t0 = time.perf_counter()
from llmsched_env.sim import SimConfig, WorkloadConfig, simulate
simulate(SimConfig(rate=1.0, workload=WorkloadConfig(num_requests=1)))
print(time.perf_counter() - t0)
"""


def machine() -> str:
    return f"{describe()}, {platform.system()} {platform.machine()}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="10k requests only")
    args = parser.parse_args()
    sizes = [10_000] if args.quick else [10_000, 100_000]
    print(f"machine: {machine()}")
    startup = float(subprocess.run([sys.executable, "-c", STARTUP], capture_output=True, text=True, check=True).stdout)
    print(f"start-up (import + one simulated request, cold process): {startup:.2f} s")
    print()
    header = f"{'lengths':<22}{'load':>5}{'requests':>10}{'wall s':>8}{'req/s':>10}{'events/s':>11}{'iter/event':>11}{'peak MB':>9}  stability"
    print(header)
    print("-" * len(header))
    compiled = None
    for lengths in ("sharegpt", "arxiv-summarization"):
        for load in (0.5, 0.9, 1.1):
            for n in sizes:
                out = subprocess.run(
                    [sys.executable, "-c", CHILD, lengths, str(load), str(n)], capture_output=True, text=True, check=True
                ).stdout
                r = json.loads(out)
                compiled = r["compiled"]
                print(
                    f"{lengths:<22}{load:>5}{n:>10,}{r['wall']:>8.2f}{n / r['wall']:>10,.0f}{r['events'] / r['wall']:>11,.0f}"
                    f"{r['iterations'] / r['events']:>11.1f}{r['max_rss_mb']:>9.0f}  {r['stability']}"
                )
    print()
    print(f"simulator compiled with mypyc: {compiled}")


if __name__ == "__main__":
    main()
