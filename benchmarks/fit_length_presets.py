"""Fit the length presets shipped in llmsched_env/sim/data/lengths/ from the real traces.

Reads the public traces named in each preset's source (a folder given by --data), writes one JSON per preset
(a sparse 2-D histogram of (prompt, output) counts on <= 40 x 40 integer, log-spaced bins, a
finer <= 160-bin histogram per axis, the source, and the trace's own length and arrival statistics), then samples each preset with the simulator's
sampler and prints trace vs sampled mean / median / p90 / p99 and Spearman correlation.

    PYTHONPATH=. python benchmarks/fit_length_presets.py [--data DIR] [--presets NAME ...] [--coarse-bins 40] [--fine-bins 160] [--check-only]

The ServeGen preset is drawn from the per-client PMFs (see ``servegen_trace``) rather than read from rows.
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

import numpy as np

from llmsched_env.sim.traces import Trace, read_trace
from llmsched_env.sim.workload import PRESET_DIR, WorkloadConfig, mean_lengths, sample_lengths, spearman_correlation

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO.parent / "shared" / "data" / "traces"

AZURE = dict(
    commit="b469a113cedca53ddc3bdea71a143dc4b7d8700c",
    license="CC-BY-4.0",
    citation="Patel et al., Splitwise: Efficient generative LLM inference using phase splitting, ISCA 2024",
)
MOONCAKE = dict(
    commit="3b5a594133958449a1feaf1c9e0fc1b553e34a28",
    license="Apache-2.0",
    citation="Qin et al., Mooncake: Trading more storage for less computation, "
    "a KVCache-centric architecture for serving LLM chatbot, FAST 2025",
)

SERVEGEN = dict(
    commit="f891d1189eb32b3868dfc443800c4150548c282a",
    license="Apache-2.0",
    citation="Xiang et al., ServeGen: Workload characterization of large language model serving in production, "
    "arXiv:2505.09999 (NSDI 2026)",
)

PRESETS: dict[str, dict] = {
    "sharegpt": dict(
        file="sharegpt_8k_filtered_llama2_lengths.csv.gz",
        description="ShareGPT conversations (Llama-2 tokenizer, prompt + output <= 8192, output <= 1024); "
        "prompts probably include conversation history",
        origin="github.com/microsoft/sarathi-serve data/processed_traces/sharegpt_8k_filtered_stats_llama2_tokenizer.csv",
        commit="72339db5b120614033b317880ad3a05a5e4c9415",
        license="Apache-2.0",
        citation="Agrawal et al., Taming throughput-latency tradeoff in LLM inference with Sarathi-Serve, OSDI 2024",
    ),
    "arxiv-summarization": dict(
        file="arxiv_summarization_llama2_lengths.csv.gz",
        description="arXiv paper summarization (Llama-2 tokenizer, prompt + output <= 4096)",
        origin="github.com/microsoft/vidur data/processed_traces/arxiv_summarization_stats_llama2_tokenizer_filtered_v2.csv",
        commit="7d47513363ec447a741ac5e47241580b47724fbf",
        license="MIT",
        citation="Agrawal et al., Vidur: A large-scale simulation framework for LLM inference, MLSys 2024",
    ),
    "azure-conv": dict(
        file="azure_llm_2023_conv.csv.gz",
        description="Azure LLM inference trace 2023, conversation service (1 h of production requests)",
        origin="github.com/Azure/AzurePublicDataset data/AzureLLMInferenceTrace_conv.csv",
        **AZURE,
    ),
    "azure-code": dict(
        file="azure_llm_2023_code.csv.gz",
        description="Azure LLM inference trace 2023, coding service (1 h of production requests; short outputs)",
        origin="github.com/Azure/AzurePublicDataset data/AzureLLMInferenceTrace_code.csv",
        **AZURE,
    ),
    "mooncake-conversation": dict(
        file="mooncake_fast25_conversation_trace.jsonl.gz",
        description="Mooncake (Kimi) conversation trace, 1 h of online chat traffic (long contexts)",
        origin="github.com/kvcache-ai/Mooncake FAST25-release/traces/conversation_trace.jsonl",
        arrival_note="timestamps are quantized to 3-second ticks (90% of IATs are 0), so iat_cv is an artefact",
        **MOONCAKE,
    ),
    "mooncake-synthetic": dict(
        file="mooncake_fast25_synthetic_trace.jsonl.gz",
        description="Mooncake synthetic trace built from public datasets, Poisson arrivals",
        origin="github.com/kvcache-ai/Mooncake FAST25-release/traces/synthetic_trace.jsonl",
        **MOONCAKE,
    ),
    "servegen-deepseek-r1": dict(
        file="servegen_deepseek_r1_length_pmfs.json.gz",
        arrivals_file="servegen_client_arrivals.csv.gz",
        description="DeepSeek-R1 reasoning requests on Alibaba Bailian (ServeGen): per-client input/output length "
        "PMFs of each 6-hour window, mixed with weights equal to that client's requests in the window "
        "(rate x 600 s summed over its 10-minute windows); 2,000,000 draws of the mixture",
        origin="github.com/alibaba/ServeGen data/reason/deepseek-r1/chunk-*-dataset.json and chunk-*-trace.csv",
        samples=2_000_000,
        **SERVEGEN,
    ),
}


def describe(x: np.ndarray) -> dict:
    """mean / median / p90 / p99 (numpy's linear percentiles) / min / max."""
    q = np.percentile(x, [50, 90, 99])
    return dict(
        mean=round(float(x.mean()), 3),
        median=float(q[0]),
        p90=round(float(q[1]), 3),
        p99=round(float(q[2]), 3),
        min=int(x.min()),
        max=int(x.max()),
    )


def arrival_stats(trace: Trace, note: str | None) -> dict | None:
    if trace.arrival_time is None:
        return None
    t = trace.arrival_time
    gaps = np.diff(t)
    stats: dict[str, float | str] = dict(
        span_s=round(float(t[-1]), 3),
        mean_rate=round((len(t) - 1) / float(t[-1]), 4),
        iat_cv=round(float(gaps.std() / gaps.mean()), 3),
    )
    if note:
        stats["note"] = note
    return stats


def log_edges(x: np.ndarray, bins: int) -> np.ndarray:
    """Integer bin edges evenly spaced in log length from min(x) to max(x)+1 (duplicates merged,
    so short lengths get one bin per integer)."""
    return np.unique(np.round(np.geomspace(x.min(), x.max() + 1, bins + 1)).astype(np.int64))


def axis(x: np.ndarray, coarse: int, fine: int) -> tuple[dict, np.ndarray]:
    """One axis: fine histogram, coarse edges (a subset of the fine ones) and each row's coarse bin."""
    coarse_edges = log_edges(x, coarse)
    edges = np.union1d(coarse_edges, log_edges(x, fine))
    counts = np.bincount(np.searchsorted(edges, x, side="right") - 1, minlength=len(edges) - 1)
    coarse_bin = np.searchsorted(coarse_edges, x, side="right") - 1
    return dict(edges=edges.tolist(), counts=counts.tolist(), coarse_edges=coarse_edges.tolist()), coarse_bin


def histogram(trace: Trace, coarse: int, fine: int) -> dict:
    prompt, pb = axis(trace.prompt_len, coarse, fine)
    output, ob = axis(trace.output_len, coarse, fine)
    width = len(output["coarse_edges"])
    cells, counts = np.unique(pb * width + ob, return_counts=True)
    rows = np.stack([cells // width, cells % width, counts], axis=1)
    return dict(prompt=prompt, output=output, cells=rows.tolist())


def to_json(obj: dict) -> str:
    """Indented JSON with each list of numbers on one line (keeps the files small and diffable)."""
    text = json.dumps(obj, indent=1)
    return re.sub(r"\[[\d\s,.\-]*\]", lambda m: "[" + " ".join(m.group(0)[1:-1].split()) + "]", text) + "\n"


def servegen_trace(spec: dict, data: Path, seed: int = 0) -> Trace:
    """Draws of ServeGen's per-client length PMFs, each (client, 6-hour window) weighted by the
    client's requests in that window (its 10-minute rates x 600 s); input and output are drawn
    independently within a client-window, as ServeGen gives them (no joint PMF is published)."""
    import ast
    import csv
    import gzip

    pmfs = json.loads(gzip.open(data / spec["file"], "rt").read())["clients"]
    requests: dict[tuple[str, int], float] = {}
    with gzip.open(data / spec["arrivals_file"], "rt") as f:
        for row in csv.DictReader(f):
            if row["model"] == "deepseek-r1":
                key = (row["client_id"], int(float(row["window_start_s"])) // 21600 * 21600)
                requests[key] = requests.get(key, 0.0) + float(row["rate_rps"]) * 600.0
    parts = [(client, int(window), fields) for client, windows in pmfs.items() for window, fields in windows.items()]
    weights = np.asarray([requests.get((client, window), 0.0) for client, window, _ in parts])
    rng = np.random.default_rng(seed)
    n = int(spec["samples"])
    which = rng.choice(len(parts), size=n, p=weights / weights.sum())
    prompt = np.empty(n, dtype=np.int64)
    output = np.empty(n, dtype=np.int64)
    for k in np.flatnonzero(np.bincount(which, minlength=len(parts))):
        rows = np.flatnonzero(which == k)
        for out, field in ((prompt, "input_tokens"), (output, "output_tokens")):
            pmf = ast.literal_eval(parts[k][2][field])
            values = np.asarray(list(pmf), dtype=np.int64)
            probs = np.asarray(list(pmf.values()), dtype=np.float64)
            out[rows] = rng.choice(values, size=len(rows), p=probs / probs.sum())
    return Trace(arrival_time=None, prompt_len=np.maximum(prompt, 1), output_len=np.maximum(output, 1), source=str(data / spec["file"]))


def fit(name: str, spec: dict, data: Path, coarse: int, fine: int) -> dict:
    trace = servegen_trace(spec, data) if "arrivals_file" in spec else read_trace(data / spec["file"])
    return dict(
        name=name,
        description=spec["description"],
        source=dict(
            file=spec["file"],
            origin=spec["origin"],
            commit=spec["commit"],
            license=spec["license"],
            citation=spec["citation"],
        ),
        fitted_by="benchmarks/fit_length_presets.py",
        trace_stats=dict(
            rows=len(trace),
            prompt=describe(trace.prompt_len),
            output=describe(trace.output_len),
            spearman=round(spearman_correlation(trace.prompt_len, trace.output_len), 4),
        ),
        arrival_stats=arrival_stats(trace, spec.get("arrival_note")),
        histogram=histogram(trace, coarse, fine),
    )


def compare(name: str, samples: int, seed: int) -> None:
    """Trace statistics (from the JSON) against a large sample of the preset."""
    meta = json.loads((PRESET_DIR / f"{name}.json").read_text())
    cfg = WorkloadConfig(lengths=name)
    prompt, output = sample_lengths(cfg, samples, seed)
    exact = mean_lengths(cfg)
    size = (PRESET_DIR / f"{name}.json").stat().st_size
    cells = len(meta["histogram"]["cells"])
    fine = [len(meta["histogram"][k]["counts"]) for k in ("prompt", "output")]
    print(f"\n{name}: {meta['trace_stats']['rows']} rows, {cells} joint cells, {fine[0]}/{fine[1]} fine bins, {size / 1024:.1f} KiB; {samples} samples, seed {seed}")
    print(f"  {'':7}{'stat':7}{'trace':>10}{'sampled':>10}{'rel.err':>9}")
    for label, x, mean in (("prompt", prompt, exact[0]), ("output", output, exact[1])):
        rec = meta["trace_stats"][label]
        got = describe(x)
        for stat in ("mean", "median", "p90", "p99"):
            print(f"  {label:7}{stat:7}{rec[stat]:10.1f}{got[stat]:10.1f}{got[stat] / rec[stat] - 1:+9.2%}")
        print(f"  {label:7}{'exact':7}{rec['mean']:10.1f}{mean:10.1f}{mean / rec['mean'] - 1:+9.2%}   (mean_lengths)")
    rho = spearman_correlation(prompt, output)
    print(f"  spearman     {meta['trace_stats']['spearman']:10.3f}{rho:10.3f}")
    if meta["arrival_stats"]:
        a = meta["arrival_stats"]
        print(f"  arrivals: {a['mean_rate']} req/s over {a['span_s']} s, IAT CV {a['iat_cv']}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="folder with the trace files")
    parser.add_argument("--coarse-bins", type=int, default=40, help="most joint-histogram bins per axis")
    parser.add_argument("--fine-bins", type=int, default=160, help="most marginal-histogram bins per axis")
    parser.add_argument("--samples", type=int, default=400_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--check-only", action="store_true", help="only compare the existing JSON files")
    parser.add_argument("--presets", nargs="+", choices=sorted(PRESETS), default=sorted(PRESETS), help="presets to fit")
    args = parser.parse_args()
    if not args.check_only:
        PRESET_DIR.mkdir(parents=True, exist_ok=True)
        for name, spec in ((n, PRESETS[n]) for n in args.presets):
            (PRESET_DIR / f"{name}.json").write_text(to_json(fit(name, spec, args.data, args.coarse_bins, args.fine_bins)))
            print(f"wrote {PRESET_DIR / (name + '.json')}")
    for name in args.presets:
        compare(name, args.samples, args.seed)


if __name__ == "__main__":
    main()
