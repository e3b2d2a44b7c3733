"""Fit the iteration-time presets of ``llmsched_env/sim/cost.py`` from Vidur's profiling data.

Reads Vidur's MIT-licensed profiling tables (a copy of its ``data/`` folder; ``--vidur``
names another folder) and prints the fitted coefficients and their errors. The numbers printed
here are hard-coded in cost.py, and ``--write-table`` writes the profile tables the package ships;
nothing in the package reads Vidur's files. Run from the repository root:
``python benchmarks/fit_cost_models.py`` (under a second).

Method. Vidur (github.com/microsoft/vidur) times an iteration as layers x the sum of per-layer
operator times (``ExecutionTime.model_time``); we compose the same sum and fit closed forms to it.

1. Non-attention ops: the per-layer medians of the nine ops Vidur's predictor uses (QKV and O
   projections, RoPE, up/down projections, activation, both RMSNorms, residual add) from
   ``mlp.csv``, summed, as a function of the batch's token count (rounded up to a multiple of 8
   and interpolated on the profiled grid, as Vidur does). Like Vidur we leave out the embedding
   and the LM head. With tensor parallelism, Vidur's two all-reduces per layer (after attention
   and after the MLP, each + 0.02 ms NCCL launch overhead) from the network profiles.
2. Attention per layer: decode a + b*B + c*B*kv + d*kv (B sequences, kv = mean context; x1.1 for
   B > 1 on GQA models, as in Vidur) and prefill p0 + p1*c + p2*c^2 + p3*c*kv (one chunk of c
   tokens after kv prior tokens), fitted by relative least squares to real Vidur attention
   profiles: Llama-2-7B/A100 uses the fits stored in
   ``derived/iteration_time_model_Llama-2-7b-hf_a100_tp1.json`` (this script refits them from the
   194 real rows and gets the same numbers); Llama-2-70B/A100/TP2 is fitted to the real legacy
   TP2 profile. There is no H100 attention profile, so H100 attention = A100 attention x a ratio:
   * decode attention streams the KV cache from HBM (memory-bound): x the H100/A100 time ratio
     of the layer's linear ops at <= 64 tokens, where GEMMs are bound by reading the weights,
     measured from the two mlp.csv files: 0.610 (HBM bandwidth ratio 2.039 / 3.35 TB/s = 0.609);
   * prefill attention runs FlashAttention-2-class kernels (the profiles predate FA3), which
     reach ~73 % of the A100's 312 TFLOP/s (FA2 paper, Dao 2023) but only ~35 % of the H100's
     989 TFLOP/s (FA3 paper, Shah et al. 2024): x 0.73*312 / (0.35*989) = 0.658. The GEMMs'
     measured compute-bound ratio (0.33) would overstate what these kernels gain.
3. Whole iterations: the composed time over 4,000 random batches (P in 0..4096 prefill tokens
   as one chunk without prior context, D in 0..128 decodes, KV = D x a mean context uniform in
   1..4096), fitted by relative least squares to t = a + b*P + c*D + d*KV + e*P^2 (fit "B"), and
   over 4,000 decode-only batches to t = a' + c'*D + d'*KV. The chunked-prefill term f in
   f * sum(c_i * prior_i) is layers x p3 (x the prefill ratio on H100).

The A100 run validates the method: it reproduces Vidur's own predictor at the derived JSON's
reference points and the published -poly fits (see the printed errors). The fits above are the ``-poly``
presets.

4. The profile-driven presets (``--write-table``: ``llmsched_env/sim/data/vidur_profile_costs.json``,
   read by ``cost.ProfileCostModel``): for every model, GPU and TP degree Vidur profiled and whose
   weights leave room for a 4,096-token request, the summed non-attention ops (+ two all-reduces
   per layer: TP2 on pairwise NVLink, TP4/TP8 on a DGX node) at the profile's token counts, and
   the attention coefficients, whole model. Vidur's attention profiles are missing here except
   two real ones (Llama-2-7B TP1, 32 q / 32 kv heads per GPU; Llama-2-70B TP2, 32 q / 4 kv), so
   every other shape is DERIVED from the nearer one (``scaled_attention``: by query and KV width
   per GPU, and the GPU's measured memory- / compute-bound ratio to the A100), and the JSON says
   which. The composed time follows Vidur's ``SklearnExecutionTimePredictor``: contexts rounded up
   to 64 tokens, several prefills timed as one chunk of sqrt(sum c^2) tokens after the sum of
   their priors, x1.1 batching overheads on GQA models (``VidurLikeTime.batch``);
   ``benchmarks/bench_cost.py`` compares every preset with it.

    python benchmarks/fit_cost_models.py                 # the fits and their errors
    python benchmarks/fit_cost_models.py --write-table   # regenerate the profile tables (~5 s)
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np

VIDUR = Path(__file__).resolve().parents[2] / "shared" / "data" / "vidur"
PROFILES = VIDUR / "data" / "profiling" / "compute"
DERIVED = VIDUR / "derived"
DERIVED_JSON = DERIVED / "iteration_time_model_Llama-2-7b-hf_a100_tp1.json"
LLAMA2_7B = "meta-llama/Llama-2-7b-hf"
LLAMA2_70B = "meta-llama/Llama-2-70b-hf"



def use_data(folder: Path) -> None:
    """Read Vidur's data (the layout of its README) from ``folder`` instead of the default."""
    global VIDUR, PROFILES, DERIVED, DERIVED_JSON
    VIDUR = Path(folder)
    PROFILES = VIDUR / "data" / "profiling" / "compute"
    DERIVED = VIDUR / "derived"
    DERIVED_JSON = DERIVED / DERIVED_JSON.name


# The per-layer ops Vidur's predictor adds up (sklearn_execution_time_predictor.py).
LAYER_OPS = (
    "attn_pre_proj",
    "attn_post_proj",
    "attn_rope",
    "mlp_up_proj",
    "mlp_down_proj",
    "mlp_act",
    "input_layernorm",
    "post_attention_layernorm",
    "add",
)
HBM_RATIO_H100_A100 = 2.039 / 3.35  # A100-80GB SXM4 vs H100 SXM5 HBM bandwidth (TB/s)
FA2_PREFILL_RATIO_H100_A100 = (0.73 * 312.0) / (0.35 * 989.0)  # FA2 achieved TFLOP/s, A100 / H100
NCCL_LAUNCH_MS = 0.02  # Vidur's nccl_cpu_launch_overhead_ms default
GQA_DECODE_OVERHEAD = 0.1  # Vidur's attention_decode_batching_overhead_fraction default
NUM_BATCHES = 4000
SEED = 0


# ---------------------------------------------------------------------------------------------
# Profiles
# ---------------------------------------------------------------------------------------------
def load_layer_ops(gpu: str, model: str, tp: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Return (num_tokens grid, per-layer sum of the op medians in ms), duplicates averaged.

    An op the profile has no column for counts 0 (phi-2 has a single layer norm, no
    ``post_attention_layernorm``; Vidur skips it for that model too)."""
    with (PROFILES / gpu / model / "mlp.csv").open() as f:
        rows = [r for r in csv.DictReader(f) if int(r["num_tensor_parallel_workers"]) == tp]
    tokens = np.array([int(r["num_tokens"]) for r in rows])
    total = np.array([sum(float(r.get(f"time_stats.{op}.median") or 0.0) for op in LAYER_OPS) for r in rows])
    grid = np.unique(tokens)
    return grid, np.array([total[tokens == n].mean() for n in grid])


def all_reduce_ms(network: str, workers: int, hidden: int, tokens: np.ndarray) -> np.ndarray:
    """Vidur's all-reduce time (ms) for a batch of ``tokens`` tokens (size = 2 bytes x hidden)."""
    with (VIDUR / "data" / "profiling" / "network" / network / "all_reduce.csv").open() as f:
        rows = [r for r in csv.DictReader(f) if int(r["num_workers"]) == int(r["devices_per_node"]) == workers]
    size_tokens = np.array([int(r["size"]) for r in rows]) / (2.0 * hidden)
    ms = np.array([float(r["time_stats.all_reduce.median"]) for r in rows])
    order = np.argsort(size_tokens)
    return np.interp(tokens, size_tokens[order], ms[order])


def relative_lstsq(columns: list[np.ndarray], y: np.ndarray) -> np.ndarray:
    """Least squares on relative errors (weights 1/y): small, frequent batches count as much as big ones."""
    x = np.column_stack(columns) / y[:, None]
    coef, *_ = np.linalg.lstsq(x, np.ones_like(y), rcond=None)
    return coef


def mape(pred: np.ndarray, y: np.ndarray) -> str:
    err = np.abs(pred / y - 1.0)
    return f"MAPE {100 * err.mean():.1f}% (worst {100 * err.max():.0f}%)"


def fit_attention(path: Path) -> tuple[dict, dict]:
    """Per-layer attention fits (ms) in the derived JSON's forms, and their errors.

    Reads Vidur's attention.csv format, or the ``kind,batch_size,prefill_chunk_size,kv_cache_size,
    time_ms_median`` excerpt in ``derived/attention_samples_*.csv``.
    """
    with path.open() as f:
        rows = list(csv.DictReader(f))
    fits, errors = {}, {}
    for kind, names in (("decode", ("a", "b", "c", "d")), ("prefill", ("p0", "p1", "p2", "p3"))):
        if "kind" in rows[0]:
            sel = [r for r in rows if r["kind"] == kind]
            y = np.array([float(r["time_ms_median"]) for r in sel])
        else:
            sel = [r for r in rows if r["is_prefill"] == str(kind == "prefill")]
            y = np.array([float(r[f"time_stats.attn_{kind}.median"]) for r in sel])
        kv = np.array([float(r["kv_cache_size"]) for r in sel])
        if kind == "decode":  # a + b*B + c*B*kv + d*kv, kv = context per sequence
            b = np.array([float(r["batch_size"]) for r in sel])
            x = [np.ones_like(b), b, b * kv, kv]
        else:  # p0 + p1*c + p2*c^2 + p3*c*kv, kv = prior context
            c = np.array([float(r["prefill_chunk_size"]) for r in sel])
            x = [np.ones_like(c), c, c * c, c * kv]
        coef = relative_lstsq(x, y)
        fits[kind] = dict(zip(names, coef))
        errors[kind] = f"{len(y)} rows, " + mape(np.column_stack(x) @ coef, y)
    return fits, errors


# ---------------------------------------------------------------------------------------------
# Composed iteration time and the closed-form fits
# ---------------------------------------------------------------------------------------------
class VidurLikeTime:
    """Whole-iteration time (ms) = layers x (linear ops + attention), as Vidur composes it.

    ``layer_ms`` is the per-layer time of the non-attention ops (TP all-reduces included) on the
    ``grid`` of token counts; ``attn`` the per-layer attention fits (``fit_attention``'s forms);
    ``decode_scale`` / ``prefill_scale`` carry them to another GPU; ``gqa_overhead`` and
    ``prefill_overhead`` are Vidur's batching overheads (x1.1 for a decode batch of more than one
    sequence, resp. a batch of more than one prefill, on GQA models); ``granularity`` is Vidur's
    ``kv_cache_prediction_granularity`` (contexts rounded up to a multiple of it; 0: not rounded).
    """

    def __init__(self, grid, layer_ms, attn: dict, layers: int, decode_scale: float = 1.0,
                 prefill_scale: float = 1.0, gqa_overhead: float = 0.0, prefill_overhead: float = 0.0,
                 granularity: int = 0):
        self.grid, self.layer_ms, self.layers = grid, layer_ms, layers
        self.dec, self.pre = attn["decode"], attn["prefill"]
        self.decode_scale, self.prefill_scale, self.gqa_overhead = decode_scale, prefill_scale, gqa_overhead
        self.prefill_overhead, self.granularity = prefill_overhead, granularity

    def _round_ctx(self, kv):
        g = self.granularity
        return np.ceil(np.floor(kv) / g) * g if g else kv

    def __call__(self, p: np.ndarray, d: np.ndarray, kv: np.ndarray) -> np.ndarray:
        """Batches of one prefill chunk of ``p`` tokens (no prior context) and ``d`` decodes
        reading ``kv`` context tokens in all (vectorised)."""
        dec, pre = self.dec, self.pre
        rounded = np.ceil((p + d) / 8.0) * 8.0  # Vidur's batch._total_num_tokens_rounded
        linear = np.interp(rounded, self.grid, self.layer_ms)
        mean_ctx = self._round_ctx(np.where(d > 0, kv / np.maximum(d, 1), 0.0))
        decode = np.where(d > 0, dec["a"] + dec["b"] * d + dec["c"] * d * mean_ctx + dec["d"] * mean_ctx, 0.0)
        decode = decode * (1.0 + self.gqa_overhead * (d > 1))
        prefill = np.where(p > 0, pre["p0"] + pre["p1"] * p + pre["p2"] * p * p, 0.0)
        return self.layers * (linear + self.decode_scale * decode + self.prefill_scale * prefill)

    def batch(self, chunks: list[tuple[int, int]], contexts: list[int]) -> float:
        """One batch, Vidur's rules exactly: prefill ``chunks`` as (chunk tokens, prior KV tokens)
        and decodes reading ``contexts`` tokens each (``SklearnExecutionTimePredictor``: the
        decodes' mean context, and each prefill's prior context, rounded up to the granularity;
        several prefills timed as one chunk of sqrt(sum c^2) tokens after the sum of their priors)."""
        dec, pre, g = self.dec, self.pre, self.granularity
        tokens = sum(c for c, _ in chunks) + len(contexts)
        t = float(np.interp(math.ceil(tokens / 8) * 8, self.grid, self.layer_ms))
        if contexts:
            b = len(contexts)
            m = float(self._round_ctx(np.array(sum(contexts) / b)))
            t += self.decode_scale * (dec["a"] + dec["b"] * b + dec["c"] * b * m + dec["d"] * m) * (
                1.0 + self.gqa_overhead * (b > 1))
        if chunks:
            kv = sum(math.ceil(prior / g) * g if g else prior for _, prior in chunks)
            c = round(math.sqrt(sum(c * c for c, _ in chunks)))
            t += self.prefill_scale * (pre["p0"] + pre["p1"] * c + pre["p2"] * c * c + pre["p3"] * c * kv) * (
                1.0 + self.prefill_overhead * (len(chunks) > 1))
        return self.layers * t

    @property
    def prefill_ctx_ms(self) -> float:
        """f: ms per unit of sum(c_i * prior_i), the c*kv term of prefill attention."""
        return self.layers * self.pre["p3"] * self.prefill_scale


def random_batches(rng: np.random.Generator, n: int, decode_only: bool = False):
    """P prefill tokens (one chunk, no prior context), D decodes, KV = D x a mean context."""
    p = np.zeros(n) if decode_only else rng.integers(0, 4097, n).astype(float)
    d = rng.integers(1 if decode_only else 0, 129, n).astype(float)
    d[(p == 0) & (d == 0)] = 1.0  # an empty batch is never timed
    kv = d * rng.integers(1, 4097, n)  # mean context drawn per batch, so KV is not collinear with D
    return p, d, kv


def predict_b(c: dict, p: np.ndarray, d: np.ndarray, kv: np.ndarray) -> np.ndarray:
    return c["a"] + c["b"] * p + c["c"] * d + c["d"] * kv + c["e"] * p * p


def predict_decode(c: dict, p: np.ndarray, d: np.ndarray, kv: np.ndarray) -> np.ndarray:
    return c["da"] + c["dc"] * d + c["dd"] * kv


class Fit:
    """Fit "B" (batches with a prefill) and the decode-only fit of one composed time function.

    ``coef`` holds a, b, c, d, e (fit B), f (chunked prefill) and da, dc, dd (decode-only), in ms.
    """

    def __init__(self, time_fn: VidurLikeTime):
        rng = np.random.default_rng(SEED)
        self.mixed = random_batches(rng, NUM_BATCHES)
        self.decode = random_batches(rng, NUM_BATCHES, decode_only=True)
        p, d, kv = self.mixed
        self.y_mixed = time_fn(p, d, kv)
        coef = dict(zip("abcde", relative_lstsq([np.ones_like(p), p, d, kv, p * p], self.y_mixed)))
        _, d, kv = self.decode
        self.y_decode = time_fn(0 * d, d, kv)
        coef.update(zip(("da", "dc", "dd"), relative_lstsq([np.ones_like(d), d, kv], self.y_decode)))
        coef["f"] = time_fn.prefill_ctx_ms
        self.coef = coef

    def report(self, label: str) -> None:
        c = self.coef
        print(f"{label} fit B, t = a + b*P + c*D + d*KV + e*P^2 (ms):")
        print(f"   a={c['a']:.4g} b={c['b']:.4g} c={c['c']:.4g} d={c['d']:.4g} e={c['e']:.4g}   "
              + mape(predict_b(c, *self.mixed), self.y_mixed))
        print(f"{label} decode-only fit, t = a' + c'*D + d'*KV (ms):")
        print(f"   a'={c['da']:.4g} c'={c['dc']:.4g} d'={c['dd']:.4g}   "
              + mape(predict_decode(c, *self.decode), self.y_decode))
        print("   fit B used for the decode-only batches instead: " + mape(predict_b(c, *self.decode), self.y_decode))
        print(f"   chunked-prefill f = layers x p3 (x ratio) = {c['f']:.4g} ms per (chunk token x prior token)")


# ---------------------------------------------------------------------------------------------
# The presets' composed times
# ---------------------------------------------------------------------------------------------
def llama2_7b_a100() -> VidurLikeTime:
    attn = json.loads(DERIVED_JSON.read_text())["per_layer_attention_fits_ms"]
    grid, ops = load_layer_ops("a100", LLAMA2_7B)
    return VidurLikeTime(grid, ops, attn, layers=32)


def h100_a100_memory_bound_ratio() -> float:
    """Median H100/A100 ratio of the Llama-2-7B layer's linear-op time at <= 64 tokens."""
    grid, a100 = load_layer_ops("a100", LLAMA2_7B)
    grid_h, h100 = load_layer_ops("h100", LLAMA2_7B)
    assert np.array_equal(grid, grid_h)
    small = grid <= 64
    return float(np.median(h100[small] / a100[small]))


def llama2_7b_h100() -> VidurLikeTime:
    attn = json.loads(DERIVED_JSON.read_text())["per_layer_attention_fits_ms"]
    grid, ops = load_layer_ops("h100", LLAMA2_7B)
    return VidurLikeTime(grid, ops, attn, layers=32, decode_scale=h100_a100_memory_bound_ratio(),
                         prefill_scale=FA2_PREFILL_RATIO_H100_A100)


def llama2_70b_a100_tp2() -> VidurLikeTime:
    attn, _ = fit_attention(DERIVED / "legacy_attention_Llama-2-70b-hf_a100_tp2_commit-6d98aa8.csv")
    grid, ops = load_layer_ops("a100", LLAMA2_70B, tp=2)
    comm = 2 * (all_reduce_ms("a100_pairwise_nvlink", 2, 8192, grid) + NCCL_LAUNCH_MS)
    return VidurLikeTime(grid, ops + comm, attn, layers=80, gqa_overhead=GQA_DECODE_OVERHEAD)


# ---------------------------------------------------------------------------------------------
# The profile-driven presets: every profiled model, GPU and tensor-parallel degree
# ---------------------------------------------------------------------------------------------
PROFILED_MODELS = {  # preset model name -> profile folder under profiling/compute/<gpu>/
    "llama2-7b": LLAMA2_7B,
    "llama2-70b": LLAMA2_70B,
    "llama3-8b": "meta-llama/Meta-Llama-3-8B",
    "llama3-70b": "meta-llama/Meta-Llama-3-70B",
    "codellama-34b": "codellama/CodeLlama-34b-Instruct-hf",
    "qwen-72b": "Qwen/Qwen-72B",
    "internlm-20b": "internlm/internlm-20b",
    "phi-2": "microsoft/phi-2",
}
PROFILED_GPUS = ("a100", "h100", "a40")
TP_DEGREES = (1, 2, 4, 8)
# Vidur's network profiles for tensor parallelism: TP2 on pairwise NVLink (Vidur's default replica
# network device, as the llama2-70b/a100-tp2-poly fit), TP4 and TP8 on a DGX node (NVSwitch: the
# pairwise-NVLink profile's 4-worker all-reduce crosses PCIe, 2.2 ms against 0.32 ms for 4,096
# tokens of Llama-2-7B on A100); the A40 has no all-reduce profile.
NETWORK = {2: "{gpu}_pairwise_nvlink", 4: "{gpu}_dgx", 8: "{gpu}_dgx"}
KV_GRANULARITY = 64  # Vidur's kv_cache_prediction_granularity default
TABLE = Path(__file__).resolve().parents[1] / "llmsched_env" / "sim" / "data" / "vidur_profile_costs.json"
VIDUR_COMMIT = "7d47513363ec447a741ac5e47241580b47724fbf"


def profile_heads(gpu: str, model: str) -> tuple[int, int, int]:
    """(query heads, KV heads, hidden size) of the whole model, from its mlp.csv."""
    with (PROFILES / gpu / model / "mlp.csv").open() as f:
        row = next(csv.DictReader(f))
    return int(row["n_head"]), int(row["n_kv_head"]), int(row["n_embd"])


def real_attention() -> dict[str, tuple[dict, tuple[int, int], str]]:
    """The two real attention profiles: per-layer fits, (query, KV) width per device in
    head_dim units x head_dim, and where they come from."""
    mha = json.loads(DERIVED_JSON.read_text())["per_layer_attention_fits_ms"]
    gqa, _ = fit_attention(DERIVED / "legacy_attention_Llama-2-70b-hf_a100_tp2_commit-6d98aa8.csv")
    return {
        "mha": (mha, (32 * 128, 32 * 128), "Llama-2-7B/A100/TP1 (32 q / 32 kv heads per GPU): fits to 194 real rows"),
        "gqa": (gqa, (32 * 128, 4 * 128), "Llama-2-70B/A100/TP2 (32 q / 4 kv heads per GPU): fit to the real legacy profile"),
    }


def scaled_attention(gpu: str, model: str, tp: int, ref: dict) -> tuple[dict, float, float, str]:
    """Per-layer attention fits of ``model`` at TP ``tp`` on ``gpu``, the decode and prefill
    GPU scales, and a provenance note.

    Vidur's attention profiles exist here for two shapes only (``real_attention``); the others
    are DERIVED from the nearer one (MHA models from Llama-2-7B, GQA models from Llama-2-70B
    TP2): decode terms that grow with context (c, d) x the KV width per GPU (KV heads x head
    dim: decode attention streams the KV cache), the per-sequence term b and every prefill term
    x the query width per GPU (query heads x head dim: FLOPs), intercepts unchanged. On H100 and
    A40 decode attention is x this model's measured memory-bound linear-op ratio to the A100
    (<= 64 tokens) and prefill attention x the FA2 utilisation ratio (H100, see the module
    docstring) or this model's measured compute-bound ratio (A40: Ampere like the A100, >= 1024
    tokens).
    """
    q_heads, kv_heads, hidden = profile_heads(gpu, model)
    head_dim = hidden // q_heads
    q_width = q_heads // tp * head_dim
    kv_width = max(kv_heads // tp, 1) * head_dim
    kind = "gqa" if q_heads > kv_heads else "mha"
    fits, (q_ref, kv_ref), label = ref[kind]
    rq, rk = q_width / q_ref, kv_width / kv_ref
    dec, pre = fits["decode"], fits["prefill"]
    attn = {
        "decode": {"a": dec["a"], "b": dec["b"] * rq, "c": dec["c"] * rk, "d": dec["d"] * rk},
        "prefill": {"p0": pre["p0"], "p1": pre["p1"] * rq, "p2": pre["p2"] * rq, "p3": pre["p3"] * rq},
    }
    exact = rq == 1.0 and rk == 1.0 and gpu == "a100"
    note = ("real: " if exact else "DERIVED from ") + label
    if not rq == rk == 1.0:
        note += f"; x{rq:.3g} query width, x{rk:.3g} KV width"
    decode_scale = prefill_scale = 1.0
    if gpu != "a100":
        grid, base = load_layer_ops("a100", model, tp)
        grid_g, ops = load_layer_ops(gpu, model, tp)
        assert np.array_equal(grid, grid_g)
        decode_scale = float(np.median(ops[grid <= 64] / base[grid <= 64]))
        if gpu == "h100":
            prefill_scale = FA2_PREFILL_RATIO_H100_A100
        else:
            prefill_scale = float(np.median(ops[grid >= 1024] / base[grid >= 1024]))
        note += f"; {gpu.upper()}/A100 scale x{decode_scale:.3f} decode, x{prefill_scale:.3f} prefill"
    return attn, decode_scale, prefill_scale, note


def profiled_time(model_name: str, gpu: str, tp: int, ref: dict | None = None) -> tuple[VidurLikeTime, dict]:
    """The composed (profile-based) iteration time of one preset and its provenance; raises
    LookupError when the profiles for it are missing."""
    from llmsched_env.sim.cost import MODEL_SPECS

    model = PROFILED_MODELS[model_name]
    if not (PROFILES / gpu / model / "mlp.csv").exists():
        raise LookupError(f"no {gpu} profile of {model}")
    grid, ops = load_layer_ops(gpu, model, tp)
    if len(grid) == 0:
        raise LookupError(f"{model} is not profiled at TP{tp} on {gpu}")
    q_heads, kv_heads, hidden = profile_heads(gpu, model)
    network = None
    if tp > 1:
        network = NETWORK[tp].format(gpu=gpu)
        if not (VIDUR / "data" / "profiling" / "network" / network / "all_reduce.csv").exists():
            raise LookupError(f"no all-reduce profile for TP{tp} on {gpu}")
        ops = ops + 2 * (all_reduce_ms(network, tp, hidden, grid) + NCCL_LAUNCH_MS)
    attn, decode_scale, prefill_scale, note = scaled_attention(gpu, model, tp, ref or real_attention())
    overhead = GQA_DECODE_OVERHEAD if q_heads > kv_heads else 0.0
    layers = MODEL_SPECS[model_name].num_layers
    time_fn = VidurLikeTime(grid, ops, attn, layers, decode_scale, prefill_scale, overhead, overhead, KV_GRANULARITY)
    linear = "non-attention ops: " + f"profiling/compute/{gpu}/{model}/mlp.csv (real, TP{tp})"
    if network:
        linear += f" + 2 all-reduces per layer from profiling/network/{network}/all_reduce.csv (real)"
    return time_fn, {"linear": linear, "attention": note}


def build_table() -> dict:
    """The profile-driven presets' tables (written to ``TABLE`` by ``--write-table``)."""
    from llmsched_env.sim.cost import GPU_SPECS, MODEL_SPECS, kv_capacity_blocks
    from llmsched_env.sim.validation import ConfigError

    ref = real_attention()
    grids: dict[str, list[int]] = {}
    presets, skipped = [], []
    for model_name in PROFILED_MODELS:
        for gpu in PROFILED_GPUS:
            for tp in TP_DEGREES:
                where = f"{model_name}/{gpu}" + (f"-tp{tp}" if tp > 1 else "")
                try:
                    kv_capacity_blocks(MODEL_SPECS[model_name], GPU_SPECS[gpu], tensor_parallel=tp)
                except ConfigError:
                    skipped.append(f"{where}: the weights leave no room for one 4,096-token request")
                    continue
                try:
                    t, provenance = profiled_time(model_name, gpu, tp, ref)
                except LookupError as err:
                    skipped.append(f"{where}: {err}")
                    continue
                grid_name = f"tokens-{int(t.grid[-1])}"
                grids[grid_name] = [int(x) for x in t.grid]
                layers = t.layers
                presets.append({
                    "model": model_name,
                    "gpu": gpu,
                    "tensor_parallel": tp,
                    "grid": grid_name,
                    "linear_ms": [float(f"{layers * x:.5g}") for x in t.layer_ms],
                    "decode_ms": [float(f"{layers * t.decode_scale * t.dec[k]:.6g}") for k in "abcd"],
                    "prefill_ms": [float(f"{layers * t.prefill_scale * t.pre[k]:.6g}") for k in ("p0", "p1", "p2", "p3")],
                    "decode_batching_overhead": t.gqa_overhead,
                    "prefill_batching_overhead": t.prefill_overhead,
                    "source": provenance,
                })
    return {
        "description": (
            "Iteration-time tables of the profile-driven presets (ProfileCostModel in cost.py), whole model, "
            "ms. linear_ms: the non-attention ops (QKV/O projections, RoPE, MLP, norms, residual add; TP "
            "all-reduces + 0.02 ms NCCL launch each) summed over the layers, at the token counts of the named "
            "grid; decode_ms (a, b, c, d): attention t = a + b*B + c*B*m + d*m for B decodes of mean context m; "
            "prefill_ms (p0, p1, p2, p3): t = p0 + p1*c + p2*c^2 + p3*c*kv for a chunk of c tokens after kv; "
            "batching overheads as in Vidur (GQA models only). CPU overheads excluded (Vidur's default)."
        ),
        "source": (
            f"Vidur profiling data, github.com/microsoft/vidur commit {VIDUR_COMMIT} (MIT, Copyright (c) "
            "Microsoft Corporation): data/profiling/compute/<gpu>/<model>/mlp.csv and "
            "data/profiling/network/*/all_reduce.csv; attention from two real Vidur A100 attention profiles "
            "(see each preset's source: the others are derived). Generated by "
            "benchmarks/fit_cost_models.py --write-table."
        ),
        "token_round": 8,
        "kv_granularity": KV_GRANULARITY,
        "grids": grids,
        "presets": presets,
        "not_built": skipped,
    }


def reference_points(time_fn: VidurLikeTime, points: dict) -> None:
    """Compare the composed time with the reference points computed by Vidur's own predictor."""
    errs = []
    for key, ref in points.items():
        parts = key.split("_")
        if parts[0] == "decode":  # decode_B32_ctx512
            b, ctx = float(parts[1][1:]), float(parts[2][3:])
            p, d, kv = 0.0, b, b * ctx
        elif parts[0] == "prefill":  # prefill_512
            p, d, kv = float(parts[1]), 0.0, 0.0
        else:  # mixed_prefill512_plus_32dec_ctx1024
            p, d, kv = 512.0, 32.0, 32.0 * 1024
        t = float(time_fn(np.array([p]), np.array([d]), np.array([kv]))[0])
        errs.append(abs(t / ref - 1))
        print(f"   {key:36s} Vidur {ref:7.2f} ms   composed {t:7.2f} ms   ({100 * (t / ref - 1):+.1f}%)")
    print(f"   mean absolute error {100 * np.mean(errs):.1f}%")


def one(p: float, d: float, kv: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return np.array([p]), np.array([d]), np.array([kv])


def main() -> None:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--write-table", action="store_true",
                        help=f"write the profile-driven presets' tables to {TABLE.relative_to(TABLE.parents[3])}")
    parser.add_argument("--vidur", type=Path, default=None, help="Vidur's data folder (default: ../shared/data/vidur)")
    args = parser.parse_args()
    if args.vidur is not None:
        use_data(args.vidur)
    if args.write_table:
        table = build_table()
        TABLE.write_text(json.dumps(table, separators=(",", ":")) + "\n")
        print(f"wrote {len(table['presets'])} presets to {TABLE} ({TABLE.stat().st_size:,} bytes); not built:")
        for line in table["not_built"]:
            print("   " + line)
        return
    ref = json.loads(DERIVED_JSON.read_text())
    fits = ref["whole_iteration_fits_ms"]
    decode_only = fits["decode_only"]
    derived_fits = {**fits["B"], "da": decode_only["a"], "dc": decode_only["c"], "dd": decode_only["d"]}

    print("== Llama-2-7B, A100-80GB, TP1: validation of the method")
    t_a100 = llama2_7b_a100()
    print("Composed time vs Vidur's own predictor at the derived JSON's reference points:")
    reference_points(t_a100, ref["points_ms_vidur_predictor"])
    print("Per-layer attention refitted to the 194 real rows:")
    attn, errors = fit_attention(DERIVED / "attention_samples_Llama-2-7b-hf_a100_tp1.csv")
    stored = ref["per_layer_attention_fits_ms"]
    for kind in ("decode", "prefill"):
        print(f"   {kind:7s} " + ", ".join(f"{k}={v:.4g}" for k, v in attn[kind].items()) + f"   ({errors[kind]})")
        print("   stored  " + ", ".join(f"{k}={stored[kind][k]}" for k in attn[kind]) + f"   ({stored[kind]['fit']})")
    fa = Fit(t_a100)
    fa.report("A100 (this method)")
    print(f"   stored fit B:        a={derived_fits['a']} b={derived_fits['b']} c={derived_fits['c']} d={derived_fits['d']} e={derived_fits['e']}")
    print(f"   stored decode-only:  a'={derived_fits['da']} c'={derived_fits['dc']} d'={derived_fits['dd']}")
    print("   stored fits vs this method's fits on the same batches: mixed "
          + mape(predict_b(derived_fits, *fa.mixed), predict_b(fa.coef, *fa.mixed))
          + "; decode-only " + mape(predict_decode(derived_fits, *fa.decode), predict_decode(fa.coef, *fa.decode)))
    print("   stored fits vs the composed time: mixed " + mape(predict_b(derived_fits, *fa.mixed), fa.y_mixed)
          + "; decode-only " + mape(predict_decode(derived_fits, *fa.decode), fa.y_decode)
          + "; fit B on the decode-only batches " + mape(predict_b(derived_fits, *fa.decode), fa.y_decode))
    print("   step of the stored fits from a decode-only batch to the same batch + a 1-token prefill:")
    for dd in (1, 32, 77, 128):
        tb, td = predict_b(derived_fits, *one(1.0, dd, dd * 1024.0))[0], predict_decode(derived_fits, *one(0.0, dd, dd * 1024.0))[0]
        print(f"      D={dd:3d}, ctx 1024: {td:6.2f} ms -> {tb:6.2f} ms")

    print("\n== H100/A100 time ratios of the Llama-2-7B layer's linear ops (TP1, from the two mlp.csv)")
    grid, a100 = load_layer_ops("a100", LLAMA2_7B)
    _, h100 = load_layer_ops("h100", LLAMA2_7B)
    print(f"   memory-bound, <= 64 tokens:    {h100_a100_memory_bound_ratio():.3f}"
          f"  (HBM bandwidth ratio {HBM_RATIO_H100_A100:.3f})")
    big = grid >= 1024
    print(f"   compute-bound, >= 1024 tokens: {np.median(h100[big] / a100[big]):.3f}"
          f"  (dense fp16 peak ratio {312 / 989:.3f})")
    print(f"   prefill attention ratio used (FA2 utilisation): {FA2_PREFILL_RATIO_H100_A100:.3f}")

    print("\n== Llama-2-7B, H100 SXM 80GB, TP1")
    t_h100 = llama2_7b_h100()
    fh = Fit(t_h100)
    fh.report("H100")
    for name, batch in {"decode B=1 ctx=512": (0, 1, 512), "decode B=128 ctx=2048": (0, 128, 128 * 2048),
                        "prefill 2048": (2048, 0, 0), "prefill 4096": (4096, 0, 0)}.items():
        print(f"   {name:24s} A100 {t_a100(*one(*batch))[0]:7.2f} ms   H100 {t_h100(*one(*batch))[0]:7.2f} ms")
    alt = VidurLikeTime(grid, h100, ref["per_layer_attention_fits_ms"], 32, t_h100.decode_scale, t_h100.decode_scale)
    print(f"   sensitivity: prefill 4096 with prefill ratio {t_h100.decode_scale:.3f} instead of "
          f"{FA2_PREFILL_RATIO_H100_A100:.3f}: {alt(*one(4096, 0, 0))[0]:.2f} ms")

    print("\n== Llama-2-70B, 2 x A100-80GB (TP2, pairwise NVLink)")
    _, errors = fit_attention(DERIVED / "legacy_attention_Llama-2-70b-hf_a100_tp2_commit-6d98aa8.csv")
    t70 = llama2_70b_a100_tp2()
    for kind in ("decode", "prefill"):
        print(f"   {kind:7s} attention per layer: " + ", ".join(f"{k}={v:.4g}" for k, v in
              (t70.dec if kind == "decode" else t70.pre).items()) + f"   ({errors[kind]})")
    f70 = Fit(t70)
    f70.report("Llama-2-70B TP2")
    for name, batch in {"decode B=1 ctx=512": (0, 1, 512), "decode B=64 ctx=2048": (0, 64, 64 * 2048),
                        "prefill 2048": (2048, 0, 0)}.items():
        print(f"   {name:24s} composed {t70(*one(*batch))[0]:7.2f} ms")

    print("\n== Cross-check: Li-Dai-Peng's CodeLlama-34B staircase vs Vidur's A100 profile (no attention)")
    grid34, a100_34 = load_layer_ops("a100", "codellama/CodeLlama-34b-Instruct-hf")
    for b in (1, 64, 128, 129, 256, 257, 512, 1024):
        lin = 48 * np.interp(math.ceil(b / 8) * 8, grid34, a100_34)
        stair = 11.28 + 35.47 * math.ceil(b / 128)
        print(f"   b={b:5d}: staircase {stair:7.2f} ms, Vidur non-attention ops x 48 layers {lin:7.2f} ms")

    print("\nCoefficients for cost.py (ms):")
    for label, f in (("llama2-7b/a100 (this method; the preset keeps the stored fits)", fa),
                     ("llama2-7b/h100", fh), ("llama2-70b/a100-tp2", f70)):
        print(f"   {label}: " + ", ".join(f"{k}={v:.4g}" for k, v in f.coef.items()))


if __name__ == "__main__":
    main()
