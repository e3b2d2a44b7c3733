"""Iteration-time cost models, model and GPU specs, KV-cache capacity and hardware presets.

One place for the hardware arithmetic of the simulator:

* :class:`CostModel` — the time of one forward pass (an *iteration*) of a batch. The engine calls
  :meth:`CostModel.iteration_time` once per simulated iteration, so it is a few float operations;
  :meth:`CostModel.decode_affine` gives the same time for decode-only batches as an affine function
  of the total context, so the engine can jump over many decode iterations in closed form.
* :class:`ProfileCostModel` — Vidur's execution-time sum (non-attention ops by token count, decode
  and prefill attention, tensor-parallel all-reduces), precomputed from Vidur's profiling data into
  ``data/vidur_profile_costs.json`` (``benchmarks/fit_cost_models.py --write-table``) and evaluated
  in O(1): the default of every profiled model, GPU and TP degree.
* :class:`LinearCostModel` — t = a + b*P + e*sum(c_i^2) + f*sum(c_i*prior_i) + c*D + d*KV, fitted
  to the same sums (``benchmarks/fit_cost_models.py``): the ``-poly`` presets.
* :class:`StaircaseCostModel` — Li, Dai & Peng (2025), "Throughput-Optimal Scheduling Algorithms
  for LLM Inference and AI Agents": t(b) = 11.28 + 35.47 * ceil(b / 128) ms for CodeLlama-34B on
  one A100, b = tokens in the batch.
* :class:`ModelSpec`, :class:`GPUSpec`, :func:`kv_capacity_blocks` — the paged KV cache's size,
  computed as Vidur's memory planner does (``vidur/scheduler/utils/memory_planner.py`` and
  ``base_replica_scheduler.py`` in github.com/microsoft/vidur).
* :class:`HardwarePreset`, :func:`get_hardware` — named (model, GPU, cost model) bundles,
  ``<model>/<gpu>[-tpN]`` (:func:`describe_hardware` lists them with their KV capacity and source).

Units: the cost models take coefficients in milliseconds (as papers and profiles quote them)
and return seconds.
"""

from __future__ import annotations

import abc
import functools
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

from .engine_config import EngineConfig
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
      including the token being processed);
    * ``prefill_prior`` = sum of the prior_i (optional, -1 when not known; the engine passes it):
      Vidur times several prefills of one batch from it (:class:`ProfileCostModel`).

    The engine never times an empty batch; what a model returns for one is not meaningful.
    """

    __slots__ = ()
    name: str

    @abc.abstractmethod
    def iteration_time(
        self,
        prefill_tokens: int,
        prefill_sq: int,
        prefill_ctx: int,
        num_decodes: int,
        decode_ctx: int,
        prefill_prior: int = -1,
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
        self,
        prefill_tokens: int,
        prefill_sq: int,
        prefill_ctx: int,
        num_decodes: int,
        decode_ctx: int,
        prefill_prior: int = -1,
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
        object.__setattr__(self, "step_tokens", check_positive(f"{where}.step_tokens", self.step_tokens, integer=True))
        object.__setattr__(self, "_base", self.base_ms * 1e-3)
        object.__setattr__(self, "_step", self.step_ms * 1e-3)

    def iteration_time(
        self,
        prefill_tokens: int,
        prefill_sq: int,
        prefill_ctx: int,
        num_decodes: int,
        decode_ctx: int,
        prefill_prior: int = -1,
    ) -> float:
        n = self.step_tokens
        return self._base + self._step * ((prefill_tokens + num_decodes + n - 1) // n)

    def decode_affine(self, num_decodes: int) -> tuple[float, float]:
        return self.iteration_time(0, 0, 0, num_decodes, 0), 0.0


@dataclass(frozen=True, slots=True)
class ProfileCostModel(CostModel):
    """Vidur's execution-time sum, precomputed: t = linear(P + D) + decode attention + prefill attention.

    Vidur (github.com/microsoft/vidur) times an iteration as the per-layer times of its operators,
    summed over the layers: the non-attention ops (projections, MLP, norms; tensor-parallel
    all-reduces) depend only on the batch's token count T = P + D, rounded up to a multiple of
    8; decode attention on the number of decodes B and their mean context m; prefill attention on
    the chunk. ``benchmarks/fit_cost_models.py --write-table`` composes these from Vidur's profiles
    into ``data/vidur_profile_costs.json``; this class evaluates them in O(1):

    * ``linear_ms[i]``: whole-model non-attention time at 8*i tokens (i >= 1; entry 0 repeats the
      8-token value); beyond the table (Vidur's profiles end at 4,096 or 32,768 tokens) it grows
      by the mean slope of the table's last quarter, where the GEMMs are compute-bound;
    * decode attention ``(a + b*B + c*B*m' + d*m') * (1 + decode_batching_overhead if B > 1)``,
      m' = m + (g - 1) / 2: Vidur rounds the mean context up to the granularity g = 64 tokens, on
      average (g - 1) / 2 more; the expected value keeps the time affine in the context for a
      fixed B (``decode_affine``), so at one context the rounding is off by up to half a granule;
    * prefill attention ``p0 + p1*c + p2*c^2 + p3*c*kv`` for one chunk of c tokens after kv prior
      tokens (rounded up to g, exactly as Vidur). Vidur times several prefills in a batch as one
      chunk of sqrt(sum c_i^2) tokens after the sum of their priors (each rounded up to g; here
      the sum + (g - 1) / 2, exact when one chunk has a prior, the usual case), x (1 +
      ``prefill_batching_overhead``). Without ``prefill_prior`` the sum of the priors is
      estimated as sum(c_i * prior_i) / sqrt(sum c_i^2) (``benchmarks/bench_cost.py`` measures
      both).
    """

    linear_ms: tuple[float, ...]
    decode_ms: tuple[float, float, float, float]  # (a, b, c, d), whole model
    prefill_ms: tuple[float, float, float, float]  # (p0, p1, p2, p3), whole model
    decode_batching_overhead: float = 0.0
    prefill_batching_overhead: float = 0.0
    kv_granularity: int = 64
    name: str = "profile"
    # seconds, for the hot path
    _lin: tuple[float, ...] = field(init=False, repr=False, compare=False)
    _lin_slope: float = field(init=False, repr=False, compare=False)
    _dec: tuple[float, float, float, float] = field(init=False, repr=False, compare=False)
    _pre: tuple[float, float, float, float] = field(init=False, repr=False, compare=False)
    _half: float = field(init=False, repr=False, compare=False)
    _attn: tuple[tuple[float, float], ...] = field(init=False, repr=False, compare=False)  # decode attention by D
    _affine: tuple[tuple[float, float], ...] = field(init=False, repr=False, compare=False)  # decode_affine by D

    def __post_init__(self) -> None:
        where = f"ProfileCostModel({self.name!r})"
        s = object.__setattr__
        for attr, size in (("linear_ms", None), ("decode_ms", 4), ("prefill_ms", 4)):
            value = getattr(self, attr)
            if not isinstance(value, (tuple, list)) or (size is not None and len(value) != size) or len(value) < 2:
                raise fail(f"{where}.{attr}", value, f"a sequence of {size or 'at least 2'} numbers (ms)")
            for i, x in enumerate(value):
                check_number(f"{where}.{attr}[{i}]", x, low=0)
            s(self, attr, tuple(float(x) for x in value))  # a YAML list becomes a hashable tuple
        for i, x in enumerate(self.linear_ms):
            check_positive(f"{where}.linear_ms[{i}]", x)
        check_number(f"{where}.decode_batching_overhead", self.decode_batching_overhead, low=0)
        check_number(f"{where}.prefill_batching_overhead", self.prefill_batching_overhead, low=0)
        object.__setattr__(self, "kv_granularity", check_positive(f"{where}.kv_granularity", self.kv_granularity, integer=True))
        lin = tuple(x * 1e-3 for x in self.linear_ms)
        s(self, "_lin", lin)
        k = 3 * (len(lin) - 1) // 4  # beyond the table: the mean slope of its last quarter (compute-bound)
        s(self, "_lin_slope", max((lin[-1] - lin[k]) / max(len(lin) - 1 - k, 1), 0.0))
        s(self, "_dec", tuple(x * 1e-3 for x in self.decode_ms))
        s(self, "_pre", tuple(x * 1e-3 for x in self.prefill_ms))
        s(self, "_half", (self.kv_granularity - 1) / 2.0)
        s(self, "_attn", tuple(self._decode_attention(d) for d in range(_CACHED_DECODES)))
        s(self, "_affine", tuple((self._linear(d) + b, c) for d, (b, c) in enumerate(self._attn)))

    def _linear(self, tokens: int) -> float:
        i = (tokens + 7) >> 3
        lin = self._lin
        if i < len(lin):
            return lin[i]
        return lin[-1] + self._lin_slope * (i - len(lin) + 1)

    def _decode_attention(self, num_decodes: int) -> tuple[float, float]:
        """Decode attention of ``num_decodes`` decodes as (base_s, per_ctx_s), affine in the context."""
        if num_decodes == 0:
            return 0.0, 0.0
        a, b, c, d = self._dec
        h = self._half
        scale = 1.0 + self.decode_batching_overhead if num_decodes > 1 else 1.0
        return scale * (a + (b + c * h) * num_decodes + d * h), scale * (c + d / num_decodes)

    def iteration_time(
        self,
        prefill_tokens: int,
        prefill_sq: int,
        prefill_ctx: int,
        num_decodes: int,
        decode_ctx: int,
        prefill_prior: int = -1,
    ) -> float:
        if not prefill_tokens:
            base, per_ctx = self._affine[num_decodes] if num_decodes < _CACHED_DECODES else self.decode_affine(num_decodes)
            return base + per_ctx * decode_ctx
        lin = self._lin
        i = (prefill_tokens + num_decodes + 7) >> 3
        t = lin[i] if i < len(lin) else lin[-1] + self._lin_slope * (i - len(lin) + 1)
        p0, p1, p2, p3 = self._pre
        if prefill_tokens * prefill_tokens == prefill_sq:  # one chunk: Vidur's rule exactly
            g = self.kv_granularity
            kv = -(-(prefill_ctx // prefill_tokens) // g) * g
            t += p0 + p1 * prefill_tokens + p2 * prefill_sq + p3 * prefill_tokens * kv
        else:  # several chunks: one of sqrt(sum c_i^2) tokens after the sum of the priors
            c = math.sqrt(prefill_sq)
            if prefill_prior >= 0:
                kv = prefill_prior + self._half if prefill_prior else 0.0
            else:
                kv = prefill_ctx / c + self._half if prefill_ctx else 0.0
            t += (p0 + p1 * c + p2 * prefill_sq + p3 * c * kv) * (1.0 + self.prefill_batching_overhead)
        if num_decodes:
            base, per_ctx = self._attn[num_decodes] if num_decodes < _CACHED_DECODES else self._decode_attention(num_decodes)
            t += base + per_ctx * decode_ctx
        return t

    def decode_affine(self, num_decodes: int) -> tuple[float, float]:
        if num_decodes < _CACHED_DECODES:
            return self._affine[num_decodes]
        base, per_ctx = self._decode_attention(num_decodes)
        return self._linear(num_decodes) + base, per_ctx


_CACHED_DECODES = 1024  # ProfileCostModel precomputes the decode terms of batches of fewer decodes


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
            object.__setattr__(self, attr, check_positive(f"ModelSpec({self.name!r}).{attr}", getattr(self, attr), integer=True))

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
        object.__setattr__(self, "memory_bytes", check_positive(f"GPUSpec({self.name!r}).memory_bytes", self.memory_bytes, integer=True))
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
    blocks (118,784 tokens).

    Two deliberate choices: the weights are all ``model.num_params`` (Vidur counts only the
    per-layer matrices, leaving out the embedding and LM head: 6.48e9 instead of 6.74e9 for
    Llama-2-7B; both give 29 requests), split evenly over ``tensor_parallel`` GPUs; and
    ``max_request_tokens=None`` drops Vidur's rounding down to whole maximum-length requests
    (vLLM-style: every free byte becomes blocks; 7,609 blocks in the example).
    """
    check_number("gpu_memory_utilization", gpu_memory_utilization, low=0, high=1, low_open=True)
    block_size = check_positive("block_size", block_size, integer=True)
    tensor_parallel = check_positive("tensor_parallel", tensor_parallel, integer=True)
    if max_request_tokens is not None:
        max_request_tokens = check_number("max_request_tokens", max_request_tokens, low=block_size, integer=True)
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
        object.__setattr__(self, "tensor_parallel", check_positive(f"HardwarePreset({self.name!r}).tensor_parallel", self.tensor_parallel, integer=True))

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
        block_size = check_positive("block_size", block_size, integer=True)
        shard_bytes = self.model.kv_bytes_per_token_per_device(self.tensor_parallel) * block_size
        return shard_bytes / self.gpu.pcie_bytes_per_s


# Exact parameter counts of the Hugging Face checkpoints (fp16); layer shapes from Vidur's
# model_config.py, confirmed by the n_head / n_kv_head / n_embd columns of its profiling CSVs.
LLAMA2_7B = ModelSpec("Llama-2-7b-hf", num_layers=32, num_kv_heads=32, head_dim=128, num_params=6_738_415_616)
CODELLAMA_34B = ModelSpec(
    "CodeLlama-34b-hf", num_layers=48, num_kv_heads=8, head_dim=128, num_params=33_743_970_304
)
LLAMA2_70B = ModelSpec("Llama-2-70b-hf", num_layers=80, num_kv_heads=8, head_dim=128, num_params=68_976_648_192)
LLAMA3_8B = ModelSpec("Meta-Llama-3-8B", num_layers=32, num_kv_heads=8, head_dim=128, num_params=8_030_261_248)
LLAMA3_70B = ModelSpec("Meta-Llama-3-70B", num_layers=80, num_kv_heads=8, head_dim=128, num_params=70_553_706_496)
QWEN_72B = ModelSpec("Qwen-72B", num_layers=80, num_kv_heads=64, head_dim=128, num_params=72_287_920_128)
INTERNLM_20B = ModelSpec("internlm-20b", num_layers=60, num_kv_heads=40, head_dim=128, num_params=20_088_714_240)
PHI_2 = ModelSpec("phi-2", num_layers=32, num_kv_heads=32, head_dim=80, num_params=2_779_683_840)
#: The profiled models by their preset name (``<model>/<gpu>[-tpN]``).
MODEL_SPECS: dict[str, ModelSpec] = {
    "llama2-7b": LLAMA2_7B,
    "llama2-70b": LLAMA2_70B,
    "llama3-8b": LLAMA3_8B,
    "llama3-70b": LLAMA3_70B,
    "codellama-34b": CODELLAMA_34B,
    "qwen-72b": QWEN_72B,
    "internlm-20b": INTERNLM_20B,
    "phi-2": PHI_2,
}

# Memory as in Vidur's device SKU config (total_memory_gb = 80, read as GiB). Host link: A100 SXM4
# has PCIe 4.0 x16 (31.5 GB/s per direction in theory), H100 SXM5 PCIe 5.0 x16 (63 GB/s); we take
# ~80 % of that as the effective pinned-memory copy rate, 25 and 50 GB/s (assumed, not measured).
A100_80GB = GPUSpec("A100-SXM4-80GB", memory_bytes=80 * 2**30, pcie_bytes_per_s=25e9)
H100_80GB = GPUSpec("H100-SXM5-80GB", memory_bytes=80 * 2**30, pcie_bytes_per_s=50e9)
# The 40 GB A100 (SXM4): half the memory, the same PCIe 4.0 link.
A100_40GB = GPUSpec("A100-SXM4-40GB", memory_bytes=40 * 2**30, pcie_bytes_per_s=25e9)
# A40: 48 GB GDDR6, of which Vidur's device SKU config counts 45 (as GiB); PCIe 4.0 x16 as the A100.
A40 = GPUSpec("A40-48GB", memory_bytes=45 * 2**30, pcie_bytes_per_s=25e9)
#: The profiled GPUs by their preset name.
GPU_SPECS: dict[str, GPUSpec] = {"a100": A100_80GB, "h100": H100_80GB, "a40": A40, "a100-40gb": A100_40GB}

_FIT_SCRIPT = "benchmarks/fit_cost_models.py"
# The whole-iteration fit "B" and the decode-only fit of Vidur's Llama-2-7B A100 iteration times (4,000 random
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
    name="llama2-7b/a100-poly",
)
# The polynomial presets (closed-form fits to the same profile-based sums; before the
# profile-driven presets these were the defaults of their names, now they carry "-poly").
_POLY_PRESETS = (
    HardwarePreset(
        name="llama2-7b/a100-poly",
        model=LLAMA2_7B,
        gpu=A100_80GB,
        cost=_LLAMA2_7B_A100,
        source="Vidur profiling data (github.com/microsoft/vidur, MIT), polynomial fitted by " + _FIT_SCRIPT,
    ),
    HardwarePreset(
        name="llama2-7b/h100-poly",
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
            name="llama2-7b/h100-poly",
        ),
        source="Vidur H100 profiling data + A100 attention fits scaled to H100, polynomial (" + _FIT_SCRIPT + ")",
    ),
    HardwarePreset(
        name="llama2-70b/a100-tp2-poly",
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
            name="llama2-70b/a100-tp2-poly",
        ),
        source="Vidur A100 profiling data for Llama-2-70B, TP2, polynomial (" + _FIT_SCRIPT + ")",
    ),
    HardwarePreset(
        name="codellama-34b/a100",
        model=CODELLAMA_34B,
        gpu=A100_80GB,
        cost=StaircaseCostModel(base_ms=11.28, step_ms=35.47, step_tokens=128, name="codellama-34b/a100"),
        source="Li, Dai & Peng (2025), staircase fit for CodeLlama-34B on one A100",
    ),
)

#: The profile-driven presets' tables (``ProfileCostModel``), written by ``_FIT_SCRIPT --write-table``.
PROFILE_TABLE = Path(__file__).resolve().parent / "data" / "vidur_profile_costs.json"
# A profile-driven preset whose natural name is taken: CodeLlama-34B on one A100 keeps the name
# for Li, Dai & Peng's staircase, which the validation suite reproduces.
_RENAMED = {"codellama-34b/a100": "codellama-34b/a100-profile"}
# Profiles of the 80 GB A100 served with a 40 GB card's memory (Vidur profiled only the 80 GB SXM4;
# the 40 GB card's HBM2, 1.56 TB/s against 2.04 TB/s, makes memory-bound decodes slower than this).
_A100_40GB_VARIANTS = ("llama2-7b/a100", "llama3-8b/a100")


def _on_grid(grid: list[int], values: list[float], step: int) -> list[float]:
    """``values`` (on the increasing token counts ``grid``) interpolated linearly at step*i for
    i = 0 .. grid[-1] // step, entry 0 taken at ``step`` tokens (clamped below grid[0])."""
    out: list[float] = []
    j = 0
    for i in range(grid[-1] // step + 1):
        x = max(i, 1) * step
        while j + 1 < len(grid) - 1 and grid[j + 1] < x:
            j += 1
        x0, x1 = grid[j], grid[j + 1]
        w = min(max((x - x0) / (x1 - x0), 0.0), 1.0)
        out.append(values[j] + w * (values[j + 1] - values[j]))
    return out


@functools.cache
def _profile_entries() -> dict[str, tuple[dict, GPUSpec, str]]:
    """The profile-driven presets by name: (table entry, GPU, source); a table is expanded only
    when its preset is asked for (a simulation needs one, not all of them)."""
    data = json.loads(PROFILE_TABLE.read_text())
    entries = {}
    for entry in data["presets"]:
        model, gpu, tp = entry["model"], entry["gpu"], int(entry["tensor_parallel"])
        name = f"{model}/{gpu}" + (f"-tp{tp}" if tp > 1 else "")
        name = _RENAMED.get(name, name)
        kind = "real" if entry["source"]["attention"].startswith("real") else "derived"
        source = f"Vidur profiles, {gpu.upper()} TP{tp} (profile-driven; attention {kind}, see {PROFILE_TABLE.name})"
        full = dict(entry, grid=data["grids"][entry["grid"]], token_round=data["token_round"])
        full["kv_granularity"] = data["kv_granularity"]
        entries[name] = (full, GPU_SPECS[gpu], source)
        if name in _A100_40GB_VARIANTS:
            entries[name + "-40gb"] = (full, A100_40GB, source + ", KV capacity of a 40 GB A100")
    return entries


def _profile_preset(name: str) -> HardwarePreset:
    entry, gpu, source = _profile_entries()[name]
    cost = ProfileCostModel(
        linear_ms=tuple(_on_grid(entry["grid"], entry["linear_ms"], int(entry["token_round"]))),
        decode_ms=tuple(entry["decode_ms"]),
        prefill_ms=tuple(entry["prefill_ms"]),
        decode_batching_overhead=float(entry["decode_batching_overhead"]),
        prefill_batching_overhead=float(entry["prefill_batching_overhead"]),
        kv_granularity=int(entry["kv_granularity"]),
        name=name,
    )
    return HardwarePreset(name, MODEL_SPECS[entry["model"]], gpu, cost, int(entry["tensor_parallel"]), source)


_POLY_BY_NAME = {p.name: p for p in _POLY_PRESETS}


@functools.cache
def _names() -> tuple[str, ...]:
    profiled = _profile_entries()
    twice = set(profiled) & set(_POLY_BY_NAME)
    if twice:  # pragma: no cover - guarded by the tests
        raise RuntimeError(f"hardware presets defined twice: {sorted(twice)}")
    return tuple(sorted([*_POLY_BY_NAME, *profiled]))


@functools.cache
def _preset(name: str) -> HardwarePreset:
    return _POLY_BY_NAME[name] if name in _POLY_BY_NAME else _profile_preset(name)


def available_hardware() -> list[str]:
    """Names accepted by :func:`get_hardware`."""
    return list(_names())


def get_hardware(name: str) -> HardwarePreset:
    """The named preset; an unknown name raises :class:`ConfigError` listing the known ones."""
    if name not in _POLY_BY_NAME and name not in _profile_entries():
        check_choice("hardware", name, available_hardware())
    return _preset(name)


def describe_hardware() -> str:
    """One line per preset: name, GPUs, KV capacity (Vidur's planner, 16-token blocks) and source."""
    lines = [f"{'preset':28s} {'GPUs':>4s} {'KV blocks':>9s}  source"]
    for name in available_hardware():
        p = get_hardware(name)
        lines.append(f"{name:28s} {p.tensor_parallel:4d} {p.kv_capacity_blocks():9,d}  {p.source}")
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------------
# Hardware resolution: what an engine runs on


@dataclass(frozen=True)
class ResolvedHardware:
    """What the engine needs from a hardware preset (or a custom cost model)."""

    cost: CostModel
    num_blocks: int
    swap_block_bytes: float
    swap_seconds_per_block: float
    kv_bytes_per_block: float


def resolve_hardware(engine: EngineConfig, cost_model: CostModel | None = None) -> ResolvedHardware:
    """Cost model and KV capacity of ``engine`` (a custom ``cost_model`` replaces the preset's)."""
    hw = get_hardware(engine.hardware)
    B = engine.block_size
    if engine.num_gpu_blocks is not None:
        num_blocks = engine.num_gpu_blocks
    else:
        num_blocks = hw.kv_capacity_blocks(gpu_memory_utilization=engine.gpu_memory_utilization, block_size=B)
        if num_blocks < 1:
            raise ConfigError(
                f"gpu_memory_utilization={engine.gpu_memory_utilization!r} leaves no KV cache for "
                f"hardware={engine.hardware!r}: expected a larger fraction or an explicit num_gpu_blocks"
            )
    return ResolvedHardware(
        cost=cost_model if cost_model is not None else hw.cost,
        num_blocks=int(num_blocks),
        swap_block_bytes=float(hw.model.kv_bytes_per_token_per_device(hw.tensor_parallel) * B),
        swap_seconds_per_block=hw.swap_seconds_per_block(B),
        kv_bytes_per_block=float(hw.model.kv_bytes_per_token * B),
    )


def lone_request_seconds(cost: CostModel, budget: int, prompt: int, output: int) -> float:
    """Latency of one request alone on an empty engine: its prompt prefilled in chunks of the token
    budget ``budget`` (one chunk when it fits), the last chunk emitting the first token, then one
    decode per further output token (the default reward scales of the environments)."""
    prompt, output = max(prompt, 1), max(output, 1)
    t, done = 0.0, 0
    while done < prompt:
        chunk = min(budget, prompt - done)
        t += cost.iteration_time(chunk, chunk * chunk, chunk * done, 0, 0)
        done += chunk
    base, per_ctx = cost.decode_affine(1)
    steps = output - 1  # the prefill's last iteration emits the first token
    return t + steps * base + per_ctx * (steps * (prompt + 1) + steps * (steps - 1) / 2)
