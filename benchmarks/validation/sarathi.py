"""Case 7: Sarathi-Serve vs vLLM, capacity under a P99 time-between-tokens SLO.

Published (Agrawal et al., OSDI 2024, "Taming Throughput-Latency Tradeoff in LLM Inference with
Sarathi-Serve"): up to 2.6x higher capacity than vLLM for Mistral-7B on one A100. Their capacity
search (``sarathi/benchmark/capacity_search`` and ``osdi-experiments/figure-5-6`` of
github.com/microsoft/sarathi-serve): the highest QPS, by bisection over runs of 2,048 requests,
at which the P99 of the time between consecutive tokens of a request (over all decode tokens of
the run, preemption time included) is within the SLO and the median scheduling delay (arrival to
first scheduled) is at most 2 s. Mistral-7B: strict SLO 0.1 s with Sarathi's chunk size 512,
relaxed 0.5 s with chunk 2048; vLLM with batch size 128; traces ShareGPT (sharegpt_8k) and arXiv.

Ours: the default 7B preset (Llama-2-7B on one A100; Mistral-7B has 4x fewer KV heads, so its
decodes read a quarter of the KV and its iterations are faster), the ``sharegpt`` length preset
(the same sharegpt_8k trace), Poisson arrivals, 128 batch slots for both; vLLM = the ``vllm``
system (prefill-only iterations, 8,192-token budget), Sarathi = the ``sarathi`` rule with a 512-
(strict) or 2,048-token (relaxed) budget. Token gaps are measured per token by
:class:`TokenGaps` (the run's metrics keep only each request's mean gap, TPOT); the case also shows
the capacity that the per-request P99 of TPOT would give, which misses vLLM's prefill stalls.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

import baselines
from llmsched_env.sim import Engine, EngineConfig, Policy, Request, SimConfig, WorkloadConfig, build_engine, sustainable_rate
from llmsched_env.sim.metrics import request_metrics
from llmsched_env.sim.request import RecordBuffer

from .common import CaseResult, figure, pmap, save, table

SOURCE = "Agrawal et al. (OSDI 2024), Taming Throughput-Latency Tradeoff in LLM Inference with Sarathi-Serve"
PUBLISHED_RATIO = 2.6
SEATS = 128  # Sarathi-Serve's capacity runs: batch size 128 for vLLM and Sarathi
DELAY_SLO_S = 2.0  # median scheduling delay
QUANTILE = 0.99
TOLERANCE = 0.025  # bisection stops when the bracket is narrower than this fraction (Sarathi: 2.5 %)
# (name, TBT SLO in s, Sarathi's chunk size)
SLOS = (("strict", 0.1, 512), ("relaxed", 0.5, 2048))


class TokenGaps:
    """Every time between two consecutive output tokens of a request, from the engine's batches.

    Hooked on :attr:`Engine.on_build` (the decoders and prefill chunks of each batch) and told the
    stretch's start time and iteration after each :meth:`Engine.advance`. A stretch of ``n``
    decode-only iterations has iteration times ``a0, a0 + q, ..., a0 + q (n - 1)`` (the engine's
    closed form), recovered from its duration and last iteration time: each decoder's first gap
    runs from its previous token to the end of the first iteration, the other ``n - 1`` gaps are
    shared by all decoders. A prefill chunk emits a token when it completes the prefill (a
    recompute's re-prefill included: that gap holds the preemption). Exact with or without
    fast-forward (a test compares them).
    """

    def __init__(self) -> None:
        self.last: dict[int, float] = {}  # request id -> time of its latest token
        self.values: list[float] = []
        self.weights: list[int] = []
        self._decoding: list[Request] = []
        self._prefilling: list[tuple[Request, int]] = []

    def on_build(self, decoding: list[Request], prefilling: list[Request]) -> None:
        self._decoding = decoding
        self._prefilling = [(r, r.generated) for r in prefilling]

    def after(self, engine: Engine, t0: float, iteration0: int) -> None:
        """Account for the stretch that ran from ``t0`` (iteration ``iteration0``) to now."""
        n, now = engine.iteration - iteration0, engine.now
        if n > 0 and self._decoding:
            duration = now - t0
            if n == 1:
                a0, q = duration, 0.0
            else:
                last = engine.last_iteration_time
                q = 2.0 * (n * last - duration) / (n * (n - 1))
                a0 = last - q * (n - 1)
            for r in self._decoding:
                self.values.append(t0 + a0 - self.last[r.id])
                self.weights.append(1)
                self.last[r.id] = now
            if n > 1:
                self.values.extend((a0 + q * np.arange(1, n)).tolist())
                self.weights.extend([len(self._decoding)] * (n - 1))
        if n > 0:
            for r, generated in self._prefilling:
                if r.generated > generated:
                    if r.id in self.last:
                        self.values.append(now - self.last[r.id])
                        self.weights.append(1)
                    self.last[r.id] = now
        self._decoding, self._prefilling = [], []

    def quantile(self, q: float) -> float:
        """The ``q`` quantile of all gaps (the smallest gap with at least that share at or below it)."""
        values = np.asarray(self.values)
        order = np.argsort(values)
        cumulative = np.cumsum(np.asarray(self.weights, dtype=np.float64)[order])
        return float(values[order][np.searchsorted(cumulative, q * cumulative[-1])])

    @property
    def count(self) -> int:
        return int(sum(self.weights))


def run_with_gaps(config: SimConfig, policy: Policy, seed: int) -> tuple[TokenGaps, dict[str, np.ndarray]]:
    """Run ``config`` to the end, recording every token gap; returns the gaps and the records."""
    buffer, gaps = RecordBuffer(), TokenGaps()
    engine, _, _ = build_engine(config, policy, seed=seed, on_record=buffer.append)
    engine.on_build = gaps.on_build
    while True:
        t0, iteration0 = engine.now, engine.iteration
        if not engine.advance():
            break
        gaps.after(engine, t0, iteration0)
    engine.finish_run()
    return gaps, buffer.to_arrays()


def system(name: str, chunk: int) -> tuple[EngineConfig, str]:
    """Engine settings and policy of ``vllm`` or ``sarathi`` (with ``chunk`` tokens per iteration)."""
    base = SimConfig(engine=EngineConfig(max_num_seqs=SEATS))
    config, policy = baselines.systems.system_config(name, base)
    engine = config.engine if name == "vllm" else dataclasses.replace(config.engine, max_num_batched_tokens=chunk)
    return engine, policy.name


def probe(job: tuple[str, int, float, int, int]) -> dict[str, float]:
    """P99 token gap, P99 of per-request TPOT and median scheduling delay of one run at ``rate``."""
    name, chunk, rate, seed, requests = job
    engine, spec = system(name, chunk)
    config = SimConfig(engine=engine, workload=WorkloadConfig(num_requests=requests), rate=rate)
    gaps, records = run_with_gaps(config, baselines.parse(spec), seed)
    per_request = request_metrics(records)
    delay = records["first_scheduled"] - records["arrival"]
    return {
        "tbt_p99": gaps.quantile(QUANTILE),
        "tpot_p99": float(np.nanpercentile(per_request["tpot"], 100 * QUANTILE)),
        "delay_p50": float(np.nanmedian(delay)),
    }


def capacity(job: tuple[str, int, float, str, tuple[int, ...], int, float]) -> tuple[float, list[tuple[float, dict]]]:
    """Highest rate meeting the SLO (metric ``tbt_p99`` or ``tpot_p99``) in every seed, by bisection
    on ``[0, high]``; returns the capacity and the probes ``(rate, first seed's figures)``."""
    name, chunk, slo, metric, seeds, requests, high = job
    probes: list[tuple[float, dict]] = []

    def passes(rate: float) -> bool:
        results = [probe((name, chunk, rate, s, requests)) for s in seeds]
        probes.append((rate, results[0]))
        return all(r[metric] <= slo and r["delay_p50"] <= DELAY_SLO_S for r in results)

    low = 0.0
    if passes(high):
        return high, probes
    while high - low > TOLERANCE * high:
        mid = (low + high) / 2
        if passes(mid):
            low = mid
        else:
            high = mid
    return low, probes


def sarathi_vs_vllm(quick: bool, out: Path, workers: int) -> CaseResult:
    seeds = (0,) if quick else (0, 1)
    requests = 600 if quick else 2048
    # the bracket's top: 1.5 x the saturated rate of the 2,048-token Sarathi engine (an overload for every system)
    high = 1.5 * sustainable_rate(system("sarathi", 2048)[0], WorkloadConfig())
    jobs = [(name, chunk, slo, metric, seeds, requests, high) for _, slo, chunk in SLOS for name in ("vllm", "sarathi")
            for metric in ("tbt_p99", "tpot_p99")]
    results = dict(zip(jobs, pmap(capacity, jobs, workers)))

    def cap(label: str, name: str, metric: str) -> float:
        slo, chunk = next((s, c) for lab, s, c in SLOS if lab == label)
        return results[(name, chunk, slo, metric, seeds, requests, high)][0]

    def bound_by(label: str, name: str, metric: str) -> str:
        """Which limit the first failing probe above the capacity broke (seed 0's figures)."""
        slo, chunk = next((s, c) for lab, s, c in SLOS if lab == label)
        found, probes = results[(name, chunk, slo, metric, seeds, requests, high)]
        above = sorted((rate, p) for rate, p in probes if rate > found)
        if not above:
            return "range"
        figures = above[0][1]
        return "TBT" if figures[metric] > slo else "delay" if figures["delay_p50"] > DELAY_SLO_S else "TBT (seed 1)"

    rows, ratios = [], {}
    for label, slo, chunk in SLOS:
        for metric in ("tbt_p99", "tpot_p99"):
            v, s = cap(label, "vllm", metric), cap(label, "sarathi", metric)
            ratios[(label, metric)] = s / v if v > 0 else float("inf")
            rows.append([label, f"{slo:g}", chunk, "P99 token gap" if metric == "tbt_p99" else "P99 of per-request TPOT",
                         f"{v:.2f} ({bound_by(label, 'vllm', metric)})", f"{s:.2f} ({bound_by(label, 'sarathi', metric)})",
                         f"{ratios[(label, metric)]:.2f}"])
    ratio = ratios[("strict", "tbt_p99")]
    if abs(ratio - PUBLISHED_RATIO) <= 0.25 * PUBLISHED_RATIO:
        verdict = "pass"
    elif ratio > 1.2:
        verdict = "partial"
    else:
        verdict = "fail"

    fig, ax = figure("P99 time between tokens vs arrival rate (probes, seed 0)", "arrival rate (req/s)", "P99 token gap (s)")
    for label, slo, chunk in SLOS:
        for name, marker in (("vllm", "s"), ("sarathi", "o")):
            probes = sorted(results[(name, chunk, slo, "tbt_p99", seeds, requests, high)][1])
            if name == "sarathi" or label == "strict":  # vLLM's probes are the same system for both SLOs
                tag = f"{name}" + (f" (chunk {chunk})" if name == "sarathi" else "")
                ax.plot([r for r, _ in probes], [p["tbt_p99"] for _, p in probes], marker + "-", label=tag)
        ax.axhline(slo, color="k", ls=":", lw=1)
    ax.set_yscale("log")
    ax.legend(fontsize=8)
    plot = save(fig, out, "case7_tbt.png")
    details = "\n\n".join([
        f"Setting: Llama-2-7B on one A100 (`llama2-7b/a100`, costs from Vidur's profiles), `sharegpt` lengths, Poisson arrivals, "
        f"{SEATS} batch slots for both systems, KV capacity of the preset; vLLM = system `vllm` (prefill-only iterations, "
        f"8,192-token budget); Sarathi = rule `sarathi` with the chunk of each SLO. Capacity = highest rate (bisection on "
        f"[0, {high:.2f}] req/s to {TOLERANCE:.1%}) at which the P99 token gap is within the SLO and the median scheduling "
        f"delay ≤ {DELAY_SLO_S:g} s in every seed; {requests} requests per run, seeds {list(seeds)}.",
        table(["SLO", "P99 target s", "Sarathi chunk", "latency metric", "vLLM capacity req/s (bound)", "Sarathi capacity req/s (bound)", "ratio"], rows),
        "In brackets: the limit the first failing probe above the capacity broke (TBT: the P99 target; delay: the median "
        "scheduling delay, i.e. the engine is near its throughput limit). The metric matters: vLLM's prefill-only iterations "
        "stall every running decode for the length of the prefill (about 185 ms for a mean 2,340-token ShareGPT prompt on "
        "this preset), which shows in the P99 of all token gaps but is averaged away in a request's mean gap (TPOT), so the "
        "per-request metric overstates vLLM's capacity. Where Sarathi is delay-bound, its chunked iterations stay within the "
        "target up to its throughput limit and the ratio is the ratio of a throughput to vLLM's stall-bound rate. Differences "
        "from the paper: Llama-2-7B (32 KV heads) instead of Mistral-7B (8 KV heads, so a quarter of the KV read per decode "
        "and a larger KV capacity), simulated costs, one trace; the published 2.6× is Sarathi-Serve's best case ('up to').",
        "Engine-level token-gap metric (proposal for the lead, not implemented in the engine): the same accounting as "
        "`TokenGaps` inside the engine, feeding a `LogHistogram` of token gaps (so P50/P99 of the time between tokens "
        "stream like the other percentiles): in `_run_iterations`, for a decode stretch of n iterations with first time a0 "
        "and growth q, add `a0 + q j` (j = 1..n-1) with weight D (the steady decoders) and each decoder's first gap "
        "`now0 + a0 - last_token_time`; for a completed prefill add `now - last_token_time` when the request had a token "
        "before (recompute); keep `last_token_time` per request. Summary keys `tbt_p50_s`, `tbt_p99_s`.",
    ])
    return CaseResult(
        key="7",
        title="Sarathi-Serve vs vLLM: capacity under a P99 time-between-tokens SLO",
        source=SOURCE,
        setting="Llama-2-7B/A100, sharegpt lengths, 128 slots; strict SLO 0.1 s (chunk 512), relaxed 0.5 s (chunk 2048)",
        published=f"up to {PUBLISHED_RATIO}× capacity (Mistral-7B, one A100, P99 TBT 0.1 s, chunk 512 vs vLLM batch 128)",
        ours=f"strict {ratio:.2f}× ({cap('strict', 'sarathi', 'tbt_p99'):.2f} vs {cap('strict', 'vllm', 'tbt_p99'):.2f} req/s), "
        f"relaxed {ratios[('relaxed', 'tbt_p99')]:.2f}×",
        verdict=verdict,
        rule="strict SLO, P99 token gap: pass if the capacity ratio is within ±25 % of 2.6; partial if Sarathi's capacity "
        "exceeds vLLM's by more than 20 %; fail otherwise",
        details=details,
        plots=[plot],
    )
