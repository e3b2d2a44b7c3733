"""Agent networks: the Rybko–Stolyar instability of Li, Dai & Peng (2025, §5.4), and the TraceLab
figures behind the ``coding-agents`` preset.

    python benchmarks/bench_network.py                     # Rybko–Stolyar, 20,000 time units, seeds 0-2,
                                                           # plot in results/network_backlog.png
    python benchmarks/bench_network.py --horizon 5000 --seeds 0 --plot backlog.png
    python benchmarks/bench_network.py tracelab            # re-derive the coding-agents figures

Rybko–Stolyar: two engines (token budget 768, one time unit per iteration, no memory limit,
Sarathi batching); class A runs a short call (32 / 32 tokens) on e1 then a long one (512 / 32) on
e2, class B the reverse; each class arrives at 0.9 x 768 / 608 jobs per unit, so each engine's
load is 0.9. Both engines are work-conserving under every policy; only the priority order
differs:

* ``lbfs`` — each engine prioritises the class that LEAVES the network through it (e1: B's long
  second call over A's short first call; e2: A's second over B's first). The long last stages
  need 2 x 0.81 = 1.61 engines together, so the engines take turns starving each other's feed:
  the number of jobs in the system grows linearly (unstable).
* ``fbfs`` — the reverse: each engine prioritises the calls that ENTER the network through it. Stable.
* ``fcfs`` and ``max-pressure`` (Dai & Lin 2005) for reference; both stable here.

Printed per run: jobs arrived / finished, jobs in the system at the end and on average, the
backlog slope (jobs per time unit; least squares over batch means of the second half of the run,
``llmsched_env.sim.metrics.backlog_trend``) and its verdict, and each engine's goodput: the prefill
+ decode tokens of the calls it finished, per iteration, over its budget of 768 (0.9 when it keeps
up with the offered load). Everything but the wall time is machine-independent.
The plot (``--plot``) shows jobs in the system over time for the first seed.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np

from baselines.network import parse
from llmsched_env.sim.network import NetworkResult, simulate_network
from llmsched_env.sim.network.presets import (
    CODING_RATES,
    TRACELAB_OUTPUT_MEAN,
    TRACELAB_OUTPUT_SIGMA,
    TRACELAB_PROMPT,
    TRACELAB_ROUNDS,
    TRACELAB_TOOL_S,
    TRACELAB_TOOL_SIGMA,
    network_preset,
)
from llmsched_env.sim.request import RequestState

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "traces"
POLICIES = ("lbfs", "fbfs", "fcfs", "max-pressure")


def goodput(result: NetworkResult) -> dict[str, float]:
    """Prefill + decode tokens of the calls each engine finished, per iteration, over its budget."""
    assert result.calls is not None
    out = {}
    for e, spec in enumerate(result.config.engines):
        tokens = sum(c[6] + c[7] - 1 for c in result.calls if c[4] == e and c[9] == RequestState.FINISHED)
        iterations = result.engine_summaries[spec.name]["iterations"]
        out[spec.name] = tokens / max(iterations, 1) / spec.engine.max_num_batched_tokens
    return out


def rybko_stolyar(horizon: float, seeds: list[int], plot: str | None) -> None:
    config = network_preset("rybko-stolyar").replace(max_time_s=horizon)
    rate = sum(c.rate for c in config.classes)
    print(f"Rybko-Stolyar (Li, Dai & Peng 2025 §5.4): horizon {horizon:g} time units, arrival rate {rate:.4f} jobs/unit")
    header = f"{'policy':>13} {'seed':>4} {'arrived':>8} {'finished':>8} {'at end':>7} {'mean':>8} {'slope/unit':>10} {'verdict':>12} {'good e1':>7} {'good e2':>7} {'wall s':>6}"
    print(header)
    curves: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    slopes: dict[str, list[float]] = {p: [] for p in POLICIES}
    for policy in POLICIES:
        for seed in seeds:
            start = time.perf_counter()
            result = simulate_network(config, parse(policy), seed=seed, record_calls=True)
            wall = time.perf_counter() - start
            s = result.summary
            times, backlog = result.series.backlog(s["duration_s"])
            load = goodput(result)
            slopes[policy].append(s["jobs_backlog_slope_per_s"])
            print(
                f"{policy:>13} {seed:>4} {s['jobs_arrived']:>8} {s['jobs_finished']:>8} {s['jobs_unfinished']:>7} "
                f"{s['jobs_in_system_mean']:>8.1f} {s['jobs_backlog_slope_per_s']:>10.4f} {s['stability']:>12} "
                f"{load['e1']:>7.3f} {load['e2']:>7.3f} {wall:>6.1f}"
            )
            if seed == seeds[0]:
                curves[policy] = (times, backlog)
    print("mean backlog slope (jobs per time unit) over seeds:")
    for policy, values in slopes.items():
        print(f"  {policy:>13}: {np.mean(values):+.4f}  (min {np.min(values):+.4f}, max {np.max(values):+.4f})")
    if plot:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(7, 4))
        for policy, (times, backlog) in curves.items():
            ax.plot(times, backlog, label=policy)
        ax.set_xlabel("time (iterations of one time unit)")
        ax.set_ylabel("jobs in the system")
        ax.set_title(f"Rybko-Stolyar network at load 0.9 (seed {seeds[0]})")
        ax.legend()
        fig.tight_layout()
        Path(plot).parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(plot, dpi=120)
        print(f"plot: {plot}")


def tracelab() -> None:
    """Re-derive the coding-agents figures from tracelab_summary.json and compare with the preset."""
    path = DATA / "tracelab_summary.json"
    if not path.exists():
        print(f"{path} not found: nothing to derive")
        return
    data = json.loads(path.read_text())
    rows = []
    for who in ("claude", "codex", "merged"):
        d = data[who]
        scope, tokens, tools = d["scope"], d["tokens"]["input"], d["tools"]
        rounds = scope["llm_rounds_total"] / scope["rounds_with_visible_user_message"]
        tool_s = (tools["total_tool_calls"] / tools["rounds_with_tool_calls"]) * (
            tools["effective_latency"]["total_seconds"] / tools["effective_latency"]["tool_calls_with_latency"]
        )
        output = d["tokens"]["output"]["average_output_tokens_including_reasoning_per_round"]
        rows.append((who, "rounds per user turn", rounds, TRACELAB_ROUNDS.get(who, math.nan)))
        rows.append((who, "tool time per round (s)", tool_s, TRACELAB_TOOL_S[who]))
        rows.append((who, "output tokens per round", output, TRACELAB_OUTPUT_MEAN[who]))
        for started, key in (("user", "user_context_delta"), ("tool", "tool_result_context_delta")):
            mean, median = tokens[f"average_{key}_tokens"], tokens[f"median_{key}_tokens"]
            p90 = tokens[f"p90_{key}_tokens"]
            sigma = math.sqrt(2 * math.log(mean / median))
            shipped_mean, shipped_median = TRACELAB_PROMPT[who][started]
            rows.append((who, f"{started} round prompt mean", mean, shipped_mean))
            rows.append((who, f"{started} round prompt median", median, shipped_median))
            rows.append((who, f"{started} round prompt sigma (p90 {p90:.0f} vs fit {median * math.exp(1.2816 * sigma):.0f})", sigma, round(sigma, 3)))
    examples = DATA / "tracelab_example_round_trace.jsonl"
    if examples.exists():
        rounds = [json.loads(line) for line in examples.read_text().splitlines() if line.strip()]
        outputs = np.log([r["output_tokens"] for r in rounds])
        latency = [
            (t["tool_internal_latency_ms"] or t["tool_wall_latency_ms"]) / 1000.0
            for r in rounds
            for t in r["tools"]
            if (t["tool_internal_latency_ms"] or t["tool_wall_latency_ms"])
        ]
        rows.append(("example", f"log-std of output tokens ({len(outputs)} rounds)", float(np.std(outputs, ddof=1)), TRACELAB_OUTPUT_SIGMA))
        rows.append(("example", f"log-std of tool latency ({len(latency)} calls)", float(np.std(np.log(latency), ddof=1)), TRACELAB_TOOL_SIGMA))
    print(f"TraceLab figures ({path.name}) vs the coding-agents preset:")
    print(f"{'source':>8}  {'figure':<52} {'derived':>10} {'shipped':>10}")
    for who, what, derived, shipped in rows:
        print(f"{who:>8}  {what:<52} {derived:>10.3f} {shipped:>10.3f}")
    print(f"assumed arrival rates (jobs/s): {CODING_RATES}")
    result = simulate_network(network_preset("coding-agents"), parse("fcfs"), seed=0)
    s = result.summary
    print(
        f"coding-agents, FCFS, seed 0: {s['jobs_finished']} jobs, mean JCT {s['jct_mean_s']:.1f} s "
        f"(p90 {s['jct_p90_s']:.1f} s); engine busy fraction "
        + ", ".join(f"{name} {s[f'engine/{name}/utilization']:.2f}" for name in result.engine_summaries)
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("what", nargs="?", default="rybko-stolyar", choices=["rybko-stolyar", "tracelab"])
    parser.add_argument("--horizon", type=float, default=20_000.0, help="time units per run")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--plot", default="results/network_backlog.png", help="PNG of jobs in the system over time ('' for none)")
    args = parser.parse_args()
    if args.what == "tracelab":
        tracelab()
    else:
        rybko_stolyar(args.horizon, args.seeds, args.plot or None)


if __name__ == "__main__":
    main()
