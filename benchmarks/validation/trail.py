"""Case 6: Trail (Shahout et al., "Don't Stop Me Now: Embedding Based Scheduling for LLMs", ICLR 2025)
against vLLM-FCFS: mean latency and mean TTFT at several loads, and the C sweep.

Published: on Alpaca with Llama-3-8B on one A100, Trail (refined predictions, SPRPT preemptible
while a request's age is below C x its initial prediction, C = 0.8 best) has 1.66-2.01x lower mean
latency and 1.76-24.07x lower mean TTFT than vLLM-FCFS.

Ours: the Alpaca-like workload and 48-slot engine of ``benchmarks/bench_baselines.py``
(``CONFIGS["alpaca-like/48"]``, imported, not redefined), Llama-2-7B on one A100, Poisson arrivals at
a fraction of the engine's sustainable rate, the ``refining`` predictor for Trail and FCFS on the
same requests (common random numbers). A ShareGPT row shows the KV-bound case.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

import baselines
from benchmarks.bench_baselines import CONFIGS
from llmsched_env.sim import PredictorConfig, SimConfig, simulate

from .common import CaseResult, figure, fmt_ci, mean_ci, pmap, save, table

SOURCE = "Shahout et al. (ICLR 2025), Don't Stop Me Now: Embedding Based Scheduling for LLMs"
PUBLISHED_LATENCY = (1.66, 2.01)
PUBLISHED_TTFT = (1.76, 24.07)
REFINING = PredictorConfig(kind="refining")
C_SWEEP = (0.2, 0.5, 0.8, 1.0)


def trail_run(job: tuple[str, float, str, int, int]) -> tuple[float, float]:
    """(mean e2e latency, mean TTFT) of one run."""
    name, load, spec, seed, requests = job
    workload, engine, _, _ = CONFIGS[name]
    config = SimConfig(
        engine=engine,
        workload=dataclasses.replace(workload, num_requests=requests),
        predictor=REFINING if spec.startswith("trail") else PredictorConfig(),
        load=load,
        keep_records=False,
    )
    summary = simulate(config, baselines.parse(spec), seed=seed).summary
    return float(summary["e2e_mean_s"]), float(summary["ttft_mean_s"])


def trail(quick: bool, out: Path, workers: int) -> CaseResult:
    seeds = range(3)
    loads = (0.9, 1.1) if quick else (0.8, 0.9, 0.95, 1.1)
    requests = 1000 if quick else 4000
    sweep_load = loads[-1]
    alpaca, sharegpt = "alpaca-like/48", "sharegpt"
    jobs = [(alpaca, load, spec, s, requests) for load in loads for spec in ("fcfs", "trail") for s in seeds]
    jobs += [(alpaca, sweep_load, f"trail:C={c}", s, requests) for c in C_SWEEP if c != 0.8 for s in seeds]
    jobs += [(sharegpt, 0.95, spec, s, requests // 2) for spec in ("fcfs", "trail") for s in seeds]
    runs = dict(zip(jobs, pmap(trail_run, jobs, workers)))

    def gains(name: str, load: float, spec: str, n: int, metric: int) -> list[float]:
        spec = "trail" if spec == "trail:C=0.8" else spec
        return [runs[(name, load, "fcfs", s, n)][metric] / runs[(name, load, spec, s, n)][metric] for s in seeds]

    rows = []
    for load in loads:
        rows.append([alpaca, load, fmt_ci([runs[(alpaca, load, "fcfs", s, requests)][0] for s in seeds]),
                     fmt_ci([runs[(alpaca, load, "trail", s, requests)][0] for s in seeds]),
                     fmt_ci(gains(alpaca, load, "trail", requests, 0)), fmt_ci(gains(alpaca, load, "trail", requests, 1))])
    rows.append([sharegpt, 0.95, fmt_ci([runs[(sharegpt, 0.95, "fcfs", s, requests // 2)][0] for s in seeds]),
                 fmt_ci([runs[(sharegpt, 0.95, "trail", s, requests // 2)][0] for s in seeds]),
                 fmt_ci(gains(sharegpt, 0.95, "trail", requests // 2, 0)), fmt_ci(gains(sharegpt, 0.95, "trail", requests // 2, 1))])
    sweep = [[f"C = {c}", fmt_ci(gains(alpaca, sweep_load, f"trail:C={c}", requests, 0)), fmt_ci(gains(alpaca, sweep_load, f"trail:C={c}", requests, 1))]
             for c in C_SWEEP]

    latency = {load: mean_ci(gains(alpaca, load, "trail", requests, 0)) for load in loads}
    ttft = {load: mean_ci(gains(alpaca, load, "trail", requests, 1)) for load in loads}
    best_latency, best_ttft = max(m for m, _ in latency.values()), max(m for m, _ in ttft.values())
    in_range = PUBLISHED_LATENCY[0] <= best_latency <= PUBLISHED_LATENCY[1] and PUBLISHED_TTFT[0] <= best_ttft <= PUBLISHED_TTFT[1]
    better = all(g > 1.0 for metric in (0, 1) for g in gains(alpaca, sweep_load, "trail", requests, metric))
    by_c = {c: mean_ci(gains(alpaca, sweep_load, f"trail:C={c}", requests, 0)) for c in C_SWEEP}
    spread = max(m for m, _ in by_c.values()) - min(m for m, _ in by_c.values())
    c_matters = spread > max(np.nan_to_num(h) for _, h in by_c.values())
    c_best = by_c[0.8][0] >= max(m for m, _ in by_c.values()) - np.nan_to_num(by_c[0.8][1])
    verdict = "pass" if in_range and c_matters and c_best else "partial" if better else "fail"

    fig, ax = figure("Trail vs FCFS, Alpaca-like, 48 slots (Llama-2-7B / A100)", "load (fraction of sustainable rate)", "FCFS / Trail (higher is better)")
    ax.errorbar(loads, [latency[x][0] for x in loads], yerr=[np.nan_to_num(latency[x][1]) for x in loads], fmt="o-", label="mean latency")
    ax.errorbar(loads, [ttft[x][0] for x in loads], yerr=[np.nan_to_num(ttft[x][1]) for x in loads], fmt="s-", label="mean TTFT")
    ax.axhspan(*PUBLISHED_LATENCY, color="C0", alpha=0.15, label="published latency gain")
    ax.axhspan(PUBLISHED_TTFT[0], min(PUBLISHED_TTFT[1], 4.0), color="C1", alpha=0.1, label="published TTFT gain (to 24×)")
    ax.legend(fontsize=8)
    plot = save(fig, out, "case6_trail.png")
    details = "\n\n".join([
        f"Setting: `CONFIGS['{alpaca}']` of `benchmarks/bench_baselines.py` (Alpaca-like lengths: prompts lognormal mean 32, "
        "outputs lognormal clipped at 512 fitted to Trail's released trace; Llama-2-7B on one A100; 48 batch slots), "
        f"{requests} requests per run, {len(list(seeds))} seeds; Trail = `trail` (C = 0.8) on the `refining` predictor, FCFS on "
        "the default predictor (it ignores it); gains are FCFS / Trail per seed (common random numbers). ShareGPT: the default "
        f"engine and lengths, {requests // 2} requests.",
        table(["workload", "load", "FCFS e2e s", "Trail e2e s", "latency gain ×", "TTFT gain ×"], rows),
        f"C sweep at load {sweep_load} (Alpaca-like, 48 slots): FCFS / Trail(C).",
        table(["C", "latency gain ×", "TTFT gain ×"], sweep),
        "Why the gains appear only in overload and C does not matter here: with 48 slots and short requests the slots bind, not "
        "the KV cache, and the engine never takes a slot from a decoding request (stall-free batching; it preempts only for "
        "KV memory, as vLLM does). So Trail acts only through the order of admissions and never preempts, and C, which only "
        "limits preemption, has no effect. Trail's reference implementation (its sglang patch) also preempts when the batch "
        "is full of running requests; that is the missing mechanism. Below saturation (load 0.8) the queue is nearly empty "
        "and both policies coincide. On ShareGPT (KV-bound) a waiting request is admitted only into free KV (vLLM V1), so "
        "Trail again only reorders the queue; with `admission_preemption` (vLLM V0's priority preemption) its evictions "
        "recompute 2,340-token prompts and it loses to FCFS (`benchmarks/bench_baselines.py --admission-preemption`). "
        "Load 1.1 is an overload, so its gains grow with the run length.",
    ])
    return CaseResult(
        key="6",
        title="Trail vs vLLM-FCFS: mean latency, TTFT and the C sweep",
        source=SOURCE,
        setting=f"Alpaca-like lengths, Llama-2-7B/A100, 48 slots, loads {', '.join(map(str, loads))}",
        published=f"latency {PUBLISHED_LATENCY[0]}–{PUBLISHED_LATENCY[1]}×, TTFT {PUBLISHED_TTFT[0]}–{PUBLISHED_TTFT[1]}× lower; C = 0.8 best",
        ours=f"latency up to {best_latency:.2f}×, TTFT up to {best_ttft:.2f}× (load {sweep_load}); C sweep spread {spread:.3f}×",
        verdict=verdict,
        rule="pass: our best latency and TTFT gains over the loads fall in the published ranges and C matters (the spread of "
        "the C sweep exceeds its CIs) with C = 0.8 best within its CI; partial: Trail beats FCFS on both metrics in every "
        f"seed at load {sweep_load}; fail otherwise",
        details=details,
        plots=[plot],
    )
