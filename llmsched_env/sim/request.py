"""Requests: the arrays a workload produces and the engine's per-request state machine.

State machine::

    WAITING --admit--> RUNNING <--> PAUSED --finish--> FINISHED
       ^                 |  |
       |   recompute /   |  | swap
       +---- restart ----+  v
                          SWAPPED --swap in--> RUNNING

* ``WAITING``: holds no KV; queued for (re)admission. A new arrival, or a request preempted with
  ``recompute`` or ``restart``.
* ``RUNNING``: holds KV and was in the last iteration's batch.
* ``PAUSED``: holds KV but was left out of the last batch (batch slots or token budget went to
  higher-priority requests). Pausing frees nothing.
* ``SWAPPED``: its KV lives in CPU swap space (preempted with ``swap``).
* ``FINISHED``: produced all its output tokens; its KV is freed.
* ``REJECTED``: could never be served (its KV would not fit in the whole cache, or its prompt
  exceeds the token budget of a batching rule that cannot chunk). Counted, never looped on.

Token accounting. ``kv_tokens`` is the number of tokens whose KV is held. A prefill processes
``prefill_target`` tokens (the prompt, or prompt plus already-generated tokens after a
recompute preemption) in one or more chunks; the iteration that completes it emits one output
token. Each decode iteration processes the last emitted token (adding it to the KV) and emits the
next, so while decoding ``kv_tokens == prompt_len + generated - 1``. A request finishes in the
iteration that emits its ``output_len``-th token.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass, field

import numpy as np

NAN = math.nan


class RequestState(enum.IntEnum):
    WAITING = 0
    RUNNING = 1
    PAUSED = 2
    SWAPPED = 3
    FINISHED = 4
    REJECTED = 5


class PreemptionMode(enum.IntEnum):
    """How a preempted request gives up its KV."""

    RECOMPUTE = 0  # free the KV; prefill prompt + generated tokens again (vLLM's default)
    SWAP = 1  # move the KV to CPU swap space over PCIe; swap back in later
    RESTART = 2  # discard the KV and the generated tokens; start from scratch

    @classmethod
    def parse(cls, value: "str | int | PreemptionMode", field: str = "preemption_mode") -> "PreemptionMode":
        from .validation import fail

        if isinstance(value, PreemptionMode):
            return value
        if isinstance(value, str) and value.upper() in cls.__members__:
            return cls[value.upper()]
        if isinstance(value, int) and not isinstance(value, bool) and value in (0, 1, 2):
            return cls(value)
        raise fail(field, value, "one of 'recompute', 'swap', 'restart'")


@dataclass
class RequestBatch:
    """A block of consecutive requests of a workload, as parallel arrays (one row per request).

    Produced by the workload generators and trace readers; predictors fill the prediction
    fields. Arrival times are absolute (seconds from the start of the run) and nondecreasing.
    """

    arrival_time: np.ndarray  # float64 (n,) seconds
    prompt_len: np.ndarray  # int64 (n,) >= 1
    output_len: np.ndarray  # int64 (n,) >= 1, the true output length (hidden from policies)
    # Filled by a predictor (see predictors.py); None until then.
    predicted_len: np.ndarray | None = None  # float64 (n,) initial predicted total output length
    # Refining predictors: request i's refreshed predictions of the *remaining* output length are
    # refresh_values[refresh_offsets[i]:refresh_offsets[i+1]], the k-th one (k = 1, 2, ...) made
    # once k * refresh_every tokens have been generated.
    refresh_offsets: np.ndarray | None = None  # int64 (n + 1,)
    refresh_values: np.ndarray | None = None  # float64 (total refreshes,)
    first_id: int = 0  # id of row 0; ids are consecutive
    # Prefix caching (see prefix_cache.py): request i's hash chain is
    # block_hash_values[block_hash_offsets[i]:block_hash_offsets[i+1]], one value per block of
    # block_hash_size tokens identifying the whole prefix up to that block's end; None: no chains.
    block_hash_offsets: np.ndarray | None = None  # int64 (n + 1,)
    block_hash_values: np.ndarray | None = None  # int64 (total blocks,)
    block_hash_size: int = 16  # tokens per hashed block (Mooncake traces: 512)
    # Request classes (``WorkloadConfig.class_names()``; -1: no class) and each request's SLO
    # targets (seconds, inf: none), filled from the run's SLO classes (see ``sim.api``).
    slo_class: np.ndarray | None = None  # int64 (n,)
    ttft_slo_s: np.ndarray | None = None  # float64 (n,)
    tpot_slo_s: np.ndarray | None = None  # float64 (n,)

    def __len__(self) -> int:
        return int(self.arrival_time.shape[0])


class Request:
    """One request inside the engine. Policies read it; only the engine writes it.

    Public attributes a policy may read: ``id``, ``arrival``, ``prompt_len``, ``state``,
    ``generated``, ``kv_tokens``, ``prefill_target``, ``blocks``, ``preemptions``,
    ``predicted_output`` (the predictor's current estimate of the total output length),
    ``initial_prediction``, ``restart_preemptions``, ``discarded_tokens`` (output tokens lost to
    restarts; ``generated + discarded_tokens`` is the service it has had), ``first_scheduled``, ``first_token_time``, ``slo_class`` (index of
    its request class, -1 for none), ``ttft_slo_s`` and ``tpot_slo_s`` (its SLO targets in
    seconds, ``inf`` when it has none), ``held`` (not admissible until released: see
    :meth:`~llmsched_env.sim.engine.Engine.hold`) and ``meta`` (free for the caller, e.g. the
    workflow a call belongs to). ``output_len`` is the true output length: only oracle policies
    may use it. The underscore-prefixed slots are the engine's bookkeeping for its lazy counters,
    not part of this view.
    """

    __slots__ = (
        "id",
        "arrival",
        "prompt_len",
        "output_len",
        "state",
        "prefill_target",
        "kv_tokens",
        "generated",
        "blocks",
        "swap_blocks",
        "priority",
        "predicted_output",
        "initial_prediction",
        "refresh_values",
        "refresh_index",
        "first_scheduled",
        "first_token_time",
        "finish_time",
        "preemptions",
        "recompute_preemptions",
        "swap_preemptions",
        "restart_preemptions",
        "recomputed_tokens",
        "discarded_tokens",
        "peak_generated",
        "swapped_blocks",
        "_mark",
        "_steady",
        "_synced",
        "_kv_offset",
        "_gen_offset",
        "_stamp",
        "meta",
        "held",
        "block_hashes",
        "cache_refs",
        "slo_class",
        "ttft_slo_s",
        "tpot_slo_s",
    )

    def __init__(
        self,
        rid: int,
        arrival: float,
        prompt_len: int,
        output_len: int,
        predicted_output: float,
        refresh_values: list[float] | None = None,
        slo_class: int = -1,
        ttft_slo_s: float = math.inf,
        tpot_slo_s: float = math.inf,
    ) -> None:
        self.id = rid
        self.arrival = arrival
        self.prompt_len = prompt_len
        self.output_len = output_len
        self.state = RequestState.WAITING
        self.prefill_target = prompt_len
        self.kv_tokens = 0
        self.generated = 0
        self.blocks = 0  # KV blocks held on the GPU
        self.swap_blocks = 0  # KV blocks held in CPU swap space
        self.priority = 0.0  # the policy's current score (lower is served first)
        self.predicted_output = predicted_output
        self.initial_prediction = predicted_output
        self.refresh_values = refresh_values
        self.refresh_index = 0  # number of refreshes applied so far
        self.first_scheduled = NAN
        self.first_token_time = NAN
        self.finish_time = NAN
        self.preemptions = 0
        self.recompute_preemptions = 0
        self.swap_preemptions = 0
        self.restart_preemptions = 0
        self.recomputed_tokens = 0  # tokens prefilled again because of preemptions
        self.discarded_tokens = 0  # output tokens thrown away by restart preemptions (generated again)
        self.peak_generated = 0  # the most output tokens held before a restart (the engine's livelock check)
        self.swapped_blocks = 0  # blocks moved out to CPU (each also moves back in)
        # Engine bookkeeping. While ``_steady`` (decoding in every iteration since iteration
        # ``_synced``), ``generated``, ``kv_tokens`` and ``blocks`` are brought up to date lazily:
        # the engine advances them by one token per iteration only when someone needs them.
        self._mark = 0  # 1 + index of the last iteration whose batch included this request
        self._steady = False
        self._synced = 0  # iteration at which the counters were last brought up to date
        self._kv_offset = 0  # kv_tokens - iteration, constant while steady
        self._gen_offset = 0  # generated - iteration, constant while steady
        self._stamp = 0  # bumped each time it joins the steady set (invalidates old heap entries)
        self.meta: object = None  # free for the caller (e.g. the workflow a call belongs to)
        self.held = False  # not admissible until released (Engine.hold / Engine.release)
        # prefix caching (prefix_cache.py): the hash chain of its blocks in the engine's block
        # size, and the hashes of the cached blocks it references (its first len() blocks)
        self.block_hashes: list[int] | None = None
        self.cache_refs: list[int] | None = None
        self.slo_class = slo_class
        self.ttft_slo_s = ttft_slo_s
        self.tpot_slo_s = tpot_slo_s

    # -- derived quantities (read-only) -------------------------------------------------------
    @property
    def in_prefill(self) -> bool:
        """True while prompt (or recompute) tokens remain to be prefilled."""
        return self.kv_tokens < self.prefill_target

    @property
    def prefill_remaining(self) -> int:
        return self.prefill_target - self.kv_tokens if self.kv_tokens < self.prefill_target else 0

    @property
    def predicted_remaining(self) -> float:
        """Predicted output tokens still to come (may be <= 0 once a request outlives its prediction)."""
        return self.predicted_output - self.generated

    @property
    def remaining(self) -> int:
        """True output tokens still to come (oracle information)."""
        return self.output_len - self.generated

    @property
    def finished(self) -> bool:
        return self.state == RequestState.FINISHED

    def __repr__(self) -> str:
        return (
            f"Request(id={self.id}, state={RequestState(self.state).name}, arrival={self.arrival:.4f}, "
            f"prompt={self.prompt_len}, output={self.output_len}, kv={self.kv_tokens}, "
            f"generated={self.generated}, blocks={self.blocks})"
        )


# Per-request record fields written by the engine when a request leaves the system (or at the
# end of a run for unfinished ones). metrics.py computes every statistic from these.
RECORD_FIELDS: tuple[str, ...] = (
    "id",  # int
    "arrival",  # s
    "prompt_len",  # tokens
    "output_len",  # tokens (true)
    "generated",  # tokens produced (== output_len when finished)
    "state",  # RequestState value
    "first_scheduled",  # s, first time in a batch (NaN if never)
    "first_token_time",  # s (NaN if none)
    "finish_time",  # s (NaN unless finished)
    "preemptions",  # count, all modes
    "recompute_preemptions",
    "swap_preemptions",
    "restart_preemptions",
    "recomputed_tokens",  # tokens prefilled again because of preemptions
    "swapped_blocks",  # KV blocks swapped out (each swapped back in unless unfinished)
    "predicted_len",  # initial prediction of the output length
    "slo_class",  # request class index (-1: none)
    "ttft_slo_s",  # s, the request's TTFT target (inf: none)
    "tpot_slo_s",  # s, the request's TPOT target (inf: none)
)


@dataclass
class RecordBuffer:
    """Column buffers of per-request records, appended by the engine.

    Plain Python lists while a run goes on (appending is cheap); ``to_arrays`` turns them into
    numpy arrays. When records are streamed (``SimConfig.keep_records=False``) the engine hands
    each full buffer to a sink and starts a new one, so memory does not grow with the run.
    """

    columns: dict[str, list] = field(default_factory=lambda: {name: [] for name in RECORD_FIELDS})

    def append(self, r: Request) -> None:
        c = self.columns
        c["id"].append(r.id)
        c["arrival"].append(r.arrival)
        c["prompt_len"].append(r.prompt_len)
        c["output_len"].append(r.output_len)
        c["generated"].append(r.generated)
        c["state"].append(int(r.state))
        c["first_scheduled"].append(r.first_scheduled)
        c["first_token_time"].append(r.first_token_time)
        c["finish_time"].append(r.finish_time)
        c["preemptions"].append(r.preemptions)
        c["recompute_preemptions"].append(r.recompute_preemptions)
        c["swap_preemptions"].append(r.swap_preemptions)
        c["restart_preemptions"].append(r.restart_preemptions)
        c["recomputed_tokens"].append(r.recomputed_tokens)
        c["swapped_blocks"].append(r.swapped_blocks)
        c["predicted_len"].append(r.initial_prediction)
        c["slo_class"].append(r.slo_class)
        c["ttft_slo_s"].append(r.ttft_slo_s)
        c["tpot_slo_s"].append(r.tpot_slo_s)

    def __len__(self) -> int:
        return len(self.columns["id"])

    def clear(self) -> None:
        for values in self.columns.values():
            values.clear()

    def to_arrays(self, start: int = 0) -> dict[str, np.ndarray]:
        """The records from row ``start`` on, one numpy array per field."""
        out: dict[str, np.ndarray] = {}
        for name, column in self.columns.items():
            values = column[start:] if start else column
            if name in ("arrival", "first_scheduled", "first_token_time", "finish_time", "predicted_len", "ttft_slo_s", "tpot_slo_s"):
                out[name] = np.asarray(values, dtype=np.float64)
            else:
                out[name] = np.asarray(values, dtype=np.int64)
        return out
