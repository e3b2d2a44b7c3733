"""Cases 1-4: Li, Dai & Peng (2025), "Throughput-Optimal Scheduling Algorithms for LLM Inference
and AI Agents" (arXiv:2504.07347).

1. Theorem 2: with token budget b and full-batch time t_b every work-conserving rule is stable below
   lambda* = b / t_b / (m_p + m_d) and unstable above, where the work backlog grows at
   lambda (m_p + m_d) - b / t_b tokens per second.
2. Fig. 1: at about 3/4 of the boundary, Orca and Sarathi-Serve stay bounded while vanilla vLLM and
   FasterTransformer pile up requests.
3. §6.2: with a batch-size cap (100 sequences) and deterministic arrivals only Sarathi with a
   128-token budget is stable.
4. §5.4: the Rybko–Stolyar two-engine network is unstable under last-buffer-first priorities and
   stable under the reverse (``llmsched_env.sim.network``).

Cost model: the paper's staircase fit for CodeLlama-34B on one A100, t(b) = 11.28 + 35.47 ceil(b/128)
ms for b tokens in the batch (hardware preset ``codellama-34b/a100``). Work units: our engine emits
the first output token in the iteration that completes the prefill, so a request with ``m_d``
decode iterations has ``m_d + 1`` output tokens and ``m_p + m_d`` tokens of work, the paper's count.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

import baselines
from llmsched_env.sim import EngineConfig, SimConfig, WorkloadConfig, get_hardware, simulate

from .common import NO_MEMORY_LIMIT, CaseResult, figure, fmt_ci, mean_ci, pmap, sample_backlog, save, slope, table

SOURCE = "Li, Dai & Peng (2025), Throughput-Optimal Scheduling Algorithms for LLM Inference and AI Agents, arXiv:2504.07347"
HARDWARE = "codellama-34b/a100"
STAIRCASE = get_hardware(HARDWARE).cost
BUDGET = 512
T_B = STAIRCASE.iteration_time(BUDGET, 0, 0, 0, 0)  # a full batch: 11.28 + 4 x 35.47 ms = 153.16 ms
THROUGHPUT = BUDGET / T_B  # tokens per second of a saturated work-conserving engine
UNLIMITED_SEATS = 100_000  # Theorem 2 has no batch-size cap
GROWTH = 0.05  # a backlog that keeps more than this fraction of the arrivals is growing

# Case 1: (m_p, m_d) = (100, 100)
M_P, M_D = 100, 100
LAMBDA_STAR = THROUGHPUT / (M_P + M_D)  # 16.71 requests/s, the paper's figure
SLOPE_TOLERANCE = 0.15  # relative error allowed on the growth rate above the boundary
SERVICE_TOLERANCE = 0.02  # relative error allowed on the served rate above the boundary
FLAT = 0.25  # below the boundary: |slope| under this fraction of the fluid drift

# Case 2: Fig. 1
FIG1_PROMPT, FIG1_DECODE = 129, 112
FIG1_LAMBDA_STAR = THROUGHPUT / (FIG1_PROMPT + FIG1_DECODE)
FIG1_LOAD = 0.75
FIG1_HORIZON = 90.0
FIG1_SEATS = 256  # vLLM's default max_num_seqs
FIG1_PUBLISHED = {"orca": "≈100", "sarathi": "≈100", "vllm": "557", "fastertransformer": "941"}
FIG1_GROWS = {"orca": False, "sarathi": False, "vllm": True, "fastertransformer": True}

# Case 3: §6.2
S62_INTERVAL = 0.4675  # s between arrivals = ten 128-token iterations: 10 x (11.28 + 35.47) ms
S62_PROMPT, S62_DECODE = 290, 990
S62_SEATS = 100
S62_RULES = (("sarathi", 128), ("sarathi", 256), ("sarathi", 512), ("orca", 512), ("vllm", 512), ("static", 512))


def engine(batching: str, budget: int, seats: int) -> EngineConfig:
    return EngineConfig(
        hardware=HARDWARE, batching=batching, max_num_batched_tokens=budget, max_num_seqs=seats, num_gpu_blocks=NO_MEMORY_LIMIT
    )


# ------------------------------------------------------------------------------------------------
# Case 1: Theorem 2


def boundary_run(job: tuple[str, float, int, float]) -> np.ndarray:
    """Samples ``(t, tokens owed, requests in system, requests arrived)`` of one run at ``factor x lambda*``."""
    batching, factor, seed, horizon = job
    rate = factor * LAMBDA_STAR
    config = SimConfig(
        engine=engine(batching, BUDGET, UNLIMITED_SEATS),
        workload=WorkloadConfig(lengths="fixed", prompt_mean=M_P, output_mean=M_D + 1, num_requests=int(rate * horizon * 1.2) + 100),
        rate=rate,
        max_time_s=horizon,
    )
    return sample_backlog(config, baselines.parse("fcfs"), seed, np.linspace(0.0, horizon, 201)[1:])


def growth_and_service(samples: np.ndarray, start: float) -> tuple[float, float]:
    """(slope of the tokens owed, tokens served per second) over ``t >= start``: served = work that
    arrived (``m_p + m_d`` per request) minus the growth of what is owed, over the window."""
    t, owed, _, arrived = samples.T
    first = int(np.searchsorted(t, start))
    served = ((M_P + M_D) * (arrived[-1] - arrived[first]) - (owed[-1] - owed[first])) / (t[-1] - t[first])
    return slope(t, owed, start), float(served)


def theorem2(quick: bool, out: Path, workers: int) -> CaseResult:
    factors = (0.9, 1.1) if quick else (0.8, 0.9, 0.95, 1.05, 1.1, 1.2)
    seeds = range(1 if quick else 3)
    horizon = 200.0 if quick else 600.0
    jobs = [(b, f, s, horizon) for b in ("sarathi", "orca") for f in factors for s in seeds]
    samples = dict(zip(jobs, pmap(boundary_run, jobs, workers)))
    measures = {job: growth_and_service(x, horizon / 2) for job, x in samples.items()}

    def measured(batching: str, factor: float, which: int) -> list[float]:
        return [measures[(batching, factor, s, horizon)][which] for s in seeds]

    rows, ok = [], True
    for batching in ("sarathi", "orca"):
        for f in factors:
            drift = f * LAMBDA_STAR * (M_P + M_D) - THROUGHPUT  # the fluid growth rate, tokens/s (negative: stable)
            slopes, served = measured(batching, f, 0), measured(batching, f, 1)
            mean, half = mean_ci(slopes)
            half = 0.0 if np.isnan(half) else half
            if f > 1:
                good = abs(mean - drift) <= max(half, SLOPE_TOLERANCE * drift) and all(
                    abs(x - THROUGHPUT) <= SERVICE_TOLERANCE * THROUGHPUT for x in served)
            else:
                good = abs(mean) <= max(half, FLAT * abs(drift))
            if batching == "sarathi":
                ok &= good
            rows.append([batching, f"{f:.2f}", f"{f * LAMBDA_STAR:.2f}", f"{drift:+.0f}" if f > 1 else "0 (stable)",
                         fmt_ci(slopes), fmt_ci(served, 4), "yes" if good else "no"])

    fig, ax = figure("Sarathi, CodeLlama-34B staircase, b = 512 (seed 0)", "time (s)", "tokens of work in the system")
    for f in factors:
        x = samples[("sarathi", f, 0, horizon)]
        ax.plot(x[:, 0], x[:, 1], label=f"{f:.2f} λ*")
    ax.legend(fontsize=8)
    plot1 = save(fig, out, "case1_token_backlog.png")
    fig, ax = figure("Backlog growth rate vs arrival rate", "arrival rate / λ*", "tokens per second")
    grid = np.linspace(min(factors), max(factors), 50)
    ax.plot(grid, np.maximum(grid * LAMBDA_STAR * (M_P + M_D) - THROUGHPUT, 0), "k--", label="Theorem 2: max(λ(m_p+m_d) − b/t_b, 0)")
    for batching, marker in (("sarathi", "o"), ("orca", "s")):
        ax.plot(factors, [np.mean(measured(batching, f, 0)) for f in factors], marker, label=batching)
    ax.legend(fontsize=8)
    plot2 = save(fig, out, "case1_slopes.png")

    overloaded = [f for f in factors if f > 1]
    sarathi_served = np.mean([x for f in overloaded for x in measured("sarathi", f, 1)])
    orca_served = np.mean([x for f in overloaded for x in measured("orca", f, 1)])
    ours = (f"Sarathi serves {sarathi_served:.0f} tok/s above λ* (b/t_b = {THROUGHPUT:.0f}); slope "
            + ", ".join(f"{np.mean(measured('sarathi', f, 0)):.0f} vs {f * LAMBDA_STAR * (M_P + M_D) - THROUGHPUT:.0f} at {f:g}λ*" for f in overloaded)
            + f"; flat below. Orca saturates at {orca_served / THROUGHPUT:.2f} λ*")
    details = "\n\n".join([
        f"Setting: hardware `{HARDWARE}` (t(b) = 11.28 + 35.47·⌈b/128⌉ ms), token budget b = {BUDGET}, so a full batch takes "
        f"t_b = 11.28 + 4 × 35.47 = {T_B * 1000:.2f} ms and the engine serves b/t_b = {THROUGHPUT:.1f} tokens/s. Requests of exactly "
        f"m_p = {M_P} prompt tokens and m_d = {M_D} decode iterations ({M_D + 1} output tokens: the prefill emits the first), "
        f"Poisson arrivals, no memory limit ({NO_MEMORY_LIMIT:.0e} KV blocks), no batch-size cap ({UNLIMITED_SEATS} slots), FCFS. "
        f"λ* = b / t_b / (m_p + m_d) = {LAMBDA_STAR:.2f} requests/s (published: 16.71). {len(list(seeds))} seed(s), "
        f"{horizon:.0f} s per run. Over the second half of each run: the slope is a least-squares fit of the tokens owed (it "
        "carries the noise of the Poisson arrivals), and the served rate = (work that arrived − growth of the work owed) / time, "
        "which Theorem 2 says is b/t_b whenever the queue does not empty.",
        table(["rule", "λ/λ*", "rate req/s", "Theorem 2 slope tok/s", "our slope tok/s (95 % CI)", "served tok/s", "agrees"], rows),
        "Orca here admits whole prompts only, so under overload it cannot fill the 512-token budget: a batch of N decodes "
        "fits ⌊(512 − N)/100⌋ whole 100-token prompts, the decodes settle near 200-210 per iteration and only about 420 of "
        "the 512 tokens are used, so our Orca saturates near 0.8 λ* (its served rate above). This is our stylised Orca "
        "(whole prefills under a hard token budget), not a simulator error: Theorem 2 covers rules that fill the budget "
        "whenever work waits, which chunked prefills (Sarathi) do exactly; the paper's Orca must fill it (e.g. a token "
        "budget that the last prompt may overrun), which the paper does not spell out.",
    ])
    return CaseResult(
        key="1",
        title="Theorem 2: stability boundary and backlog growth",
        source=SOURCE + ", Theorem 2",
        setting=f"CodeLlama-34B staircase, b={BUDGET}, (m_p, m_d) = ({M_P}, {M_D}), λ* = {LAMBDA_STAR:.2f}/s",
        published="λ* = 16.71 req/s; backlog slope λ(m_p+m_d) − b/t_b above, bounded below",
        ours=ours,
        verdict="pass" if ok else "fail",
        rule=f"Sarathi, every rate: above λ* the served rate is within {SERVICE_TOLERANCE:.0%} of b/t_b in every seed and the "
        f"mean slope within max(95 % CI, {SLOPE_TOLERANCE:.0%}) of λ(m_p+m_d) − b/t_b; below λ* |mean slope| ≤ max(95 % CI, "
        f"{FLAT:.0%} of |λ(m_p+m_d) − b/t_b|). Orca reported, not judged",
        details=details,
        plots=[plot1, plot2],
    )


# ------------------------------------------------------------------------------------------------
# Case 2: Fig. 1


def fig1_config(system: str, rate: float, horizon: float, num_requests: int) -> tuple[SimConfig, baselines.Baseline]:
    """A Li–Dai–Peng system (``baselines.systems``) on the staircase engine with b = 512."""
    base = SimConfig(
        engine=EngineConfig(hardware=HARDWARE, max_num_seqs=FIG1_SEATS, num_gpu_blocks=NO_MEMORY_LIMIT),
        workload=WorkloadConfig(lengths="poisson", prompt_mean=FIG1_PROMPT, output_mean=FIG1_DECODE + 1, num_requests=num_requests),
        rate=rate,
        max_time_s=horizon,
        keep_records=False,
    )
    config, policy = baselines.systems.system_config(system, base)
    return config.replace(engine=dataclasses.replace(config.engine, max_num_batched_tokens=BUDGET)), policy


def fig1_run(job: tuple[str, int]) -> tuple[np.ndarray, np.ndarray, int]:
    """(bin times, requests in system, requests in system at the end) of one 90 s run."""
    system, seed = job
    config, policy = fig1_config(system, FIG1_LOAD * FIG1_LAMBDA_STAR, FIG1_HORIZON, 3000)
    result = simulate(config, policy, seed=seed)
    times, backlog = result.series.backlog(FIG1_HORIZON)
    return times, backlog, int(result.summary["unfinished"])


def saturated_rate(system: str) -> float:
    """Completions per second of ``system`` held in overload (2 x lambda*) for 300 s."""
    config, policy = fig1_config(system, 2.0 * FIG1_LAMBDA_STAR, 300.0, 20_000)
    return float(simulate(config, policy, seed=0).summary["requests_per_s"])


def figure1(quick: bool, out: Path, workers: int) -> CaseResult:
    systems = tuple(FIG1_PUBLISHED)
    seeds = range(1 if quick else 3)
    jobs = [(s, seed) for s in systems for seed in seeds]
    runs = dict(zip(jobs, pmap(fig1_run, jobs, workers)))
    capacity = dict(zip(systems, pmap(saturated_rate, systems, workers)))
    rate = FIG1_LOAD * FIG1_LAMBDA_STAR
    rows, matches, grows = [], 0, {}
    for system in systems:
        at_end = [runs[(system, s)][2] for s in seeds]
        slopes = [slope(runs[(system, s)][0], runs[(system, s)][1], FIG1_HORIZON / 2) for s in seeds]
        grows[system] = float(np.mean(slopes)) > GROWTH * rate
        matches += grows[system] == FIG1_GROWS[system]
        rows.append([system, FIG1_PUBLISHED[system], fmt_ci(at_end), fmt_ci(slopes), "grows" if grows[system] else "bounded",
                     "grows" if FIG1_GROWS[system] else "bounded", f"{capacity[system] / FIG1_LAMBDA_STAR:.2f}"])
    if matches == len(systems):
        verdict = "pass"
    elif not grows["orca"] and not grows["sarathi"] and (grows["vllm"] or grows["fastertransformer"]):
        verdict = "partial"
    else:
        verdict = "fail"

    fig, ax = figure(f"Requests in system at {FIG1_LOAD} λ* (Fig. 1 setting, seed 0)", "time (s)", "requests in system")
    for system in systems:
        times, backlog, _ = runs[(system, 0)]
        ax.plot(times, backlog, label=system)
    ax.legend(fontsize=8)
    plot = save(fig, out, "case2_fig1_backlog.png")
    details = "\n\n".join([
        f"Setting: `{HARDWARE}` staircase, the systems of `baselines.systems` with their batching rules and FCFS, all with a "
        f"{BUDGET}-token budget (b of case 1), {FIG1_SEATS} batch slots (vLLM's default), no memory limit; Poisson lengths with "
        f"means {FIG1_PROMPT} prompt / {FIG1_DECODE} decode tokens; λ* = {FIG1_LAMBDA_STAR:.2f}/s, arrivals at {FIG1_LOAD} λ* = "
        f"{rate:.2f}/s for {FIG1_HORIZON:.0f} s; {len(list(seeds))} seed(s). 'Grows' = the requests in system rise by more than "
        f"{GROWTH:.0%} of the arrival rate over the second half. Saturated rate = completions per second held at 2 λ* for 300 s, "
        "as a fraction of λ* (a rule is stable below it).",
        table(["system", "published at 90 s", "ours at 90 s", "slope req/s", "ours", "published", "saturated rate / λ*"], rows),
        "FasterTransformer (static batches of whole prompts under the 512-token budget: ~4 requests per batch, then ~112 decode "
        "iterations) falls behind at once, as published. Our vanilla vLLM (prefill-only iterations whenever a request can be "
        "admitted, packing every admissible prompt into one iteration up to the budget) loses capacity but less than the "
        "paper's re-simulation: it saturates at the rate in the last column, above the 0.75 λ* offered here, so its backlog is "
        "larger than Orca's and Sarathi's but bounded at this load. The paper's vLLM (557 requests after 90 s, about 4 completions "
        "per second) must lose much more per prefill-only iteration; the paper does not give enough of its vLLM model (budget, "
        "batch cap, prefill batching) to say which detail differs.",
    ])
    return CaseResult(
        key="2",
        title="Fig. 1: work-conserving vs non-work-conserving systems at 3/4 load",
        source=SOURCE + ", Fig. 1 (re-simulation)",
        setting=f"staircase b={BUDGET}, means {FIG1_PROMPT}/{FIG1_DECODE}, {rate:.2f} req/s, {FIG1_HORIZON:.0f} s",
        published="at 90 s: Orca ≈ Sarathi ≈ 100 requests; FT 941, vLLM 557 (growing)",
        ours="at 90 s: " + ", ".join(f"{s} {np.mean([runs[(s, k)][2] for k in seeds]):.0f}" for s in systems),
        verdict=verdict,
        rule="pass: each system grows / stays bounded as published; partial: Orca and Sarathi bounded and at least one of FT, "
        "vLLM grows; fail otherwise",
        details=details,
        plots=[plot],
    )


# ------------------------------------------------------------------------------------------------
# Case 3: §6.2, batch-size cap


def s62_run(job: tuple[str, int, float]) -> tuple[np.ndarray, np.ndarray, int]:
    batching, budget, horizon = job
    config = SimConfig(
        engine=engine(batching, budget, S62_SEATS),
        workload=WorkloadConfig(lengths="fixed", prompt_mean=S62_PROMPT, output_mean=S62_DECODE + 1, arrival="deterministic",
                                num_requests=int(horizon / S62_INTERVAL) + 10),
        rate=1.0 / S62_INTERVAL,
        max_time_s=horizon,
        keep_records=False,
    )
    result = simulate(config, baselines.parse("fcfs"), seed=0)
    times, backlog = result.series.backlog(horizon)
    return times, backlog, int(result.summary["unfinished"])


def batch_cap(quick: bool, out: Path, workers: int) -> CaseResult:
    horizon = 400.0 if quick else 1000.0
    jobs = [(b, budget, horizon) for b, budget in S62_RULES]
    runs = dict(zip(jobs, pmap(s62_run, jobs, workers)))
    rate = 1.0 / S62_INTERVAL
    rows, stable = [], {}
    for job in jobs:
        times, backlog, at_end = runs[job]
        growth = slope(times, backlog, horizon / 2)
        stable[job[:2]] = growth <= GROWTH * rate
        t_iter = STAIRCASE.iteration_time(job[1], 0, 0, 0, 0) * 1000
        rows.append([f"{job[0]} {job[1]}", f"{t_iter:.2f}", at_end, f"{backlog.max():.0f}", f"{growth:+.3f}", "stable" if stable[job[:2]] else "grows"])
    ok = stable[("sarathi", 128)] and not any(v for k, v in stable.items() if k != ("sarathi", 128))

    fig, ax = figure("§6.2: deterministic arrivals, 290/990 tokens, 100 batch slots", "time (s)", "requests in system")
    for job in jobs:
        times, backlog, _ = runs[job]
        ax.plot(times, backlog, label=f"{job[0]} {job[1]}")
    ax.legend(fontsize=8)
    plot = save(fig, out, "case3_batch_cap.png")
    details = "\n\n".join([
        "The paper's setting, worked out: 467.5 ms is exactly ten iterations of the staircase at b ≤ 128 tokens "
        "(11.28 + 35.47 = 46.75 ms), and a request's work, 290 + 990 = 1,280 tokens, is ten full 128-token iterations: "
        "the offered load is exactly the capacity of a 128-token budget, and the decode stage keeps 990/10 = 99 requests "
        "decoding, so 99 decode slots + 1 prefilling request fill the 100-slot cap. A larger budget makes every iteration "
        "slower (82.22 ms at 129-256 tokens) while the cap keeps at most 100 decodes per iteration, so the decode stage "
        "cannot keep up (100 / 82.22 ms = 1,216 decode tokens/s < 2.139 × 990 = 2,118 needed). So the cost model is the "
        f"CodeLlama-34B staircase (`{HARDWARE}`), which is what we use, with no memory limit and FCFS; deterministic arrivals, "
        f"{horizon:.0f} s. Our request has {S62_DECODE + 1} output tokens ({S62_DECODE} decode iterations + the token of the prefill); "
        f"with {S62_DECODE} output tokens the result is the same (load 0.9992).",
        table(["rule, budget", "full-batch time ms", "in system at end", "max", "slope req/s (2nd half)", "ours"], rows),
    ])
    return CaseResult(
        key="3",
        title="§6.2: batch-size cap, only Sarathi with a 128-token budget is stable",
        source=SOURCE + ", §6.2",
        setting=f"staircase, deterministic arrivals every {S62_INTERVAL * 1000:.1f} ms, {S62_PROMPT}/{S62_DECODE} tokens, {S62_SEATS} slots",
        published="only Sarathi with budget 128 is stable",
        ours=", ".join(f"{k[0]} {k[1]}: {'stable' if v else 'grows'}" for k, v in stable.items()),
        verdict="pass" if ok else "fail",
        rule=f"pass: Sarathi-128's requests in system grow by less than {GROWTH:.0%} of the arrival rate over the second half, "
        "every other rule's by more",
        details=details,
        plots=[plot],
    )


# ------------------------------------------------------------------------------------------------
# Case 4: §5.4, the Rybko–Stolyar network


def network_run(job: tuple[str, int, float]) -> tuple[dict, np.ndarray, np.ndarray]:
    from baselines.network import parse as parse_network
    from llmsched_env.sim.network import network_preset, simulate_network

    policy, seed, horizon = job
    result = simulate_network(network_preset("rybko-stolyar").replace(max_time_s=horizon), parse_network(policy), seed=seed)
    times, backlog = result.series.backlog(result.summary["duration_s"])
    return result.summary, times, backlog


def network_available() -> bool:
    """True once the agent-network simulator (another part of the project) is importable."""
    try:
        import baselines.network  # noqa: F401
        import llmsched_env.sim.network  # noqa: F401
    except ImportError:
        return False
    return True


def rybko_stolyar(quick: bool, out: Path, workers: int) -> CaseResult:
    title = "§5.4: Rybko–Stolyar network of two engines"
    published = "last-buffer-first priorities: backlog grows without bound at load 0.9; the reverse: bounded"
    if not network_available():
        return CaseResult(
            key="4", title=title, source=SOURCE + ", §5.4", setting="llmsched_env.sim.network not present", published=published,
            ours="–", verdict="pending", rule="runs as soon as llmsched_env.sim.network and baselines.network import",
            details="The agent-network simulator is not in this checkout yet; this case runs as soon as it imports.",
        )
    from llmsched_env.sim.network import network_preset

    policies = ("lbfs", "fbfs", "fcfs", "max-pressure")
    seeds = range(1 if quick else 3)
    horizon = 5000.0 if quick else 20_000.0
    rate = sum(c.rate or 0.0 for c in network_preset("rybko-stolyar").classes)  # every class of the preset is Poisson
    jobs = [(p, s, horizon) for p in policies for s in seeds]
    runs = dict(zip(jobs, pmap(network_run, jobs, workers)))
    rows, grows = [], {}
    for p in policies:
        slopes = [runs[(p, s, horizon)][0]["jobs_backlog_slope_per_s"] for s in seeds]
        at_end = [runs[(p, s, horizon)][0]["jobs_unfinished"] for s in seeds]
        verdicts = [runs[(p, s, horizon)][0]["stability"] for s in seeds]
        grows[p] = all(x > GROWTH * rate for x in slopes)
        rows.append([p, fmt_ci(slopes), fmt_ci(at_end), ", ".join(verdicts), "grows" if grows[p] else "bounded"])
    ok = grows["lbfs"] and not grows["fbfs"]
    fig, ax = figure(f"Rybko–Stolyar network at load 0.9 (seed 0, {horizon:.0f} time units)", "time (units)", "jobs in the system")
    for p in policies:
        _, times, backlog = runs[(p, 0, horizon)]
        ax.plot(times, backlog, label=p)
    ax.legend(fontsize=8)
    plot = save(fig, out, "case4_rybko_stolyar.png")
    details = "\n\n".join([
        "Setting: the `rybko-stolyar` preset of `llmsched_env.sim.network.presets` (two engines, budget 768 tokens, one time "
        "unit per iteration, no memory limit, Sarathi batching; class A: 32/32 tokens on e1 then 512/32 on e2, class B the "
        f"reverse; total arrival rate {rate:.3f} jobs per unit, load 0.9 per engine), policies of `baselines.network`; "
        f"{len(list(seeds))} seed(s) of {horizon:.0f} units. 'Grows' = jobs in the system rise faster than {GROWTH:.0%} of the "
        "arrival rate (the network's least-squares slope over the second half).",
        table(["policy", "slope jobs/unit", "jobs at end", "stability verdicts", "ours"], rows),
    ])
    return CaseResult(
        key="4",
        title=title,
        source=SOURCE + ", §5.4",
        published=published,
        setting=f"preset rybko-stolyar, load 0.9, {horizon:.0f} units",
        ours=f"slope LBFS {mean_ci([runs[('lbfs', s, horizon)][0]['jobs_backlog_slope_per_s'] for s in seeds])[0]:+.3f}, "
        f"FBFS {mean_ci([runs[('fbfs', s, horizon)][0]['jobs_backlog_slope_per_s'] for s in seeds])[0]:+.4f} jobs/unit",
        verdict="pass" if ok else "fail",
        rule=f"pass: LBFS grows (slope > {GROWTH:.0%} of the arrival rate in every seed) and FBFS does not",
        details=details,
        plots=[plot],
    )

