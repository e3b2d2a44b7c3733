"""The heuristic baselines on the same engine and workloads: latency, TTFT and throughput with 95 %
confidence intervals over seeds, Trail's C sweep and how the gains shrink with prediction noise.

Engine: the default (Llama-2-7B on one A100, Sarathi-style batching, 256 slots, 2,048-token budget,
7,424 KV blocks of 16 tokens, recompute preemption). Workloads, Poisson arrivals at a fraction
``load`` of the engine's sustainable rate for the length mix (``llmsched_env.sim.capacity``):

* ``sharegpt`` — the default: ShareGPT lengths (mean prompt 2,340 / output 439 tokens);
* ``alpaca-like`` — Trail's setting (short Alpaca requests). Output lengths: a lognormal clipped at
  512 tokens (``max_tokens``) whose mean (257) and share at the cap (21 %) match a 271-row sample of
  Trail's released Alpaca trace (Llama-3-8B-Instruct outputs, ``data/alpaca_trace.jsonl`` of
  github.com/harvard-cns/TRAIL-llm-scheduling; sample median 226, fitted 211). Prompt lengths are
  assumed, not fitted: Alpaca instruction + input (~20 tokens) plus a chat template, lognormal
  with mean 32 tokens and log-std 0.6. The hardware stays Llama-2-7B/A100 (Trail: Llama-3-8B).

Policies: ``fcfs``; ``sjf``, ``sprpt`` and ``trail`` on the default lognormal(0.5) predictions;
``sprpt`` and ``trail`` on the ``refining`` predictor (Trail's own setting: 10 bins over 0-512,
refreshed every 16 tokens); ``mlfq`` (no predictions); ``srpt`` (true lengths). Every policy sees
the same arrivals and lengths for a seed (common random numbers). Load 1.1 is an overload: its
figures describe a finite run of ``--requests`` requests, not a steady state.

Policies with a ``wakeup`` (mlfq, trail) get their decision epochs when they ask for them (a
demotion, the end of a preemptible window), so the engine's fast path stays exact for them.

    python benchmarks/bench_baselines.py            # full grid, 5 seeds (900 runs, 11 min on 2 cores)
    python benchmarks/bench_baselines.py --quick    # 2 seeds, fewer requests
    python benchmarks/bench_baselines.py --admission-preemption   # vLLM V0's priority preemption

By default a waiting request is admitted only into free KV blocks (vLLM V1, ``Serve-v1``);
``--admission-preemption`` lets it evict lower-priority KV holders to get in (vLLM V0's priority
scheduling, ``Serve-v0``), where the preemptive policies pay a recompute for every eviction.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

if not __package__:  # run as a script: make the repository root importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import baselines
from benchmarks.machine import describe  # noqa: E402
from llmsched_env.sim import EngineConfig, PredictorConfig, SimConfig, WorkloadConfig, simulate
from llmsched_env.sim.workload import sample_lengths

ALPACA_LIKE = WorkloadConfig(
    lengths="lognormal", prompt_mean=32, prompt_sigma=0.6, output_mean=394, output_sigma=1.12, max_output_len=512
)
# name -> (workload, engine, requests per run, loads)
CONFIGS = {
    "sharegpt": (WorkloadConfig(), EngineConfig(), 2000, (0.5, 0.8, 0.9, 0.95, 1.1)),
    "alpaca-like/48": (ALPACA_LIKE, EngineConfig(max_num_seqs=48), 4000, (0.5, 0.8, 0.9, 0.95, 1.1)),
    "alpaca-like/256": (ALPACA_LIKE, EngineConfig(), 4000, (0.95, 1.1)),
}
SWEEP_CONFIGS = ("sharegpt", "alpaca-like/48")
# (label, baseline spec, predictor): None = the default lognormal(0.5)
POLICIES = (
    ("fcfs", "fcfs", None),
    ("sjf", "sjf", None),
    ("sprpt", "sprpt", None),
    ("trail", "trail", None),
    ("sprpt/refining", "sprpt", PredictorConfig(kind="refining")),
    ("trail/refining", "trail", PredictorConfig(kind="refining")),
    ("mlfq", "mlfq", None),
    ("srpt (oracle)", "srpt", None),
)
SWEEP_LOADS = (0.95, 1.1)
C_SWEEP = (0.2, 0.5, 0.8, 1.0)
SIGMAS = (0.0, 0.25, 0.5, 1.0, 2.0)
SYSTEM_LOADS = (0.8, 0.95)
METRICS = ("e2e_mean_s", "e2e_p50_s", "e2e_p99_s", "ttft_mean_s", "output_tokens_per_s", "preemptions", "finished")
# two-sided 95 % Student t quantiles for n - 1 degrees of freedom
T95 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262}


@dataclass(frozen=True)
class Job:
    config: str
    load: float
    seed: int
    spec: str
    predictor: PredictorConfig | None
    requests: int
    system: str | None = None
    admission_preemption: bool = False


def run_job(job: Job) -> dict[str, float]:
    workload, engine, _, _ = CONFIGS[job.config]
    config = SimConfig(
        engine=dataclasses.replace(engine, admission_preemption=job.admission_preemption),
        workload=dataclasses.replace(workload, num_requests=job.requests),
        predictor=job.predictor or PredictorConfig(),
        load=job.load,
        keep_records=False,
    )
    if job.system is not None:
        config, policy = baselines.systems.system_config(job.system, config)
    else:
        policy = baselines.parse(job.spec)
    summary = simulate(config, policy, seed=job.seed).summary
    out = {m: float(summary[m]) for m in METRICS}
    out["unstable"] = float(summary["stability"] == "unstable")
    return out


def ci(values: list[float]) -> tuple[float, float]:
    """Mean and half-width of its 95 % confidence interval over seeds."""
    x = np.asarray(values, dtype=float)
    if len(x) < 2:
        return float(x.mean()), math.nan
    return float(x.mean()), T95.get(len(x) - 1, 1.96) * float(x.std(ddof=1)) / math.sqrt(len(x))


def fmt(values: list[float]) -> str:
    mean, half = ci(values)
    return f"{mean:.3g}" + ("" if math.isnan(half) else f"±{half:.2g}")


def row(cells: list[str], widths: list[int]) -> str:
    return "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths)))


def machine() -> str:
    return describe()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="2 seeds and a quarter of the requests")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--admission-preemption", action="store_true", help="waiting requests may evict KV holders (vLLM V0)")
    args = parser.parse_args()
    admit = args.admission_preemption
    seeds = range(2 if args.quick else args.seeds)
    scale = 0.25 if args.quick else 1.0
    requests = {name: max(200, int(c[2] * scale)) for name, c in CONFIGS.items()}

    print(f"machine: {machine()}; seeds {list(seeds)}; requests per run {requests}; admission_preemption={admit}")
    for name in ("sharegpt", "alpaca-like/48"):
        prompt, output = (np.asarray(x) for x in sample_lengths(CONFIGS[name][0], 100_000, 0))
        print(
            f"  {name.split('/')[0]} lengths: prompt mean {prompt.mean():.0f}; output mean {output.mean():.0f}, "
            f"median {np.median(output):.0f}, share at 512 tokens {np.mean(output == 512):.1%}"
        )

    jobs: list[Job] = []
    for name, (_, _, _, loads) in CONFIGS.items():
        for load in loads:
            for _, spec, pred in POLICIES:
                jobs += [Job(name, load, s, spec, pred, requests[name]) for s in seeds]
    for name in SWEEP_CONFIGS:
        for load in SWEEP_LOADS:
            for c in C_SWEEP:
                jobs += [Job(name, load, s, f"trail:C={c}", PredictorConfig(kind="refining"), requests[name]) for s in seeds]
            for sigma in SIGMAS:
                for spec in ("sjf", "sprpt", "trail"):
                    jobs += [Job(name, load, s, spec, PredictorConfig(sigma=sigma), requests[name]) for s in seeds]
    for system in baselines.systems.SYSTEMS:
        for load in SYSTEM_LOADS:
            jobs += [Job("sharegpt", load, s, system, None, requests["sharegpt"], system=system) for s in seeds]
    jobs = [dataclasses.replace(job, admission_preemption=admit) for job in dict.fromkeys(jobs)]  # the sweeps repeat some runs

    t0 = time.perf_counter()
    with ProcessPoolExecutor(max_workers=args.workers) as pool:
        results = dict(zip(jobs, pool.map(run_job, jobs, chunksize=1)))
    print(f"{len(jobs)} simulations in {time.perf_counter() - t0:.0f} s\n")

    def series(name, load, spec, pred, metric, system=None) -> list[float]:
        return [results[Job(name, load, s, spec, pred, requests[name], system, admit)][metric] for s in seeds]

    def gain(name, load, spec, pred, metric) -> list[float]:
        """FCFS / policy, seed by seed (common random numbers)."""
        return [b / x for b, x in zip(series(name, load, "fcfs", None, metric), series(name, load, spec, pred, metric))]

    header = ["policy", "e2e mean s", "e2e p50 s", "e2e p99 s", "TTFT mean s", "out tok/s", "preempt/req", "xFCFS e2e", "xFCFS TTFT", "unstable"]
    widths = [15, 12, 12, 13, 15, 11, 11, 11, 11, 8]
    for name, (_, _, _, loads) in CONFIGS.items():
        for load in loads:
            print(f"== {name}, load {load}: mean ± 95 % CI over {len(seeds)} seeds; xFCFS = FCFS / policy, higher is better")
            print(row(header, widths))
            for label, spec, pred in POLICIES:
                get = lambda metric: series(name, load, spec, pred, metric)  # noqa: E731
                per_request = [p / f for p, f in zip(get("preemptions"), get("finished"))]
                cells = [label, fmt(get("e2e_mean_s")), fmt(get("e2e_p50_s")), fmt(get("e2e_p99_s")), fmt(get("ttft_mean_s")),
                         fmt(get("output_tokens_per_s")), fmt(per_request), fmt(gain(name, load, spec, pred, "e2e_mean_s")),
                         fmt(gain(name, load, spec, pred, "ttft_mean_s")), f"{np.mean(get('unstable')):.0%}"]
                print(row(cells, widths))
            print()

    refining = PredictorConfig(kind="refining")
    print("== Trail's C sweep (refining predictor): xFCFS on mean e2e / on mean TTFT")
    for name in SWEEP_CONFIGS:
        for load in SWEEP_LOADS:
            cells = [f"C={c}: x{fmt(gain(name, load, f'trail:C={c}', refining, 'e2e_mean_s'))} / x{fmt(gain(name, load, f'trail:C={c}', refining, 'ttft_mean_s'))}" for c in C_SWEEP]
            print(f"  {name:<15} load {load:<5} " + "   ".join(cells))
    print()

    print("== Prediction noise, lognormal sigma (0 = exact): xFCFS on mean e2e / on mean TTFT")
    for name in SWEEP_CONFIGS:
        for load in SWEEP_LOADS:
            print(f"  {name}, load {load}")
            for spec in ("sjf", "sprpt", "trail"):
                cells = [f"{sigma}: x{fmt(gain(name, load, spec, PredictorConfig(sigma=sigma), 'e2e_mean_s'))} / x{fmt(gain(name, load, spec, PredictorConfig(sigma=sigma), 'ttft_mean_s'))}" for sigma in SIGMAS]
                print(f"    {spec:<6}" + "   ".join(cells))
    print()

    print("== Systems (Li, Dai & Peng 2025), sharegpt; load relative to the Sarathi-rule capacity;")
    print("   unstable = share of seeds whose backlog grows (metrics.py stability verdict)")
    for system in baselines.systems.SYSTEMS:
        cells = [
            f"load {load}: e2e {fmt(series('sharegpt', load, system, None, 'e2e_mean_s', system))} s, "
            f"{fmt(series('sharegpt', load, system, None, 'output_tokens_per_s', system))} tok/s, "
            f"unstable {np.mean(series('sharegpt', load, system, None, 'unstable', system)):.0%}"
            for load in SYSTEM_LOADS
        ]
        print(f"  {system:<18}" + "   ".join(cells))


if __name__ == "__main__":
    main()
