"""Iteration-time cost models, model and GPU specs, KV-cache capacity and hardware presets.

One place for the hardware arithmetic of the simulator (DESIGN.md §3):

* :class:`CostModel` — the time of one forward pass (an *iteration*) of a batch. The engine calls
  :meth:`CostModel.iteration_time` once per simulated iteration, so it is a few float operations;
  :meth:`CostModel.decode_affine` gives the same time for decode-only batches as an affine function
  of the total context, so the engine can jump over many decode iterations in closed form.
* :class:`LinearCostModel` — t = a + b*P + e*sum(c_i^2) + f*sum(c_i*prior_i) + c*D + d*KV, fitted
  to Vidur's profiling data (``benchmarks/fit_cost_models.py``).
* :class:`StaircaseCostModel` — Li, Dai & Peng (2025), "Throughput-Optimal Scheduling Algorithms
  for LLM Inference and AI Agents": t(b) = 11.28 + 35.47 * ceil(b / 128) ms for CodeLlama-34B on
  one A100, b = tokens in the batch.
* :class:`ModelSpec`, :class:`GPUSpec`, :func:`kv_capacity_blocks` — the paged KV cache's size,
  computed as Vidur's memory planner does (``vidur/scheduler/utils/memory_planner.py`` and
  ``base_replica_scheduler.py`` in github.com/microsoft/vidur).
* :class:`HardwarePreset`, :func:`get_hardware` — named (model, GPU, cost model) bundles.

Units: the cost models take coefficients in milliseconds (as papers and profiles quote them)
and return seconds.
"""

from __future__ import annotations

import abc
import dataclasses
from dataclasses import dataclass, field

from .validation import ConfigError, check_choice, check_number, check_positive, fail


# ---------------------------------------------------------------------------------------------
# Cost models
# ---------------------------------------------------------------------------------------------
class CostModel(abc.ABC):
    """Time of one iteration (one forward pass of the model over a batch).

    Batch summary passed by the engine:

    * ``prefill_tokens`` P = sum of the prefill chunk sizes c_i in the batch;
    * ``prefill_sq`` = sum of c_i^2 (attention within a chunk is quadratic in its length);
    * ``prefill_ctx`` = sum of c_i * prior_i, prior_i = KV tokens request i already held before
      its chunk (a chunked prefill attends to its earlier chunks);
    * ``num_decodes`` D = decoding sequences in the batch;
    * ``decode_ctx`` KV = sum over the decodes of the context each attends to (its KV tokens,
      including the token being processed).

    The engine never times an empty batch; what a model returns for one is not meaningful.
    """

    __slots__ = ()
    name: str

    @abc.abstractmethod
    def iteration_time(
        self, prefill_tokens: int, prefill_sq: int, prefill_ctx: int, num_decodes: int, decode_ctx: int
    ) -> float:
        """Seconds taken by one iteration over the batch described by the arguments."""

    @abc.abstractmethod
    def decode_affine(self, num_decodes: int) -> tuple[float, float]:
        """(base_s, per_ctx_s) such that for every ``decode_ctx``,
        ``iteration_time(0, 0, 0, num_decodes, decode_ctx) == base_s + per_ctx_s * decode_ctx``.

        The engine uses it to fast-forward many decode-only iterations in closed form (the
        context grows by ``num_decodes`` tokens per iteration).
        """


@dataclass(frozen=True, slots=True)
class LinearCostModel(CostModel):
    """t_ms = a + b*P + e*sum(c_i^2) + f*sum(c_i*prior_i) + c*D + d*KV (coefficients in ms).

    ``decode_only_ms = (a', c', d')``, when given, replaces the formula for batches without
    prefill tokens (P == 0) by t_ms = a' + c'*D + d'*KV. The presets use it: for Llama-2-7B on an
    A100 the decode-only fit is within 1.6 % (mean) of Vidur-composed times on decode-only
    batches where the mixed fit is off by 4.3 % (27 % worst, 25 % too fast for one short decode),
    and decode-only iterations are most of the iterations of a serving run. The price is a step
    at P = 0 -> 1: a batch of one decode plus a 1-token prefill chunk is timed about 2 ms faster
    than the decode alone, shrinking to 0 by D ~ 80 decodes or a ~35-token chunk
    (``benchmarks/fit_cost_models.py`` prints it).
    """

    intercept_ms: float  # a
    prefill_token_ms: float  # b, per prefill token
    decode_ms: float  # c, per decoding sequence
    decode_ctx_ms: float  # d, per context token read by the decodes
    prefill_sq_ms: float = 0.0  # e, per unit of sum(c_i^2)
    prefill_ctx_ms: float = 0.0  # f, per unit of sum(c_i * prior_i)
    decode_only_ms: tuple[float, float, float] | None = None  # (a', c', d') used when P == 0
    name: str = "linear"
    # The same coefficients in seconds, for the hot path.
    _a: float = field(init=False, repr=False, compare=False)
    _b: float = field(init=False, repr=False, compare=False)
    _e: float = field(init=False, repr=False, compare=False)
    _f: float = field(init=False, repr=False, compare=False)
    _c: float = field(init=False, repr=False, compare=False)
    _d: float = field(init=False, repr=False, compare=False)
    _da: float = field(init=False, repr=False, compare=False)
    _dc: float = field(init=False, repr=False, compare=False)
    _dd: float = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        where = f"LinearCostModel({self.name!r})"
        check_positive(f"{where}.intercept_ms", self.intercept_ms)
        for attr in ("prefill_token_ms", "decode_ms", "decode_ctx_ms", "prefill_sq_ms", "prefill_ctx_ms"):
            check_number(f"{where}.{attr}", getattr(self, attr), low=0)
        decode: tuple[float, ...] = (self.intercept_ms, self.decode_ms, self.decode_ctx_ms)
        if self.decode_only_ms is not None:
            if not isinstance(self.decode_only_ms, (tuple, list)) or len(self.decode_only_ms) != 3:
                allowed = "None or (intercept, per decode, per ctx token) in ms"
                raise fail(f"{where}.decode_only_ms", self.decode_only_ms, allowed)
            decode = tuple(self.decode_only_ms)
            object.__setattr__(self, "decode_only_ms", decode)  # a YAML list becomes a hashable tuple
            check_positive(f"{where}.decode_only_ms[0]", decode[0])
            check_number(f"{where}.decode_only_ms[1]", decode[1], low=0)
            check_number(f"{where}.decode_only_ms[2]", decode[2], low=0)
        s = object.__setattr__
        s(self, "_a", self.intercept_ms * 1e-3)
        s(self, "_b", self.prefill_token_ms * 1e-3)
        s(self, "_e", self.prefill_sq_ms * 1e-3)
        s(self, "_f", self.prefill_ctx_ms * 1e-3)
        s(self, "_c", self.decode_ms * 1e-3)
        s(self, "_d", self.decode_ctx_ms * 1e-3)
        s(self, "_da", decode[0] * 1e-3)
        s(self, "_dc", decode[1] * 1e-3)
        s(self, "_dd", decode[2] * 1e-3)

    def iteration_time(
        self, prefill_tokens: int, prefill_sq: int, prefill_ctx: int, num_decodes: int, decode_ctx: int
    ) -> float:
        if prefill_tokens:
            return (
                self._a
                + self._b * prefill_tokens
                + self._e * prefill_sq
                + self._f * prefill_ctx
                + self._c * num_decodes
                + self._d * decode_ctx
            )
        # Same evaluation order as decode_affine, so the two agree bit for bit.
        return self._da + self._dc * num_decodes + self._dd * decode_ctx

    def decode_affine(self, num_decodes: int) -> tuple[float, float]:
        return self._da + self._dc * num_decodes, self._dd


@dataclass(frozen=True, slots=True)
class StaircaseCostModel(CostModel):
    """t_ms = base + step * ceil(b / step_tokens), b = P + D tokens in the batch.

    Li, Dai & Peng's fit for CodeLlama-34B on one A100 (base 11.28 ms, step 35.47 ms every 128
    tokens): the GPU processes tokens in tiles, so time grows in steps, and context length does
    not enter. Vidur's A100 profile of the same model shows the same step at 128 -> 129 tokens
    (51.7 -> 76.1 ms for the non-attention ops alone; ``benchmarks/fit_cost_models.py``).
    """

    base_ms: float = 11.28
    step_ms: float = 35.47
    step_tokens: int = 128
    name: str = "staircase"
    _base: float = field(init=False, repr=False, compare=False)
    _step: float = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        where = f"StaircaseCostModel({self.name!r})"
        check_number(f"{where}.base_ms", self.base_ms, low=0)
        check_positive(f"{where}.step_ms", self.step_ms)
        check_positive(f"{where}.step_tokens", self.step_tokens, integer=True)
        object.__setattr__(self, "_base", self.base_ms * 1e-3)
        object.__setattr__(self, "_step", self.step_ms * 1e-3)

    def iteration_time(
        self, prefill_tokens: int, prefill_sq: int, prefill_ctx: int, num_decodes: int, decode_ctx: int
    ) -> float:
        n = self.step_tokens
        return self._base + self._step * ((prefill_tokens + num_decodes + n - 1) // n)

    def decode_affine(self, num_decodes: int) -> tuple[float, float]:
        return self.iteration_time(0, 0, 0, num_decodes, 0), 0.0


# ---------------------------------------------------------------------------------------------
# Model and GPU specs, KV-cache capacity
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ModelSpec:
    """The model dimensions that set weight memory and KV bytes per token."""

    name: str
    num_layers: int
    num_kv_heads: int
    head_dim: int
    num_params: int  # all weights, embeddings and LM head included
    dtype_bytes: int = 2  # fp16 / bf16

    def __post_init__(self) -> None:
        for attr in ("num_layers", "num_kv_heads", "head_dim", "num_params", "dtype_bytes"):
            check_positive(f"ModelSpec({self.name!r}).{attr}", getattr(self, attr), integer=True)

    @property
    def kv_bytes_per_token(self) -> int:
        """Bytes of K and V cache per token, whole model: 2 x layers x kv_heads x head_dim x bytes."""
        return 2 * self.num_layers * self.num_kv_heads * self.head_dim * self.dtype_bytes

    def kv_bytes_per_token_per_device(self, tensor_parallel: int) -> int:
        """KV bytes per token on one of ``tensor_parallel`` GPUs (a KV head is never split; with
        more GPUs than KV heads the heads are replicated, hence the ceiling, as in Vidur)."""
        heads = -(-self.num_kv_heads // tensor_parallel)
        return 2 * self.num_layers * heads * self.head_dim * self.dtype_bytes


@dataclass(frozen=True)
class GPUSpec:
    """One GPU: its memory and the host<->device bandwidth used to swap KV blocks to CPU."""

    name: str
    memory_bytes: int
    pcie_bytes_per_s: float  # effective, one direction

    def __post_init__(self) -> None:
        check_positive(f"GPUSpec({self.name!r}).memory_bytes", self.memory_bytes, integer=True)
        check_positive(f"GPUSpec({self.name!r}).pcie_bytes_per_s", self.pcie_bytes_per_s)


def kv_capacity_blocks(
    model: ModelSpec,
    gpu: GPUSpec,
    *,
    gpu_memory_utilization: float = 0.9,
    block_size: int = 16,
    tensor_parallel: int = 1,
    max_request_tokens: int | None = 4096,
) -> int:
    """Number of KV blocks of ``block_size`` tokens that fit on the GPU(s), Vidur's way.

    Vidur's ``MemoryPlanner`` (github.com/microsoft/vidur) takes the device memory times
    (1 - memory_margin_fraction = 0.1), subtracts the fp16 weights held by one device and divides
    what is left by the KV bytes of one *maximum-length request* (``max_tokens`` = 4096 tokens of
    KV on each of the device's layers); the whole number of such requests, times
    ``max_tokens // block_size``, is the block count (``BaseReplicaScheduler``). No activation
    memory is reserved. For Llama-2-7B on an 80 GB A100:
    (80 GiB x 0.9 - 2 B x 6.74e9) / (524,288 B x 4096) = 29.7 -> 29 requests -> 29 x 256 = 7,424
    blocks (118,784 tokens), DESIGN.md's figure.

    Two deliberate choices: the weights are all ``model.num_params`` (Vidur counts only the
    per-layer matrices, leaving out the embedding and LM head: 6.48e9 instead of 6.74e9 for
    Llama-2-7B; both give 29 requests), split evenly over ``tensor_parallel`` GPUs; and
    ``max_request_tokens=None`` drops Vidur's rounding down to whole maximum-length requests
    (vLLM-style: every free byte becomes blocks; 7,609 blocks in the example).
    """
    check_number("gpu_memory_utilization", gpu_memory_utilization, low=0, high=1, low_open=True)
    check_positive("block_size", block_size, integer=True)
    check_positive("tensor_parallel", tensor_parallel, integer=True)
    if max_request_tokens is not None:
        check_number("max_request_tokens", max_request_tokens, low=block_size, integer=True)
    usable = gpu.memory_bytes * gpu_memory_utilization
    weights = model.num_params * model.dtype_bytes / tensor_parallel
    per_token = model.kv_bytes_per_token_per_device(tensor_parallel)
    if max_request_tokens is None:
        blocks = int((usable - weights) // (per_token * block_size))
    else:
        requests = int((usable - weights) // (per_token * max_request_tokens))
        blocks = requests * (max_request_tokens // block_size)
    if blocks < 1:
        raise ConfigError(
            f"gpu_memory_utilization={gpu_memory_utilization!r} is invalid: {model.name} on "
            f"{tensor_parallel} x {gpu.name} leaves no room for KV blocks ({weights / 2**30:.1f} GiB of "
            f"weights per GPU vs {usable / 2**30:.1f} GiB usable); expected more memory, a higher "
            "utilisation, more tensor parallelism or a smaller max_request_tokens"
        )
    return blocks


# ---------------------------------------------------------------------------------------------
# Hardware presets
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class HardwarePreset:
    """A model served on ``tensor_parallel`` GPUs of one kind, with its iteration-time model."""

    name: str
    model: ModelSpec
    gpu: GPUSpec
    cost: CostModel
    tensor_parallel: int = 1
    source: str = ""

    def __post_init__(self) -> None:
        for attr, kind in (("model", ModelSpec), ("gpu", GPUSpec), ("cost", CostModel)):
            if not isinstance(getattr(self, attr), kind):
                raise fail(f"HardwarePreset({self.name!r}).{attr}", getattr(self, attr), f"a {kind.__name__}")
        check_positive(f"HardwarePreset({self.name!r}).tensor_parallel", self.tensor_parallel, integer=True)

    def kv_capacity_blocks(
        self, gpu_memory_utilization: float = 0.9, block_size: int = 16, max_request_tokens: int | None = 4096
    ) -> int:
        """KV blocks of the whole engine (see :func:`kv_capacity_blocks`)."""
        return kv_capacity_blocks(
            self.model,
            self.gpu,
            gpu_memory_utilization=gpu_memory_utilization,
            block_size=block_size,
            tensor_parallel=self.tensor_parallel,
            max_request_tokens=max_request_tokens,
        )

    def swap_seconds_per_block(self, block_size: int = 16) -> float:
        """Time to move one KV block between GPU and CPU memory (either direction). With tensor
        parallelism each GPU moves its own shard over its own PCIe link, in parallel."""
        check_positive("block_size", block_size, integer=True)
        shard_bytes = self.model.kv_bytes_per_token_per_device(self.tensor_parallel) * block_size
        return shard_bytes / self.gpu.pcie_bytes_per_s


# Exact parameter counts of the Hugging Face checkpoints (fp16); layer shapes from Vidur's
# model_config.py, confirmed by the n_head / n_kv_head / n_embd columns of its profiling CSVs.
LLAMA2_7B = ModelSpec("Llama-2-7b-hf", num_layers=32, num_kv_heads=32, head_dim=128, num_params=6_738_415_616)
CODELLAMA_34B = ModelSpec(
    "CodeLlama-34b-hf", num_layers=48, num_kv_heads=8, head_dim=128, num_params=33_743_970_304
)
LLAMA2_70B = ModelSpec("Llama-2-70b-hf", num_layers=80, num_kv_heads=8, head_dim=128, num_params=68_976_648_192)

# Memory as in Vidur's device SKU config (total_memory_gb = 80, read as GiB). Host link: A100 SXM4
# has PCIe 4.0 x16 (31.5 GB/s per direction in theory), H100 SXM5 PCIe 5.0 x16 (63 GB/s); we take
# ~80 % of that as the effective pinned-memory copy rate, 25 and 50 GB/s (assumed, not measured).
A100_80GB = GPUSpec("A100-SXM4-80GB", memory_bytes=80 * 2**30, pcie_bytes_per_s=25e9)
H100_80GB = GPUSpec("H100-SXM5-80GB", memory_bytes=80 * 2**30, pcie_bytes_per_s=50e9)
# The 40 GB A100 (SXM4): half the memory, the same PCIe 4.0 link.
A100_40GB = GPUSpec("A100-SXM4-40GB", memory_bytes=40 * 2**30, pcie_bytes_per_s=25e9)

_FIT_SCRIPT = "benchmarks/fit_cost_models.py"
# DESIGN fit "B" and the decode-only fit of Vidur's Llama-2-7B A100 iteration times (4,000 random
# batches timed by Vidur's predictor on its A100 profiles); f = 32 layers x 1.39e-7 ms, the c*kv
# term of the per-layer prefill-attention fit. Re-derived by _FIT_SCRIPT.
_LLAMA2_7B_A100 = LinearCostModel(
    intercept_ms=6.899,
    prefill_token_ms=0.06442,
    decode_ms=0.09929,
    decode_ctx_ms=2.723e-4,
    prefill_sq_ms=4.587e-6,
    prefill_ctx_ms=32 * 1.39e-7,
    decode_only_ms=(9.15, 0.07077, 2.73e-4),
    name="llama2-7b/a100",
)
_PRESETS: dict[str, HardwarePreset] = {
    p.name: p
    for p in (
        HardwarePreset(
            name="llama2-7b/a100",
            model=LLAMA2_7B,
            gpu=A100_80GB,
            cost=_LLAMA2_7B_A100,
            source="Vidur profiling data (github.com/microsoft/vidur, MIT), fitted by " + _FIT_SCRIPT,
        ),
        HardwarePreset(
            name="llama2-7b/a100-40gb",
            model=LLAMA2_7B,
            gpu=A100_40GB,
            # Timing of the 80 GB A100 profile (Vidur profiled only the 80 GB SXM4): the KV capacity
            # is the 40 GB card's (2,816 blocks), but the 40 GB card's HBM2 (1.56 TB/s against the
            # 80 GB card's 2.04 TB/s) makes its memory-bound decodes slower than this model says.
            cost=dataclasses.replace(_LLAMA2_7B_A100, name="llama2-7b/a100-40gb"),
            source="Vidur A100-80GB profiling data (as llama2-7b/a100), KV capacity of a 40 GB A100",
        ),
        HardwarePreset(
            name="llama2-7b/h100",
            model=LLAMA2_7B,
            gpu=H100_80GB,
            # Fitted by _FIT_SCRIPT: non-attention ops from Vidur's
            # data/profiling/compute/h100/meta-llama/Llama-2-7b-hf/mlp.csv; attention = the A100 fits x 0.610
            # for decode (measured H100/A100 ratio of memory-bound ops; HBM ratio 2.039/3.35 = 0.609) and
            # x 0.658 for prefill (FlashAttention-2 reaches ~73 % of A100 and ~35 % of H100 peak).
            cost=LinearCostModel(
                intercept_ms=5.489,
                prefill_token_ms=0.01958,
                decode_ms=0.03586,
                decode_ctx_ms=1.671e-4,
                prefill_sq_ms=3.377e-6,
                prefill_ctx_ms=2.927e-6,
                decode_only_ms=(5.803, 0.03009, 1.675e-4),
                name="llama2-7b/h100",
            ),
            source="Vidur H100 profiling data + A100 attention fits scaled to H100 (" + _FIT_SCRIPT + ")",
        ),
        HardwarePreset(
            name="llama2-70b/a100-tp2",
            model=LLAMA2_70B,
            gpu=A100_80GB,
            tensor_parallel=2,
            # Fitted by _FIT_SCRIPT: non-attention ops from Vidur's
            # data/profiling/compute/a100/meta-llama/Llama-2-70b-hf/mlp.csv (TP2 rows), two all-reduces per
            # layer from data/profiling/network/a100_pairwise_nvlink/all_reduce.csv (+0.02 ms NCCL launch
            # each, Vidur's default), attention fitted to Vidur's real A100 TP2 profile
            # (derived/legacy_attention_Llama-2-70b-hf_a100_tp2_commit-6d98aa8.csv), x1.1 for batched GQA
            # decodes as in Vidur. Vidur's extra 10 % for several prefills in one batch is not modelled.
            cost=LinearCostModel(
                intercept_ms=45.62,
                prefill_token_ms=0.3229,
                decode_ms=0.2804,
                decode_ctx_ms=1.131e-4,
                prefill_sq_ms=9.512e-6,
                prefill_ctx_ms=9.075e-6,
                decode_only_ms=(55.11, 0.1831, 1.153e-4),
                name="llama2-70b/a100-tp2",
            ),
            source="Vidur A100 profiling data for Llama-2-70B, TP2 (" + _FIT_SCRIPT + ")",
        ),
        HardwarePreset(
            name="codellama-34b/a100",
            model=CODELLAMA_34B,
            gpu=A100_80GB,
            cost=StaircaseCostModel(base_ms=11.28, step_ms=35.47, step_tokens=128, name="codellama-34b/a100"),
            source="Li, Dai & Peng (2025), staircase fit for CodeLlama-34B on one A100",
        ),
    )
}


def available_hardware() -> list[str]:
    """Names accepted by :func:`get_hardware`."""
    return sorted(_PRESETS)


def get_hardware(name: str) -> HardwarePreset:
    """The named preset; an unknown name raises :class:`ConfigError` listing the known ones."""
    check_choice("hardware", name, available_hardware())
    return _PRESETS[name]
