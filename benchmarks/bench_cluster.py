"""The routing baselines on serving clusters: mean and P99 latency, TTFT and prefix hit rate with
95 % confidence intervals over seeds (common random numbers: every router serves the same requests).

Scenarios: the registry's cluster scenarios (``llmsched_env.scenarios.cluster_names()``:
``cluster-chat-multiturn``, ``cluster-hetero``, ``cluster-system-prompt``; every replica
Llama-2-7B, Sarathi batching, FCFS, automatic prefix caching on), and ``mooncake-4x``: the replicas
of ``cluster-chat-multiturn`` replaying the first requests of the Mooncake conversation trace with
its hash_ids (prompts clipped at 16k tokens), timing rescaled to load 0.7 (when the trace is
present).

    python benchmarks/bench_cluster.py            # 5 seeds
    python benchmarks/bench_cluster.py --quick    # 2 seeds, fewer requests
"""

from __future__ import annotations

import argparse
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

if not __package__:  # run as a script: make the repository root importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from baselines.routing import available_routers, make_router  # noqa: E402
from benchmarks.bench_baselines import ci  # noqa: E402
from benchmarks.machine import describe  # noqa: E402
from llmsched_env import scenarios as llmsched_scenarios  # noqa: E402
from llmsched_env.sim import WorkloadConfig  # noqa: E402
from llmsched_env.sim.cluster import Cluster, ClusterConfig  # noqa: E402

MOONCAKE = Path(__file__).resolve().parents[2] / "shared" / "data" / "traces" / "mooncake_fast25_conversation_trace.jsonl.gz"


def scenarios(num_requests: int, trace: Path = MOONCAKE) -> dict[str, ClusterConfig]:
    """The registry's cluster scenarios, and the Mooncake replay when ``trace`` is present."""
    out = {name: llmsched_scenarios.cluster_config(name, num_requests=num_requests) for name in llmsched_scenarios.cluster_names()}
    if trace.exists():
        base = out["cluster-chat-multiturn"]
        out["mooncake-4x"] = base.replace(
            workload=WorkloadConfig(lengths="trace", arrival="trace", trace_path=str(trace), prefix="trace",
                                    max_prompt_len=16384, num_requests=num_requests),
            load=0.7,
        )
    return out


def run(job: tuple[str, ClusterConfig, str, int]) -> tuple[str, str, int, dict]:
    name, config, router, seed = job
    s = Cluster(config, seed=seed).run(make_router(router)).summary
    keep = ("e2e_mean_s", "e2e_p99_s", "ttft_mean_s", "prefix_hit_rate_tokens", "finished")
    return name, router, seed, {k: s[k] for k in keep}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="2 seeds, 600 requests")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--trace", type=Path, default=MOONCAKE, help="the Mooncake conversation trace (JSONL, gzipped)")
    args = parser.parse_args()
    seeds = range(2 if args.quick else 5)
    n = 600 if args.quick else 2000
    configs = scenarios(n, args.trace)
    jobs = [(name, config, router, seed) for name, config in configs.items() for router in available_routers() for seed in seeds]
    print(f"machine: {describe()}; {len(seeds)} seeds x {n} requests per scenario")
    t0 = time.perf_counter()
    with ProcessPoolExecutor(max_workers=args.workers) as pool:
        results = list(pool.map(run, jobs, chunksize=1))
    by = {}
    for name, router, seed, summary in results:
        by.setdefault((name, router), []).append(summary)
    for name in configs:
        print(f"\n## {name}")
        print(f"{'router':<20}{'e2e mean s':>16}{'e2e p99 s':>16}{'ttft mean s':>16}{'hit rate':>14}")
        rows = []
        for router in available_routers():
            runs = by[(name, router)]
            stats = [ci([r[k] for r in runs]) for k in ("e2e_mean_s", "e2e_p99_s", "ttft_mean_s", "prefix_hit_rate_tokens")]
            rows.append((stats[0][0], router, stats))
        for _, router, stats in sorted(rows):  # ranked by mean latency
            cells = "".join(f"{m:>10.3f}±{h:<5.2g}" if k < 3 else f"{m:>9.1%}±{h:<4.1%}" for k, (m, h) in enumerate(stats))
            print(f"{router:<20}{cells}")
    print(f"\n{len(jobs)} runs in {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
