"""Cases 9 and 10: serving clusters (issue 16).

Case 9, routing against queueing theory. ``N`` replicas that serve one request at a time
(``max_num_seqs=1``, no memory limit, a constant cost ``c`` per iteration, prompts of 1 token)
and geometric output lengths of mean ``m``: a request takes ``K ~ Geometric(1/m)`` iterations,
the lattice analogue of an exponential service time of mean ``m c`` (SCV ``1 - 1/m``). Poisson
arrivals at total rate ``N rho / (m c)``.

* Random routing splits a Poisson stream into ``N`` independent Poisson streams: each replica is
  exactly an M/G/1 queue with geometric service, whose mean response time is Pollaczek–Khinchine's
  ``E[S] + lambda_i E[S^2] / (2 (1 - rho))`` with ``E[S^2] = c^2 m (2m - 1)`` (the M/M/1 value
  ``E[S] / (1 - rho)`` is its ``m -> infinity`` limit).
* Join-the-shortest-queue (``least-outstanding``) must lie between the M/M/N central queue
  (Erlang C: ``E[S] + C(N, N rho) E[S] / (N (1 - rho))``; no router can beat a single queue
  feeding all servers) and ``N`` independent M/M/1 queues (random routing).

Time is discretised into iterations, but these runs are exact in time: with one slot a request
starts at an arrival on an idle replica (the engine jumps to it) or at a completion, an iteration
boundary.

Case 10, the Mooncake traces' prefix-cache hit rate. Each trace's ``hash_ids`` are replayed,
request by request in arrival order, through the engine's prefix cache
(``llmsched_env.sim.prefix_cache.PrefixCache``: longest cached prefix, reference counts, LRU
eviction of unreferenced blocks) with a cache of ``C`` blocks of 512 tokens, Mooncake's block
(``C = inf``: every block ever computed stays). The replay is serving-independent (each request's
blocks are released before the next arrives), which is the trace's own reuse; with an engine, the
blocks of requests still running would also compete for the space. Published figures (Qin et al.,
FAST'25): Table 2 gives the cache ratio of the conversation trace (40 %) and of the synthetic one
(66 %); Section 5.3.1 and Figure 9 say a 3M-token cache reaches less than half of the theoretical
maximum hit rate in most workloads and a 50M-token cache nearly all of it.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

import baselines.routing as routing
from llmsched_env.sim import EngineConfig, LinearCostModel, PredictorConfig, WorkloadConfig
from llmsched_env.sim.cluster import Cluster, ClusterConfig
from llmsched_env.sim.prefix_cache import PrefixCache
from llmsched_env.sim.traces import read_mooncake

from .common import NO_MEMORY_LIMIT, CaseResult, figure, fmt_ci, mean_ci, pmap, save, table

ITERATION_S = 0.01
MEAN_TOKENS = 100  # E[S] = 1 s
RHO = 0.7
WARMUP = 0.1
ROUTERS = ("random", "least-outstanding")
DATA = Path(__file__).resolve().parents[3] / "shared" / "data" / "traces"
MOONCAKE = DATA / "mooncake_fast25_conversation_trace.jsonl.gz"
MOONCAKE_SYNTHETIC = DATA / "mooncake_fast25_synthetic_trace.jsonl.gz"
MOONCAKE_BLOCK = 512
#: Table 2 of the paper: the cache ratio of each trace, with an unbounded cache
PUBLISHED_CACHE_RATIO = {"conversation": 0.40, "synthetic": 0.66}
RATIO_TOLERANCE = 0.05  # absolute: the paper rounds to whole percent and does not define the ratio exactly
LOCAL_BLOCKS = 3_000_000 // MOONCAKE_BLOCK  # Figure 9's local cache, 3M tokens
GLOBAL_BLOCKS = 50_000_000 // MOONCAKE_BLOCK  # Figure 9's 50M tokens, "nearly the theoretical maximum"
CAPACITIES = (1_000, LOCAL_BLOCKS, 10_000, 50_000, GLOBAL_BLOCKS, None)  # blocks of 512 tokens (None: unbounded)


def cluster_config(num_replicas: int, num_requests: int) -> tuple[ClusterConfig, LinearCostModel]:
    """Case 9's cluster and its constant cost model."""
    cost = LinearCostModel(intercept_ms=ITERATION_S * 1000, prefill_token_ms=0.0, decode_ms=0.0, decode_ctx_ms=0.0, name="constant")
    replica = EngineConfig(max_num_seqs=1, num_gpu_blocks=NO_MEMORY_LIMIT, max_num_batched_tokens=4096)
    config = ClusterConfig(
        replicas=(replica,) * num_replicas,
        workload=WorkloadConfig(lengths="geometric", prompt_mean=1, output_mean=MEAN_TOKENS, num_requests=num_requests),
        predictor=PredictorConfig(kind="oracle"),
        load=None,
        rate=num_replicas * RHO / (MEAN_TOKENS * ITERATION_S),
    )
    return config, cost


def formulas(num_replicas: int) -> dict[str, float]:
    """Mean response times (s): random routing exactly (M/G/1, geometric lattice), N x M/M/1 and M/M/N."""
    es = MEAN_TOKENS * ITERATION_S
    lam = RHO / es  # per replica
    es2 = ITERATION_S**2 * MEAN_TOKENS * (2 * MEAN_TOKENS - 1)
    return {
        "random": es + lam * es2 / (2 * (1 - RHO)),
        "mm1": es / (1 - RHO),
        "mmn": es + erlang_c(num_replicas, num_replicas * RHO) * es / (num_replicas * (1 - RHO)),
    }


def erlang_c(servers: int, offered: float) -> float:
    """Probability that an arrival waits in an M/M/``servers`` queue with offered load ``offered``."""
    rho = offered / servers
    terms = sum(offered**k / math.factorial(k) for k in range(servers))
    last = offered**servers / math.factorial(servers) / (1 - rho)
    return last / (terms + last)


def routing_run(job: tuple[str, int, int, int]) -> float:
    """Mean response time after the warm-up of one run."""
    router, num_replicas, seed, num_requests = job
    config, cost = cluster_config(num_replicas, num_requests)
    result = Cluster(config, seed=seed, costs=[cost] * num_replicas).run(routing.make_router(router))
    r = result.records
    order = np.argsort(r["arrival"], kind="stable")
    response = (r["finish_time"] - r["arrival"])[order][int(WARMUP * num_requests) :]
    return float(response.mean())


def queueing_case(quick: bool, out: Path, workers: int) -> CaseResult:
    sizes = (2, 4) if quick else (2, 4, 8)
    seeds = range(3 if quick else 8)
    n = 4000 if quick else 20000
    jobs = [(router, N, s, n) for N in sizes for router in ROUTERS for s in seeds]
    results = dict(zip(jobs, pmap(routing_run, jobs, workers)))
    rows, verdicts = [], []
    fig, ax = figure("Case 9: routing vs queueing bounds", "replicas N", "mean response time (s)")
    for N in sizes:
        f = formulas(N)
        rand = [results[("random", N, s, n)] for s in seeds]
        jsq = [results[("least-outstanding", N, s, n)] for s in seeds]
        m_r, h_r = mean_ci(rand)
        m_j, h_j = mean_ci(jsq)
        ok_random = abs(m_r - f["random"]) <= h_r
        ok_random_2 = abs(m_r - f["random"]) <= 2 * h_r
        ok_jsq = f["mmn"] < m_j - h_j and m_j + h_j < f["mm1"]
        verdicts.append("pass" if ok_random and ok_jsq else ("partial" if ok_random_2 and ok_jsq else "fail"))
        rows.append((N, f"{f['random']:.3f}", fmt_ci(rand, 4), f"{(m_r / f['random'] - 1):+.2%}",
                     f"{f['mmn']:.3f}", fmt_ci(jsq, 4), f"{f['mm1']:.3f}", verdicts[-1]))
        ax.errorbar([N - 0.05], [m_r], yerr=[h_r], fmt="o", color="C0", label="random (sim)" if N == sizes[0] else None)
        ax.errorbar([N + 0.05], [m_j], yerr=[h_j], fmt="s", color="C1", label="JSQ (sim)" if N == sizes[0] else None)
    ax.plot(sizes, [formulas(N)["random"] for N in sizes], "C0--", label="N x M/G/1 (exact for random)")
    ax.plot(sizes, [formulas(N)["mmn"] for N in sizes], "k:", label="M/M/N (lower bound)")
    ax.legend(fontsize=8)
    plot = save(fig, out, "case9_routing.png")
    overall = "fail" if "fail" in verdicts else ("partial" if "partial" in verdicts else "pass")
    details = "\n\n".join([
        f"Setting: N replicas, one slot each, constant {ITERATION_S * 1000:g} ms iterations, prompts of 1 token, geometric "
        f"outputs of mean {MEAN_TOKENS} (E[S] = {MEAN_TOKENS * ITERATION_S:g} s), Poisson arrivals at load {RHO} per replica; "
        f"{len(seeds)} seeds x {n} requests, the first {WARMUP:.0%} by arrival left out; 95 % CIs over seeds.",
        table(["N", "random: formula (s)", "random: sim", "error", "M/M/N (s)", "JSQ: sim", "N x M/M/1 (s)", "verdict"], rows),
        "Published JSQ figures for small N (e.g. the exact two-queue results of Flatto & McKean, 1977) were not "
        "compared: only the bounds are checked.",
    ])
    f4 = formulas(4)
    return CaseResult(
        key="9",
        title="Routing: random routing = N x M/G/1 exactly; JSQ between M/M/N and N x M/M/1",
        source="Pollaczek–Khinchine; Erlang C; Poisson splitting",
        setting=f"N in {sizes}, one slot per replica, geometric service of mean {MEAN_TOKENS * ITERATION_S:g} s, load {RHO}",
        published=f"N=4: random {f4['random']:.3f} s; JSQ in ({f4['mmn']:.3f}, {f4['mm1']:.3f}) s",
        ours="N=4: random {:.3f} s, JSQ {:.3f} s".format(
            mean_ci([results[("random", 4, s, n)] for s in seeds])[0], mean_ci([results[("least-outstanding", 4, s, n)] for s in seeds])[0]
        ),
        verdict=overall,
        rule="per N: pass if the random-routing formula lies in our 95 % CI and JSQ's CI lies strictly between the M/M/N and "
        "N x M/M/1 values, partial if the formula is within two half-widths; the case takes the worst N",
        details=details,
        plots=[plot],
    )


def replay_hit_rate(chains: list[list[int]], capacity: int | None) -> tuple[float, int]:
    """(hit rate in blocks, evictions) of the chains replayed in order through a prefix cache of
    ``capacity`` blocks (None: unbounded): each request takes its longest cached prefix, computes and
    caches the rest, then leaves."""
    cache = PrefixCache()
    total = hits = 0
    for chain in chains:
        room = len(chain) + 10**12 if capacity is None else capacity
        cache.settle(room)
        hit, _ = cache.match(chain, len(chain))
        held = cache.acquire(chain, hit)
        cache.settle(room - len(chain))  # the request's own blocks occupy the rest of the cache
        cache.register(chain, held, len(chain))
        cache.release(held)
        hits += hit
        total += len(chain)
    return hits / max(total, 1), cache.evictions


def unbounded_token_rate(chains: list[list[int]], prompt_tokens: list[int], block: int = MOONCAKE_BLOCK) -> float:
    """The unbounded-cache hit rate in tokens: a request's cached leading blocks count ``block`` tokens
    each, the partial last one only its own length."""
    seen: set[int] = set()
    hit = total = 0
    for chain, tokens in zip(chains, prompt_tokens):
        k = 0
        while k < len(chain) and chain[k] in seen:
            k += 1
        hit += min(k * block, tokens)
        total += tokens
        seen.update(chain)
    return hit / max(total, 1)


def _chains(path: Path) -> tuple[list[list[int]], list[int]]:
    trace = read_mooncake(path)
    offsets, values = trace.block_hash_offsets, trace.block_hash_values
    assert offsets is not None and values is not None
    chains = [values[offsets[i] : offsets[i + 1]].tolist() for i in range(len(trace))]
    return chains, trace.prompt_len.tolist()


def mooncake_case(
    quick: bool, out: Path, workers: int, path: Path = MOONCAKE, synthetic_path: Path = MOONCAKE_SYNTHETIC
) -> CaseResult:
    """The whole traces in both modes (the replay takes about a second)."""
    traces = {"conversation": path, "synthetic": synthetic_path}
    missing = [p.name for p in traces.values() if not p.exists()]
    if missing:
        return CaseResult(
            key="10", title="Mooncake traces: prefix-cache hit rate against cache size", source="Mooncake (FAST'25)",
            setting="trace absent", published="-", ours="-", verdict="pending", rule=f"needs {', '.join(missing)}",
        )
    rows, checks, ours_parts, token_parts = [], [], [], []
    for name, trace_path in traces.items():
        chains, prompt_tokens = _chains(trace_path)
        token_parts.append(f"{unbounded_token_rate(chains, prompt_tokens):.1%} ({name})")
        rates = {c: replay_hit_rate(chains, c)[0] for c in CAPACITIES}
        best = rates[None]
        published = PUBLISHED_CACHE_RATIO[name]
        ok_ratio = abs(best - published) <= RATIO_TOLERANCE
        ok_local = rates[LOCAL_BLOCKS] < 0.5 * best
        ok_global = rates[GLOBAL_BLOCKS] >= 0.95 * best
        checks += [ok_ratio, ok_local, ok_global]
        ours_parts.append(f"{name} {best:.1%} (paper {published:.0%})")
        for c, rate in rates.items():
            size = "unbounded" if c is None else f"{c:,} ({c * MOONCAKE_BLOCK / 1e6:.1f}M tokens)"
            rows.append((name, f"{len(chains):,}", size, f"{rate:.1%}", f"{rate / best:.0%}" if best else "-"))
    verdict = "pass" if all(checks) else ("partial" if any(checks) else "fail")
    details = "\n\n".join([
        "Setting: each whole trace replayed in arrival order through the engine's prefix cache with LRU eviction of "
        f"unreferenced blocks of {MOONCAKE_BLOCK} tokens (the hit rate counts a request's leading blocks found cached "
        "over all its blocks, the partial last one included, as Mooncake's hash_ids do).",
        table(["trace", "requests", "cache size (blocks of 512 tokens)", "prefix hit rate (blocks)", "of the unbounded rate"], rows),
        "Published: Table 2 of the paper gives the cache ratio of each trace, 40 % (conversation) and 66 % (synthetic); "
        "Section 5.3.1 (Figure 9) says a local cache of 3M tokens does not reach 50 % of the theoretical maximum hit rate "
        "in most workloads and that 50M tokens nearly reach it. Rule: pass when both unbounded hit rates lie within "
        f"{RATIO_TOLERANCE * 100:.0f} percentage points of Table 2, both 3M-token rates are under half the unbounded rate and both "
        "50M-token rates are at least 95 % of it; partial when some of these hold.",
        "Our unbounded rates are 2-3.5 points below Table 2's. The paper does not define its ratio exactly (blocks or "
        "tokens, and whether it was measured on these released samples or on the traffic they were sampled from); "
        f"counting tokens instead of blocks gives {' and '.join(token_parts)}. In the environment the same traces are "
        "served with 16-token engine blocks (each 512-token hash expands into 32 engine-block hashes; partial 512-token "
        "blocks are dropped), so an engine's hit rate is bounded by the unbounded figure above and reduced by its own "
        "KV capacity and by the blocks of running requests.",
    ])
    return CaseResult(
        key="10",
        title="Mooncake traces: prefix-cache hit rate against cache size",
        source="Mooncake (Qin et al., FAST'25), Table 2 and Figure 9",
        setting="conversation and synthetic traces, 512-token blocks, LRU caches up to unbounded",
        published="cache ratio 40 % (conversation), 66 % (synthetic); 3M tokens < half the maximum, 50M ≈ the maximum",
        ours=", ".join(ours_parts) + " unbounded",
        verdict=verdict,
        rule=f"unbounded rate within {RATIO_TOLERANCE * 100:.0f} points of Table 2; 3M-token rate < 50 % and 50M-token rate >= 95 % of it",
        details=details,
    )
