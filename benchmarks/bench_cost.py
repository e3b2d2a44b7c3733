"""Iteration times of every hardware preset against the profile-based sum, and Vidur's reference points.

The profile-based sum is Vidur's execution-time predictor composed from its profiling data
(``fit_cost_models.VidurLikeTime.batch``: the non-attention ops of ``mlp.csv`` at the batch's token
count rounded up to 8, tensor-parallel all-reduces, decode and prefill attention with Vidur's
rounding of contexts to 64 tokens and its rule for several prefills in one batch), computed per
batch from the CSVs. Each preset's cost model times the same batches from the summary the engine
passes (P, sum c^2, sum c*prior, D, decode context). Batches, 4 kinds, ``--batches`` of each:

* ``prefill``: one chunk of 1..4096 tokens, after no prior context (half) or 0..4096 - chunk tokens;
* ``decode``: 1..256 decodes, each reading 1..4096 tokens;
* ``mixed``: one chunk of 1..512 tokens (half after prior context) + 0..256 decodes (Sarathi-like);
* ``multi``: 2..4 chunks of 1..512 tokens (the first after prior context) + 0..128 decodes.

Printed per preset: the mean absolute and the largest percentage error per kind and over all
batches, and for ``multi`` again without the optional sum of the chunks' priors (``no Σp``: what
a caller that passes only the five-number summary gets). For the presets of Llama-2-7B on an A100 also the reference points of
``derived/iteration_time_model_Llama-2-7b-hf_a100_tp1.json`` (Vidur's own predictor): a decode
point ``ctx N`` is timed as decodes of requests holding N KV tokens (N + 1 tokens read, Vidur's
``num_processed_tokens``), as the reference points' values imply (Vidur rounds 513 up to 576).

    python benchmarks/bench_cost.py                       # every preset (about a minute)
    python benchmarks/bench_cost.py --presets llama2-7b/a100 llama3-8b/a100 --batches 2000
    python benchmarks/bench_cost.py --vidur PATH          # Vidur's data folder (default: ../shared/data/vidur)
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

if not __package__:  # run as a script: make the repository root importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks import fit_cost_models as fit  # noqa: E402
from benchmarks.machine import describe  # noqa: E402
from llmsched_env.sim.cost import GPU_SPECS, MODEL_SPECS, available_hardware, get_hardware  # noqa: E402

KINDS = ("prefill", "decode", "mixed", "multi")
MS = 1e3
Batch = tuple[list[tuple[int, int]], list[int]]  # prefill chunks (tokens, prior), decode contexts


def profiled_key(name: str) -> tuple[str, str, int] | None:
    """(model, gpu, tp) whose profiles time preset ``name`` (a 40 GB A100 has the 80 GB one's)."""
    preset = get_hardware(name)
    model = next((k for k, spec in MODEL_SPECS.items() if spec == preset.model), None)
    gpu = next((k for k, spec in GPU_SPECS.items() if spec == preset.gpu), None)
    if model is None or gpu is None:
        return None
    return model, "a100" if gpu == "a100-40gb" else gpu, preset.tensor_parallel


def random_batches(kind: str, n: int, rng: np.random.Generator) -> list[Batch]:
    out: list[Batch] = []
    for _ in range(n):
        chunks: list[tuple[int, int]] = []
        decodes = 0
        if kind == "prefill":
            c = int(rng.integers(1, 4097))
            chunks = [(c, 0 if rng.random() < 0.5 else int(rng.integers(0, 4097 - c)))]
        elif kind == "decode":
            decodes = int(rng.integers(1, 257))
        elif kind == "mixed":
            c = int(rng.integers(1, 513))
            chunks = [(c, 0 if rng.random() < 0.5 else int(rng.integers(1, 3585)))]
            decodes = int(rng.integers(0, 257))
        else:
            sizes = rng.integers(1, 513, int(rng.integers(2, 5)))
            chunks = [(int(c), int(rng.integers(1, 3585)) if i == 0 else 0) for i, c in enumerate(sizes)]
            decodes = int(rng.integers(0, 129))
        out.append((chunks, [int(x) for x in rng.integers(1, 4097, decodes)]))
    return out


def model_ms(cost, batch: Batch, with_prior: bool = True) -> float:
    """The preset's time for ``batch``, from the summary the engine passes (``with_prior=False``:
    without the sum of the chunks' priors, the optional last argument)."""
    chunks, contexts = batch
    p = sum(c for c, _ in chunks)
    sq = sum(c * c for c, _ in chunks)
    ctx = sum(c * prior for c, prior in chunks)
    prior = sum(prior for _, prior in chunks) if with_prior else -1
    return cost.iteration_time(p, sq, ctx, len(contexts), sum(contexts), prior) * MS


def reference_point_batch(key: str) -> Batch:
    parts = key.split("_")
    if parts[0] == "decode":  # decode_B32_ctx512
        return [], [int(parts[2][3:]) + 1] * int(parts[1][1:])
    if parts[0] == "prefill":  # prefill_512
        return [(int(parts[1]), 0)], []
    return [(512, 0)], [1025] * 32  # mixed_prefill512_plus_32dec_ctx1024


def errors(cost, time_fn, batches: list[Batch], with_prior: bool = True) -> np.ndarray:
    return np.array([model_ms(cost, b, with_prior) / time_fn.batch(*b) - 1.0 for b in batches])


def fmt(err: np.ndarray) -> str:
    return f"{100 * np.abs(err).mean():5.1f} {100 * np.abs(err).max():6.1f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--presets", nargs="+", default=None, help="presets to check (default: all)")
    parser.add_argument("--batches", type=int, default=500, help="random batches of each kind")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--vidur", type=Path, default=None, help="Vidur's data folder (its README names the files)")
    args = parser.parse_args()
    if args.vidur is not None:
        fit.use_data(args.vidur)
    print(f"machine: {describe()}")
    names = args.presets or available_hardware()
    rng = np.random.default_rng(args.seed)
    batches = {kind: random_batches(kind, args.batches, rng) for kind in KINDS}
    points = json.loads(fit.DERIVED_JSON.read_text())["points_ms_vidur_predictor"]
    ref = fit.real_attention()
    composed: dict[tuple[str, str, int], fit.VidurLikeTime] = {}
    print(f"error of each preset against the profile-based sum, % (mean |error|, max |error|), {args.batches} "
          "random batches of each kind")
    print(f"{'preset':28s} " + " ".join(f"{kind:>12s}" for kind in KINDS) + f" {'all':>12s} {'multi, no Σp':>12s}"
          "  reference points")
    for name in names:
        key = profiled_key(name)
        if key is None:
            print(f"{name:28s} (no profile of this model and GPU)")
            continue
        if key not in composed:
            composed[key], _ = fit.profiled_time(*key, ref)
        time_fn, cost = composed[key], get_hardware(name).cost
        errs = {kind: errors(cost, time_fn, batches[kind]) for kind in KINDS}
        line = f"{name:28s} " + " ".join(f"{fmt(errs[kind]):>12s}" for kind in KINDS)
        line += f" {fmt(np.concatenate(list(errs.values()))):>12s}"
        line += f" {fmt(errors(cost, time_fn, batches['multi'], with_prior=False)):>12s}"
        if key == ("llama2-7b", "a100", 1):
            err = np.array([model_ms(cost, reference_point_batch(k)) / v - 1.0 for k, v in points.items()])
            line += f"  {fmt(err)} ({len(err)} points of Vidur's predictor)"
        print(line)

    print("\nreference points of Vidur's predictor (ms): Vidur, the profile-based sum, each Llama-2-7B/A100 preset")
    a100 = [n for n in names if profiled_key(n) == ("llama2-7b", "a100", 1)]
    time_fn, _ = fit.profiled_time("llama2-7b", "a100", 1, ref)
    print(f"   {'point':38s} {'Vidur':>8s} {'sum':>8s} " + " ".join(f"{n:>22s}" for n in a100))
    for k, v in points.items():
        batch = reference_point_batch(k)
        cells = " ".join(f"{model_ms(get_hardware(n).cost, batch):8.2f} ({100 * (model_ms(get_hardware(n).cost, batch) / v - 1):+5.1f}%)".rjust(22) for n in a100)
        s = time_fn.batch(*batch)
        print(f"   {k:38s} {v:8.2f} {s:8.2f} {cells}")


if __name__ == "__main__":
    main()
