"""The engine's configuration (kept out of the compiled engine module so it pickles everywhere).

See :mod:`llmsched_env.sim.engine` for what each rule and limit means.
"""

from __future__ import annotations

from dataclasses import dataclass

from .validation import ConfigError, check_choice, check_fraction, check_nonnegative, check_number, check_positive

BATCHING_RULES = ("sarathi", "orca", "vllm", "static")


@dataclass(frozen=True)
class EngineConfig:
    """One inference engine (one GPU or one tensor-parallel group).

    Attributes:
        hardware: model/GPU preset giving the cost model and the KV capacity (see ``cost.py``).
        batching: batching rule, one of ``sarathi``, ``orca``, ``vllm``, ``static``.
        max_num_seqs: batch slots (vLLM's ``max_num_seqs``).
        max_num_batched_tokens: token budget per iteration (decode = 1, prefill chunk = its length).
        block_size: tokens per KV block.
        num_gpu_blocks: KV capacity in blocks; ``None`` derives it from the hardware preset and
            ``gpu_memory_utilization``.
        gpu_memory_utilization: fraction of GPU memory the engine may use (vLLM's default 0.9).
        watermark: fraction of KV blocks an admission must leave free (vLLM: 0.01).
        admission_preemption: whether a waiting (or swapped) request may preempt lower-priority KV
            holders to be admitted. False (default): admission only takes free blocks, and only a
            scheduled request whose context grows preempts, as in vLLM V1 and SGLang. True: vLLM
            V0's priority scheduling (``_schedule_priority_preemption``), where a waiting request
            of higher priority evicts running ones to get in; with recompute preemption and long
            prompts this makes preemptive size-based policies thrash (see the README).
        preemption_mode: default mode, ``recompute`` (vLLM's default), ``swap`` or ``restart``.
        swap_space_gib: CPU swap space for ``swap`` preemption, GiB (vLLM's default 4).
        fast_forward: jump over stretches of identical decode-only iterations (False: step one
            iteration at a time; same results, used as the reference in tests).
        enable_prefix_caching: share the KV of common prompt prefixes between requests and keep
            it cached after they leave, evicted least recently used (vLLM's automatic prefix
            caching; see ``prefix_cache.py``). Needs requests with hash chains (workload
            ``prefix``, or a Mooncake trace); off by default.
        padded_prefill: ``vllm`` rule only: vLLM V0's padded prefill batches, as Vidur's vLLM
            scheduler builds them: a prefill batch of n prompts, the longest of L tokens, needs
            n x L <= ``max_num_batched_tokens`` (V0 pads every prompt to the longest); admission
            stops at the first prompt that would break it. False (default): prompts fill the
            budget by their sum.
        livelock_preemptions: every this many preemptions per request in the system with no
            request finishing, check that the requests were served further than before, and stop
            the run as a livelock if not (requests evicting each other in turn and losing their
            work; see ``engine.py``); 0 never checks. The heuristics stay below 1 preemption per
            request between completions on every scenario.
    """

    hardware: str = "llama2-7b/a100"
    batching: str = "sarathi"
    max_num_seqs: int = 256
    max_num_batched_tokens: int = 2048
    block_size: int = 16
    num_gpu_blocks: int | None = None
    gpu_memory_utilization: float = 0.9
    watermark: float = 0.01
    admission_preemption: bool = False
    preemption_mode: str = "recompute"
    swap_space_gib: float = 4.0
    fast_forward: bool = True
    enable_prefix_caching: bool = False
    padded_prefill: bool = False
    livelock_preemptions: int = 100

    def __post_init__(self) -> None:
        if not isinstance(self.hardware, str) or not self.hardware:
            raise ConfigError(f"hardware={self.hardware!r} is invalid: expected a preset name such as 'llama2-7b/a100'")
        check_choice("batching", self.batching, BATCHING_RULES)
        object.__setattr__(self, "max_num_seqs", check_positive("max_num_seqs", self.max_num_seqs, integer=True))
        object.__setattr__(self, "max_num_batched_tokens", check_positive("max_num_batched_tokens", self.max_num_batched_tokens, integer=True))
        object.__setattr__(self, "block_size", check_positive("block_size", self.block_size, integer=True))
        if self.num_gpu_blocks is not None:
            object.__setattr__(self, "num_gpu_blocks", check_positive("num_gpu_blocks", self.num_gpu_blocks, integer=True))
        check_fraction("gpu_memory_utilization", self.gpu_memory_utilization, low_open=True)
        check_number("watermark", self.watermark, low=0, high=1, high_open=True)
        if not isinstance(self.admission_preemption, bool):
            raise ConfigError(f"admission_preemption={self.admission_preemption!r} is invalid: expected true or false")
        check_choice("preemption_mode", self.preemption_mode, ("recompute", "swap", "restart"))
        check_nonnegative("swap_space_gib", self.swap_space_gib)
        if not isinstance(self.fast_forward, bool):
            raise ConfigError(f"fast_forward={self.fast_forward!r} is invalid: expected true or false")
        if not isinstance(self.enable_prefix_caching, bool):
            raise ConfigError(f"enable_prefix_caching={self.enable_prefix_caching!r} is invalid: expected true or false")
        if not isinstance(self.padded_prefill, bool):
            raise ConfigError(f"padded_prefill={self.padded_prefill!r} is invalid: expected true or false")
        object.__setattr__(self, "livelock_preemptions", check_nonnegative("livelock_preemptions", self.livelock_preemptions, integer=True))
        if self.padded_prefill and self.batching != "vllm":
            raise ConfigError(
                f"padded_prefill=True is invalid with batching={self.batching!r}: only the vllm rule pads prefill "
                "batches; expected padded_prefill=false or batching='vllm'"
            )
