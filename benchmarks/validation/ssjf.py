"""Case 8: speculative shortest job first (SSJF; Qiu et al., "Efficient Interactive LLM Serving with
Proxy Model-based Sequence Length Prediction", AIOps @ ASPLOS 2024) against FCFS with continuous
batching, and how the gain shrinks as the batch grows.

Published: SSJF cuts the average job completion time by 30.5-39.6 % against FCFS across no, dynamic
and continuous batching (abstract); with continuous batching -33 % with predicted lengths against
-43 % with oracle lengths (the figures quoted in the project's brief).

Ours: the default engine (Llama-2-7B on one A100, Sarathi-style batching) and the default
``sharegpt`` lengths at load 0.9 of each engine's own sustainable rate, ``sjf`` on the default
predictor (lognormal noise, sigma 0.5, a stand-in for SSJF's BERT proxy) and on the oracle, for
``max_num_seqs`` from 1 to 256. A small batch is a queue in front of few servers, where the order
of admissions is everything; a large batch admits nearly everyone at once and the order matters
little.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import baselines
from llmsched_env.sim import EngineConfig, PredictorConfig, SimConfig, WorkloadConfig, simulate

from .common import CaseResult, figure, fmt_ci, mean_ci, pmap, save, table

SOURCE = "Qiu et al. (AIOps @ ASPLOS 2024), Efficient Interactive LLM Serving with Proxy Model-based Sequence Length Prediction"
PUBLISHED_PREDICTED, PUBLISHED_ORACLE = -0.33, -0.43
LOAD = 0.9
SEATS = (1, 4, 16, 64, 256)
VARIANTS = (("fcfs", PredictorConfig()), ("sjf", PredictorConfig()), ("sjf-oracle", PredictorConfig(kind="oracle")))
CLOSE = 0.06  # percentage points (as a fraction) allowed on the reductions at the smallest batch


def ssjf_run(job: tuple[int, str, int, int]) -> float:
    """Mean end-to-end latency (job completion time) of one run."""
    seats, variant, seed, requests = job
    predictor = dict(VARIANTS)[variant]
    config = SimConfig(
        engine=EngineConfig(max_num_seqs=seats),
        workload=dataclasses.replace(WorkloadConfig(), num_requests=requests),
        predictor=predictor,
        load=LOAD,
        keep_records=False,
    )
    return float(simulate(config, baselines.parse(variant.split("-")[0]), seed=seed).summary["e2e_mean_s"])


def ssjf(quick: bool, out: Path, workers: int) -> CaseResult:
    seeds = range(3 if quick else 4)
    requests = 600 if quick else 2000
    seats_list = (1, 16, 256) if quick else SEATS
    jobs = [(n, v, s, requests) for n in seats_list for v, _ in VARIANTS for s in seeds]
    runs = dict(zip(jobs, pmap(ssjf_run, jobs, workers)))

    def change(seats: int, variant: str) -> list[float]:
        return [runs[(seats, variant, s, requests)] / runs[(seats, "fcfs", s, requests)] - 1 for s in seeds]

    rows = [[n, fmt_ci([runs[(n, "fcfs", s, requests)] for s in seeds]), fmt_ci([100 * x for x in change(n, "sjf")], 2),
             fmt_ci([100 * x for x in change(n, "sjf-oracle")], 2)] for n in seats_list]
    predicted = [mean_ci(change(n, "sjf"))[0] for n in seats_list]
    oracle = [mean_ci(change(n, "sjf-oracle"))[0] for n in seats_list]
    shrinks = all(b >= a - 0.02 for a, b in zip(predicted, predicted[1:]))  # reductions are negative: they rise toward 0
    close = abs(predicted[0] - PUBLISHED_PREDICTED) <= CLOSE and abs(oracle[0] - PUBLISHED_ORACLE) <= CLOSE
    if close and shrinks:
        verdict = "pass"
    elif shrinks and predicted[0] < -0.1 and oracle[0] <= predicted[0]:
        verdict = "partial"
    else:
        verdict = "fail"

    fig, ax = figure(f"SJF vs FCFS, ShareGPT, load {LOAD}: change in mean JCT", "max_num_seqs (batch slots)", "change vs FCFS (%)")
    ax.plot(seats_list, [100 * x for x in predicted], "o-", label="SJF, predicted (lognormal σ=0.5)")
    ax.plot(seats_list, [100 * x for x in oracle], "s-", label="SJF, oracle")
    ax.axhline(100 * PUBLISHED_PREDICTED, color="C0", ls=":", label="published, predicted")
    ax.axhline(100 * PUBLISHED_ORACLE, color="C1", ls=":", label="published, oracle")
    ax.set_xscale("log", base=2)
    ax.legend(fontsize=8)
    plot = save(fig, out, "case8_ssjf.png")
    details = "\n\n".join([
        f"Setting: default engine (Llama-2-7B/A100, Sarathi-style batching, 2,048-token budget, preset KV cache), `sharegpt` "
        f"lengths, Poisson arrivals at load {LOAD} of each engine's own sustainable rate (so every batch size is equally "
        f"loaded), {requests} requests, {len(list(seeds))} seeds; change = SJF / FCFS − 1 per seed (common random numbers).",
        table(["max_num_seqs", "FCFS mean JCT s", "SJF predicted, change %", "SJF oracle, change %"], rows),
        "The published figures come from a real system (a BERT proxy predicting Vicuna outputs) whose batch size we do not "
        "know; we match them in the small-batch regime, where most of a request's time is spent queueing for a slot. SJF only "
        "reorders that queue, so its gain falls as slots are added and the time in the batch dominates; from 64 slots on the "
        "KV cache (about 45 ShareGPT requests) binds before the slots do, so 64 and 256 slots run the same.",
    ])
    return CaseResult(
        key="8",
        title="SSJF: FCFS vs predicted and oracle SJF, shrinking with the batch size",
        source=SOURCE,
        setting=f"Llama-2-7B/A100, sharegpt lengths, load {LOAD}, max_num_seqs {', '.join(map(str, seats_list))}",
        published="mean JCT −33 % (predicted) / −43 % (oracle) vs FCFS; abstract: −30.5 to −39.6 %",
        ours=f"at {seats_list[0]} slot(s): {100 * predicted[0]:+.0f} % / {100 * oracle[0]:+.0f} %; at {seats_list[-1]}: "
        f"{100 * predicted[-1]:+.0f} % / {100 * oracle[-1]:+.0f} %",
        verdict=verdict,
        rule=f"pass: at the smallest batch both reductions within {100 * CLOSE:.0f} points of the published ones and the "
        "predicted-SJF gain never grows with the batch (2 points of noise allowed); partial: the gain shrinks and SJF beats "
        "FCFS by more than 10 % at the smallest batch, oracle at least as well; fail otherwise",
        details=details,
        plots=[plot],
    )
