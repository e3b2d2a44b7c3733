"""The simulated LLM inference engine: continuous batching over a paged KV cache.

Time is continuous (seconds). The engine runs *iterations*, one forward pass over a batch. Each
iteration's batch is built from the live requests in the policy's priority order under three
limits: ``max_num_seqs`` (batch slots), ``max_num_batched_tokens`` (token budget: a decode costs
one token, a prefill chunk its length) and the KV cache.

Batch building (one place: :meth:`Engine._build`)
------------------------------------------------
*Decode pass*: decoding requests that hold KV, in priority order, one token each, until the slots
or the budget run out. Swapped requests are swapped back in here. *Prefill pass*: with what is left,
requests that are mid-prefill continue and waiting requests are admitted, in priority order.
A decode pass before the prefill pass is Sarathi-Serve's stall-free batching: ongoing decodes are
never stalled by prefills, which only get the leftover budget. The rules differ as follows
(after Li, Dai and Peng 2025):

* ``sarathi`` (default; also vLLM V1): mixed batches, prefills chunked to the leftover budget.
* ``orca``: mixed batches, a prefill runs whole or not at all in an iteration.
* ``vllm`` (vLLM V0): if any waiting request can be admitted the iteration is prefill-only (whole
  prompts); otherwise it is decode-only. No mixing, no chunking. With ``padded_prefill`` a prefill
  batch of n prompts, the longest L tokens, needs n x L <= the budget (V0 pads them; Vidur too).
* ``static`` (FasterTransformer): a batch is formed only when no request holds KV, then decodes
  until all its members are done; no admissions in between.

Memory. KV is paged in blocks of ``block_size`` tokens. Admission (and swap-in) allocates the
blocks of the whole prefill and must leave ``watermark`` of the cache free (vLLM: 1 %; waived when
the cache is otherwise empty, so a long preempted request is never stranded). A decode allocates a
block each time its context crosses a block boundary. A request left out of a batch keeps its KV
(it is *paused*). KV is freed only by finishing or by preemption: when a scheduled request needs
blocks that are not free, the lowest-priority holders below it are preempted (it preempts itself
if there are none). Admission takes only free blocks, as in vLLM V1: a waiting request waits for
memory even when it outranks holders; with ``admission_preemption`` (vLLM V0's priority
scheduling) it may instead preempt lower-priority holders to be admitted. Preemption modes:
``recompute`` (free the KV, prefill prompt + generated tokens again), ``swap`` (KV to CPU swap
space over PCIe, back in later; a swap that does not fit the swap space falls back to recompute
and is counted), ``restart`` (free the KV and lose the generated tokens). The mode of each preemption is the policy's ``preemption_mode(request, engine)``
when it has one, else the engine's default; an agent may also preempt a request itself between
steps (:meth:`Engine.evict`).

Livelock. With ``restart`` preemption (or an agent that evicts), requests can take turns evicting
each other and losing their work, so that none ever finishes. Every such cycle is made of
preemptions (without them each batch adds tokens that stay), so the engine watches them, off the
hot path: after every ``livelock_preemptions`` x (requests in the system) preemptions with no
request finishing, it checks that the requests were served further than before (the sum over the
requests in the system of the most tokens each has held at once, which a restart does not lower
and which cannot grow for ever without a completion). If not, the run stops there as at a time
limit (``max_time`` is lowered to the current time), the requests inside are reported unfinished
and :attr:`Engine.livelock` says what happened. A run that preempts a lot but progresses (the
oldest request gaining a token per iteration while others are evicted in turn) is never stopped.

Requests that can never be served are rejected at arrival and counted: KV for their full length
exceeds the whole cache, or (for rules that cannot chunk) the prompt exceeds the token budget. A
recompute prefill longer than the budget under such a rule runs alone in its iteration.

Fast-forward. Between events (an arrival, a completion, a preemption, a prediction refresh, a
policy wake-up) a decode-only batch stays the same and its iteration time grows linearly with the
context (cost models expose ``decode_affine``), so the engine jumps over the whole stretch in closed
form: a run costs O(events), not O(tokens). ``fast_forward=False`` steps one iteration at a time;
both give the same per-request times up to floating-point rounding (tests compare them).

Lazy counters. The decoding members of the batch (the *steady set*) advance one token per
iteration in lockstep, so the engine does not touch them every iteration: each keeps its counters
as offsets from the iteration count, the set keeps the sum of its contexts and a histogram of
block-boundary phases, and heaps hold the iterations at which members finish or get a refreshed
prediction. When the batch limits do not bind, building the next batch and running a stretch cost
O(1) plus the requests that changed, whatever the batch size. Whenever the order matters (a limit
binds, a swap, an eviction) the engine brings every counter up to date and walks the requests in
priority order. Call :meth:`Engine.sync` before reading requests from outside the engine.

Decision epochs. Policy scores are taken at epochs (arrival, completion, preemption, prediction
refresh, policy wake-up, every ``decision_interval`` iterations) and held fixed in between.

Prefix caching (``enable_prefix_caching``, off by default; :mod:`.prefix_cache`). An admitted
request with a hash chain takes references on the longest cached prefix of its blocks and
prefills only the rest; the blocks it computes are cached as they fill and stay cached, evictable,
once no request holds them. The engine calls the cache only at admissions, prefill chunks and
departures, never on the decode hot path; with caching off none of this code runs.
"""

from __future__ import annotations

import bisect
import heapq
import math
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Iterator, Sequence

from .cost import CostModel
from .engine_config import EngineConfig
from .policy import FCFS, Policy
from .prefix_cache import PrefixCache, engine_chain
from .request import PreemptionMode, Request, RequestBatch, RequestState
from .validation import ConfigError

WAITING = RequestState.WAITING
RUNNING = RequestState.RUNNING
PAUSED = RequestState.PAUSED
SWAPPED = RequestState.SWAPPED
FINISHED = RequestState.FINISHED
REJECTED = RequestState.REJECTED
_NO_LIMIT = 1 << 62


@dataclass
class EngineStats:
    """Run-level counters the engine keeps (per-request figures live in the records)."""

    iterations: int = 0
    stretches: int = 0  # batch builds (events); iterations / stretches is the fast-forward gain
    epochs: int = 0
    preemptions: int = 0
    livelock: bool = False  # the run was stopped as a livelock (see Engine.livelock)
    swap_fallbacks: int = 0  # swaps that did not fit the swap space and recomputed instead
    rejected: int = 0
    busy_time: float = 0.0  # seconds with a non-empty batch
    swap_time: float = 0.0  # seconds of PCIe transfer charged to iterations
    prediction_time: float = 0.0  # seconds charged for predictions
    # prefix caching (zero when it is off): over admissions from waiting (first ones and after a
    # recompute or restart preemption)
    prefix_admissions: int = 0
    prefix_query_tokens: int = 0  # tokens to prefill at those admissions
    prefix_hit_tokens: int = 0  # of which found cached (prefill tokens saved)
    prefix_query_blocks: int = 0  # full blocks of their hash chains that a hit could cover
    prefix_hit_blocks: int = 0  # of which found cached


class Engine:
    """Event-driven simulation of one engine serving a stream of requests.

    Args:
        config: the engine's limits and rules.
        cost: the iteration-time model (``iteration_time``/``decode_affine``, seconds).
        num_blocks: KV capacity in blocks.
        workload: iterable of :class:`RequestBatch` chunks, arrival-ordered, predictions filled.
        policy: the scheduling policy (default FCFS).
        swap_block_bytes: bytes of one KV block on one GPU (sizes the CPU swap space).
        swap_seconds_per_block: PCIe time to move one block either way.
        refresh_every: tokens between prediction refreshes (0: never), from the predictor.
        prediction_cost_s: simulated seconds charged per prediction made.
        on_record: called with each request that leaves the system (finished or rejected) and, at
            the end of a run, with each unfinished one.
        on_stretch: called after every stretch as ``(t0, t1, in_system, batch_size, kv_start,
            kv_end, kv_total, waiting)`` (``metrics.TimeSeries.observe``).
        decision_interval: if > 0, also force a decision epoch every this many iterations.
        max_time: stop at the first iteration boundary at or after this simulated time (lowered
            to the current time when the run is stopped as a livelock).
        reference: always build batches by the ordered walk (never the shortcut taken when no
            limit binds). Slower, same results; tests use it with ``fast_forward=False`` as the
            reference the optimised paths must match.
        on_build: called with ``(decoding, prefilling)`` requests of every batch built (for
            tracing and tests; costs O(batch) per batch when set).
    """

    def __init__(
        self,
        config: EngineConfig,
        cost: CostModel,
        num_blocks: int,
        workload: Iterable[RequestBatch],
        policy: Policy | None = None,
        *,
        swap_block_bytes: float = 0.0,
        swap_seconds_per_block: float = 0.0,
        refresh_every: int = 0,
        prediction_cost_s: float = 0.0,
        on_record: Callable[[Request], None] | None = None,
        on_stretch: Callable[..., None] | None = None,
        decision_interval: int = 0,
        max_time: float = math.inf,
        reference: bool = False,
        on_build: Callable[[list[Request], list[Request]], None] | None = None,
    ) -> None:
        self.config = config
        self.reference = reference
        self.on_build = on_build
        self.cost = cost
        self.policy: Policy = policy if policy is not None else FCFS()
        _check_policy(self.policy)
        self._wakeup: Callable[[Sequence[Request], float], int | None] | None = getattr(self.policy, "wakeup", None)
        self._wake_at = -1  # iteration at which the policy asked for its next epoch (-1: none)
        self.block_size = config.block_size
        self.num_blocks = int(num_blocks)
        self.watermark_blocks = int(config.watermark * self.num_blocks)
        self.admission_preemption = config.admission_preemption
        self.swap_seconds_per_block = float(swap_seconds_per_block)
        swap_bytes = config.swap_space_gib * (1 << 30)
        self.swap_capacity_blocks = int(swap_bytes // swap_block_bytes) if swap_block_bytes > 0 else 0
        self.default_mode = PreemptionMode.parse(config.preemption_mode)
        self.refresh_every = int(refresh_every)
        self.prediction_cost_s = float(prediction_cost_s)
        self.on_record = on_record
        self.on_stretch = on_stretch
        self.decision_interval = int(decision_interval)
        self.max_time = float(max_time)
        self.livelock_preemptions = config.livelock_preemptions
        self.livelock = ""  # why the run was stopped as a livelock, with its figures ("" if it was not)
        self._preemptions_at_completion = 0  # stats.preemptions at the latest completion
        self._completion_time = 0.0  # simulated time of the latest completion (0: none yet)
        self._preemptions_at_progress = 0  # stats.preemptions at the latest completion or progress check passed
        self._progress_tokens = -1  # the progress measure at that check (-1: none since the latest completion)
        self.max_seqs = config.max_num_seqs
        self.max_tokens = config.max_num_batched_tokens
        self.rule = config.batching
        self.chunked = self.rule == "sarathi"
        self.padded = config.padded_prefill and self.rule == "vllm"  # vLLM V0: n x longest <= budget
        self.fast_forward = config.fast_forward

        # -- state ---------------------------------------------------------------------------
        self.now = 0.0
        self.iteration = 0  # iterations completed; the next one built has this index
        self.free_blocks = self.num_blocks
        self.free_swap_blocks = self.swap_capacity_blocks
        self.live: list[Request] = []  # in the system; sorted by (priority, arrival, id) after scoring
        self.holders: list[Request] = []  # live requests with KV on the GPU, same order
        self.steady: dict[int, Request] = {}  # this batch's decoders (lazy counters)
        self.ready: list[Request] = []  # decode-phase holders outside the steady set (materialised)
        self.n_prefilling = 0  # holders still prefilling
        self.n_swapped = 0  # requests whose KV is in CPU swap space
        self._phase_counts = [0] * self.block_size  # steady members by kv_offset mod block size
        self._steady_kv_offset = 0  # sum of kv_offset over the steady set
        self._finish_heap: list[tuple[int, int, int]] = []  # (iteration, id, stamp) of steady finishes
        self._refresh_heap: list[tuple[int, int, int]] = []  # (iteration, id, stamp) of refreshes
        self._alloc_iteration = -1  # iteration whose blocks the steady set already holds
        self._prefills: list[tuple[Request, int, int]] = []  # this batch's (request, chunk, kv before)
        self._longest_prefill = 0  # longest chunk of this batch (padded prefill batches)
        self._kv_used_last = 0  # blocks held during the stretch's last iteration (before its completions free theirs)
        self.area = 0.0  # integral of the number of requests in the system over time (request-s)
        self.completed = 0
        self.arrived = 0
        self.tokens_generated = 0  # output tokens emitted (including ones a restart later discards)
        self.last_iteration_time = 0.0  # seconds, the latest iteration
        self.last_arrival_time = 0.0
        self.stats = EngineStats()
        self.epoch_pending = True
        self._unscored: list[Request] = []  # requests a static policy must score again
        self._new = 0  # new arrivals at the (unsorted) tail of ``live``, not scored yet
        self._since_decision = 0
        self._finished_now: list[Request] = []
        # what happened since the last decision epoch (read by the envs)
        self.events_arrived: list[Request] = []
        self.events_finished: list[Request] = []
        self.events_preempted: list[Request] = []
        self.kv_blocks_used_max = 0
        self._chunks: Iterator[RequestBatch] = iter(workload)
        self._pending: list[tuple[int, float, int, int, float]] = []  # rows of the current chunk
        self._pending_classes: list[int] | None = None  # the chunk's request classes and SLO targets
        self._pending_ttft: list[float] | None = None
        self._pending_tpot: list[float] | None = None
        self._pending_pos = 0
        self._refresh_values: Any = None  # numpy array of the current chunk's refreshed predictions
        self._refresh_offsets: list[int] | None = None
        self.prefix_cache: PrefixCache | None = PrefixCache() if config.enable_prefix_caching else None
        self._hash_offsets: list[int] | None = None  # the current chunk's hash chains (caching on)
        self._hash_values: Any = None
        self._hash_block = 0
        self._exhausted = False
        self._next_workload_arrival = math.inf
        self._next_arrival = math.inf  # the earlier of the next workload arrival and submission
        self._submitted: list[tuple[float, int, Request]] = []  # heap of submitted future arrivals
        self._horizon = math.inf
        self._rescore_on_admission = bool(getattr(self.policy, "rescore_on_admission", False))
        self._mode_hook: Callable[[Request, "Engine"], int | None] | None = getattr(self.policy, "preemption_mode", None)
        self._admit_hook: Callable[[Request, "Engine"], bool] | None = getattr(self.policy, "admit", None)
        self._pending_swap_out = 0  # blocks swapped out by evict() since the last iteration
        # batch-building scratch
        self._seats = 0
        self._budget = 0
        self._admissions_open = True
        self._swap_in_blocks = 0
        self._swap_out_blocks = 0
        self._predictions = 0
        self._refreshes = 0
        self._load_next_chunk()
        self._next_arrival = self._next_workload_arrival

    # ------------------------------------------------------------------------------ arrivals
    def _load_next_chunk(self) -> None:
        for batch in self._chunks:
            n = len(batch)
            if n == 0:
                continue
            if batch.predicted_len is None:
                raise ConfigError("workload chunk has no predictions: run a predictor's annotate() on it first")
            ids = range(batch.first_id, batch.first_id + n)
            self._pending = list(
                zip(ids, batch.arrival_time.tolist(), batch.prompt_len.tolist(), batch.output_len.tolist(), batch.predicted_len.tolist())
            )
            self._pending_classes = batch.slo_class.tolist() if batch.slo_class is not None else None
            self._pending_ttft = batch.ttft_slo_s.tolist() if batch.ttft_slo_s is not None else None
            self._pending_tpot = batch.tpot_slo_s.tolist() if batch.tpot_slo_s is not None else None
            self._pending_pos = 0
            if batch.refresh_offsets is not None and batch.refresh_values is not None:
                self._refresh_offsets = batch.refresh_offsets.tolist()
                self._refresh_values = batch.refresh_values
            else:
                self._refresh_offsets = None
                self._refresh_values = None
            if self.prefix_cache is not None and batch.block_hash_offsets is not None and batch.block_hash_values is not None:
                self._hash_offsets = batch.block_hash_offsets.tolist()
                self._hash_values = batch.block_hash_values
                self._hash_block = int(batch.block_hash_size)
            else:
                self._hash_offsets = None
            self._next_workload_arrival = self._pending[0][1]
            return
        self._pending = []
        self._pending_pos = 0
        self._exhausted = True
        self._next_workload_arrival = math.inf

    def submit(self, r: Request) -> None:
        """Add a request arriving at ``r.arrival`` besides the workload (e.g. the next call of a
        workflow). It enters the system at the first iteration boundary at or after its arrival."""
        heapq.heappush(self._submitted, (r.arrival, r.id, r))
        if r.arrival < self._next_arrival:
            self._next_arrival = r.arrival

    def rescore(self, requests: Iterable[Request]) -> None:
        """Have the policy score these requests again at the next step (a decision epoch)."""
        self._unscored.extend(requests)
        self.epoch_pending = True

    def admit_arrivals(self) -> None:
        """Move every request that has arrived by ``now`` into the system (a decision epoch if
        any did). The engine does this itself after every stretch; a driver that submits a
        request arriving at or before ``now`` calls it so the request joins the next batch."""
        self._admit_arrivals()

    def _admit_arrivals(self) -> None:
        """Move every request that has arrived by ``now`` into the system."""
        now = self.now
        arrived_before = len(self.events_arrived)
        while self._next_arrival <= now:
            submitted = self._submitted
            if submitted and submitted[0][0] <= self._next_workload_arrival:
                r = heapq.heappop(submitted)[2]
            else:
                r = self._next_workload_request()
            self.arrived += 1
            self.last_arrival_time = r.arrival
            self.area += now - r.arrival
            if self._can_never_serve(r):
                r.state = REJECTED
                self.stats.rejected += 1
                if self.on_record is not None:
                    self.on_record(r)
            else:
                self.live.append(r)  # at the unsorted tail until the epoch scores it
                self._new += 1
                self.events_arrived.append(r)
            self._next_arrival = min(self._next_workload_arrival, submitted[0][0] if submitted else math.inf)
        if len(self.events_arrived) > arrived_before:
            self.epoch_pending = True

    def _next_workload_request(self) -> Request:
        pos = self._pending_pos
        rid, arrival, prompt, output, predicted = self._pending[pos]
        refresh: list[float] | None = None
        offsets = self._refresh_offsets
        if offsets is not None:
            lo, hi = offsets[pos], offsets[pos + 1]
            if hi > lo:
                refresh = self._refresh_values[lo:hi].tolist()
        r = Request(rid, arrival, prompt, output, predicted, refresh)
        hashes = self._hash_offsets
        if hashes is not None:
            lo, hi = hashes[pos], hashes[pos + 1]
            r.block_hashes = engine_chain(self._hash_values[lo:hi].tolist(), self._hash_block, self.block_size, prompt + output)
        if self._pending_classes is not None:
            r.slo_class = self._pending_classes[pos]
        if self._pending_ttft is not None and self._pending_tpot is not None:
            r.ttft_slo_s = self._pending_ttft[pos]
            r.tpot_slo_s = self._pending_tpot[pos]
        self._pending_pos = pos + 1
        if self._pending_pos < len(self._pending):
            self._next_workload_arrival = self._pending[self._pending_pos][1]
        else:
            self._load_next_chunk()
        return r

    def _can_never_serve(self, r: Request) -> bool:
        peak_kv = r.prompt_len + max(r.output_len, 1) - 1
        if -(-peak_kv // self.block_size) > self.num_blocks:
            return True
        return not self.chunked and r.prompt_len > self.max_tokens

    # ------------------------------------------------------------------------------ scoring
    def _rescore(self) -> None:
        """A decision epoch: take the policy's scores and restore the priority order."""
        self.stats.epochs += 1
        self._since_decision = 0
        policy = self.policy
        live = self.live
        if policy.dynamic:
            self.sync()
            self._apply_scores(live, policy.priorities(live, self.now))
            live.sort(key=_sort_key)
            self.holders.sort(key=_sort_key)
        else:
            # new arrivals (the unsorted tail), restarts and refreshed predictions: score them and
            # put them in their places
            new = live[len(live) - self._new :]
            del live[len(live) - self._new :]
            changed: list[Request] = []
            seen: set[int] = {r.id for r in new} if self._unscored else set()  # new ones are scored anyway
            for r in self._unscored:
                if r.id not in seen and r.state != FINISHED:
                    seen.add(r.id)
                    changed.append(r)
                    self._sync_one(r)
                    _remove_sorted(live, r)
                    if r.blocks > 0:
                        _remove_sorted(self.holders, r)
            changed.extend(new)
            if changed:
                self._apply_scores(changed, policy.priorities(changed, self.now))
                for r in changed:
                    bisect.insort(live, r, key=_sort_key)
                    if r.blocks > 0:
                        bisect.insort(self.holders, r, key=_sort_key)
        self._new = 0
        self._unscored = []
        self.events_arrived = []
        self.events_finished = []
        self.events_preempted = []
        self.epoch_pending = False
        if self._wakeup is not None:
            # asked once per epoch, with every counter up to date; kept as an absolute iteration
            self.sync()
            wake = self._wakeup(self.live, self.now)
            self._wake_at = -1 if wake is None else self.iteration + max(int(wake), 1)

    def _apply_scores(self, requests: Sequence[Request], scores: Any) -> None:
        name = getattr(self.policy, "name", self.policy)
        try:
            n = len(scores)
        except TypeError:
            raise ConfigError(
                f"policy {name!r} returned {scores!r} from priorities(): expected a sequence of one finite number per request"
            ) from None
        if n != len(requests):
            raise ConfigError(
                f"policy {name!r} returned {n} priorities for "
                f"{len(requests)} requests: expected exactly one finite number per request"
            )
        for r, s in zip(requests, scores):
            try:
                score = float(s)
            except (TypeError, ValueError):
                raise ConfigError(
                    f"policy {name!r} returned priority {s!r} for request {r.id}: expected a finite number"
                ) from None
            if not math.isfinite(score):
                raise ConfigError(f"policy {name!r} returned priority {score!r} for request {r.id}: expected a finite number")
            r.priority = score

    # ------------------------------------------------------------------------------ main loop
    @property
    def done(self) -> bool:
        """True when every request has left the system, or the time limit was reached."""
        return not self.workload_left or self.now >= self.max_time

    @property
    def workload_left(self) -> bool:
        """True while requests remain in the system or are still to arrive."""
        return bool(self.live) or not self._exhausted or bool(self._submitted)

    @property
    def batch_size(self) -> int:
        """Requests of the last batch still in the system (its decoders and prefills)."""
        return len(self.steady) + sum(1 for r, _, _ in self._prefills if r.state == RUNNING)

    @property
    def next_arrival(self) -> float:
        """Arrival time of the next request not yet in the system (inf if none is known)."""
        return self._next_arrival

    def run(self) -> None:
        """Run to the end of the workload (or ``max_time``), then report unfinished requests."""
        while self.advance():
            pass
        self.finish_run()

    def run_until_epoch(self) -> bool:
        """Advance until a decision epoch is pending or the run is over; False when over."""
        while True:
            if not self.advance():
                return False
            if self.epoch_pending:
                return True

    def advance(self, horizon: float = math.inf) -> bool:
        """Score if an epoch is pending, build one batch and run it for one stretch.

        A stretch of decode-only iterations stops at the first iteration boundary at or after
        ``horizon`` (an idle engine waits no longer than that): a driver running several engines
        uses it so that no engine runs past a time at which another may hand it a request.
        Returns False (doing nothing) once there is nothing left to do.
        """
        if self.now >= self.max_time:
            return False
        self._horizon = horizon
        if not self.live:
            if self._exhausted and not self._submitted:
                return False
            t0 = self.now  # idle: jump to the next arrival
            self.now = max(self.now, min(self._next_arrival, self.max_time, horizon))
            if self.on_stretch is not None and self.now > t0:
                self.on_stretch(t0, self.now, 0, 0, 0, 0, self.num_blocks, 0)
            self._admit_arrivals()
            return True
        if self.epoch_pending:
            self._rescore()
        self._run_stretch()
        return True

    def finish_run(self) -> None:
        """Report every request still in the system (unfinished) to ``on_record``."""
        self.sync()
        if self.on_record is not None:
            for r in self.live:
                self.on_record(r)

    # ------------------------------------------------------------------------------ lazy counters
    def sync(self) -> None:
        """Bring every steady request's counters up to date (before reading requests)."""
        for r in self.steady.values():
            self._sync_one(r)

    def _sync_one(self, r: Request) -> None:
        if not r._steady:
            return
        it = self.iteration
        if r._synced != it:
            r._synced = it
            r.kv_tokens = r._kv_offset + it
            r.generated = r._gen_offset + it
        # the block for this iteration's token is held once the build of ``it`` allocated it
        held = r.kv_tokens + 1 if self._alloc_iteration == it else r.kv_tokens
        r.blocks = -(-held // self.block_size)

    def _join(self, r: Request) -> None:
        """Add a decode-phase holder (counters up to date) to the steady set."""
        it = self.iteration
        r._steady = True
        r._synced = it
        r._kv_offset = r.kv_tokens - it
        r._gen_offset = r.generated - it
        r._stamp += 1
        self.steady[r.id] = r
        self._phase_counts[r._kv_offset % self.block_size] += 1
        self._steady_kv_offset += r._kv_offset
        heapq.heappush(self._finish_heap, (r.output_len - r._gen_offset, r.id, r._stamp))
        self._push_refresh(r)

    def _push_refresh(self, r: Request) -> None:
        refresh = r.refresh_values
        if self.refresh_every and refresh is not None and r.refresh_index < len(refresh):
            due = (r.refresh_index + 1) * self.refresh_every - r._gen_offset
            heapq.heappush(self._refresh_heap, (due, r.id, r._stamp))

    def _leave(self, r: Request) -> None:
        """Remove ``r`` from the steady set, its counters brought up to date."""
        self._sync_one(r)
        r._steady = False
        del self.steady[r.id]
        self._phase_counts[r._kv_offset % self.block_size] -= 1
        self._steady_kv_offset -= r._kv_offset

    def _dissolve_steady(self) -> None:
        """Materialise every steady member and move it to ``ready`` (before an ordered walk)."""
        if not self.steady:
            return
        for r in list(self.steady.values()):
            self._leave(r)
            self.ready.append(r)
        self._finish_heap.clear()
        self._refresh_heap.clear()

    def _due(self, heap: list[tuple[int, int, int]]) -> int:
        """Earliest valid iteration in a steady-set heap (dropping stale entries)."""
        steady = self.steady
        while heap:
            due, rid, stamp = heap[0]
            r = steady.get(rid)
            if r is not None and r._stamp == stamp:
                return due
            heapq.heappop(heap)
        return _NO_LIMIT

    # ------------------------------------------------------------------------------ batches
    def _build(self) -> None:
        """Build this iteration's batch: afterwards ``steady`` holds its decoders and
        ``_prefills`` its prefill chunks. Preemptions needed to make room happen here."""
        self._swap_out_blocks = self._pending_swap_out  # evictions since the last iteration
        self._pending_swap_out = 0
        self._swap_in_blocks = 0
        self._predictions = 0
        self._seats = self.max_seqs
        self._budget = self.max_tokens
        self._admissions_open = True
        previous_prefills = self._prefills
        self._prefills = []
        self._longest_prefill = 0
        rule = self.rule
        if rule == "sarathi" or rule == "orca":
            self._decode_pass()
            self._prefill_pass()
        elif rule == "vllm":
            # vLLM V0: a prefill-only iteration whenever a waiting request can be admitted (the
            # slots of requests already holding KV are taken); otherwise decode-only.
            if len(self.live) > len(self.holders) + self.n_swapped:  # someone is waiting
                self._seats = max(self.max_seqs - len(self.holders), 0)
                self._dissolve_steady()
                self._prefill_pass()
            if self._prefills:
                for r in self.ready:
                    if r.state == RUNNING:
                        r.state = PAUSED
            else:
                self._seats = self.max_seqs
                self._admissions_open = True
                self._decode_pass()
        elif self.holders or self.n_swapped:  # static: no joining a batch in progress
            self._decode_pass()  # (swapped members of the batch may come back in)
        else:
            self._prefill_pass()
        mark = self.iteration + 1
        for r, _, _ in previous_prefills:
            if r.state == RUNNING and r._mark != mark:
                r.state = PAUSED

    def _decode_pass(self) -> None:
        B = self.block_size
        it = self.iteration
        ready = self.ready
        n_decoders = len(self.steady) + len(ready)
        if not self.reference and self.n_swapped == 0 and n_decoders <= self._seats and n_decoders <= self._budget:
            need = self._phase_counts[-it % B]
            for r in ready:
                if r.kv_tokens % B == 0:
                    need += 1
            if need <= self.free_blocks:
                # Everyone decodes: the order does not matter and nobody is touched.
                mark = it + 1
                for r in ready:
                    r.state = RUNNING
                    r._mark = mark
                    self._join(r)
                ready.clear()
                self.free_blocks -= self._phase_counts[-it % B]
                self._alloc_iteration = it
                self._seats -= n_decoders
                self._budget -= n_decoders
                return
        # A limit binds (or a swapped request waits): walk in priority order.
        self._dissolve_steady()
        self._alloc_iteration = it
        candidates = len(ready) + self.n_swapped
        scheduled: list[Request] = []
        for r in self.live:
            if candidates == 0:
                break
            state = r.state
            if state == WAITING or r.kv_tokens < r.prefill_target:
                continue  # prefill phase: the prefill pass handles it
            candidates -= 1
            if self._seats == 0 or self._budget == 0:
                if state == RUNNING:
                    r.state = PAUSED
                continue
            if state == SWAPPED:
                if not self._admissions_open:
                    continue
                need = -(-(r.kv_tokens + 1) // B)  # blocks after this iteration's token
                if not self._reserve(r, need, watermark=True):
                    self._admissions_open = False
                    continue
                self._swap_in(r, need)
            else:
                need = 1 if r.kv_tokens % B == 0 else 0
                if need > self.free_blocks and not self._reserve(r, need, watermark=False):
                    self._preempt(r)  # nobody below it to evict: it gives way itself
                    continue
                self.free_blocks -= need
                r.blocks += need
            r.state = RUNNING
            r._mark = it + 1
            self._seats -= 1
            self._budget -= 1
            scheduled.append(r)
        # the scheduled decoders form the new steady set; the others stay ready (paused)
        self.ready = [r for r in ready if r._mark != it + 1 and r.state != WAITING and r.state != SWAPPED]
        for r in self.ready:
            if r.state == RUNNING:
                r.state = PAUSED
        for r in scheduled:
            self._join_allocated(r)

    def _join_allocated(self, r: Request) -> None:
        """Join the steady set with this iteration's block already in ``r.blocks``."""
        self._join(r)

    def _prefill_pass(self) -> None:
        B = self.block_size
        it = self.iteration
        mark = it + 1
        chunked = self.chunked
        prefilling_left = self.n_prefilling
        if prefilling_left == 0 and self.n_swapped == 0 and len(self.live) == len(self.holders):
            return  # everyone holds KV and has prefilled: skip the walk over the live requests
        for r in self.live:
            if self._seats == 0 or self._budget == 0:
                break
            if not self._admissions_open and prefilling_left == 0:
                break  # only admissions could follow, and they are closed
            state = r.state
            remaining = r.prefill_target - r.kv_tokens
            if state != WAITING and (r._steady or remaining <= 0):
                continue  # decoding: the decode pass handles it
            if state == RUNNING or state == PAUSED:
                prefilling_left -= 1
            elif r.held:
                continue  # not admissible until released
            hit = revived = 0
            if state == WAITING and self.prefix_cache is not None and r.block_hashes is not None:
                if not self._admissions_open:
                    continue
                self.prefix_cache.settle(self.free_blocks)
                hit, revived = self.prefix_cache.match(r.block_hashes, (r.prefill_target - 1) // B)
                remaining -= hit * B  # only the rest is prefilled
            if chunked:
                chunk = remaining if remaining < self._budget else self._budget
            elif remaining <= self._budget and (
                not self.padded
                or (len(self._prefills) + 1) * max(self._longest_prefill, remaining) <= self.max_tokens
            ):
                chunk = remaining
            elif remaining > self.max_tokens and self._budget == self.max_tokens and not self._prefills:
                chunk = remaining  # a recompute longer than the budget runs alone (never stranded)
            else:
                self._admissions_open = False  # whole prefills only: the head of the line waits
                continue
            if state == WAITING or state == SWAPPED:
                if not self._admissions_open or r.held:
                    continue
                if state == WAITING and self._admit_hook is not None and not self._admit_hook(r, self):
                    self._admissions_open = False  # the policy's admission control: the head of the line waits
                    continue
                need = -(-r.prefill_target // B)  # the whole prefill's blocks, reserved ahead
                take = need - hit + revived  # blocks leaving the free pool (cached hits are shared)
                hits = r.block_hashes[:hit] if hit and r.block_hashes is not None else None
                if not self._reserve(r, take, watermark=True, hits=hits):
                    self._admissions_open = False
                    continue
                if state == WAITING:
                    if self.prefix_cache is not None:
                        take = self._admit_prefix(r, hit, need)
                    self.free_blocks -= take
                    r.blocks = need
                    if self._rescore_on_admission:
                        self._unscored.append(r)
                    if math.isnan(r.first_scheduled):  # first time served
                        r.first_scheduled = self.now
                        self._predictions += 1  # the initial prediction is made when first served
                else:
                    self._swap_in(r, need)
                self.n_prefilling += 1
                bisect.insort(self.holders, r, key=_sort_key)
            r.state = RUNNING
            r._mark = mark
            self._seats -= 1
            self._prefills.append((r, chunk, r.kv_tokens))
            self._budget -= chunk if chunk < self._budget else self._budget
            if chunk > self._longest_prefill:
                self._longest_prefill = chunk

    def _swap_in(self, r: Request, need: int) -> None:
        self.free_blocks -= need
        self.free_swap_blocks += r.swap_blocks
        self._swap_in_blocks += r.swap_blocks
        self.n_swapped -= 1
        r.blocks = need
        r.swap_blocks = 0
        if r.kv_tokens >= r.prefill_target:
            bisect.insort(self.holders, r, key=_sort_key)

    def _reserve(self, r: Request, need: int, *, watermark: bool, hits: list[int] | None = None) -> bool:
        """Make ``need`` blocks available to ``r`` (leaving the watermark if asked: an admission or
        a swap-in), preempting lower-priority holders, lowest first, if that suffices (for an
        admission only with ``admission_preemption``). Returns False (preempting nobody) if it
        cannot. ``hits``: the cached blocks ``r`` is about to take (an admission with prefix hits);
        one of them that only victims hold is freed by their preemption and taken back by ``r`` at
        once, so it adds one to what ``r`` needs (not counting it let the admission overdraw the
        pool, free blocks below 0)."""
        reserve = self.watermark_blocks if watermark else 0
        free = self.free_blocks
        if free - need >= reserve or (watermark and free >= need and free == self.num_blocks):
            return True
        if watermark and not self.admission_preemption:
            return False  # admissions and swap-ins take only free blocks
        key = _sort_key(r)
        victims: list[Request] = []
        cache = self.prefix_cache
        pending: dict[int, int] = {}  # with caching: the victims' references to each cached block so far
        taken: set[int] = set(hits) if hits is not None else set()  # cached blocks r takes
        retaken = 0  # of those, the ones the victims free: r takes them back from the free pool
        for v in reversed(self.holders):
            if v is r or _sort_key(v) <= key:
                break
            self._sync_one(v)
            victims.append(v)
            if cache is None:
                free += v.blocks
            else:
                # its private blocks, and the cached ones that no one but the victims holds (they
                # become evictable, i.e. free); counting only the private ones made a request whose
                # victims hold just cached blocks preempt itself, which under restart never ended
                refs = v.cache_refs
                if refs is None:
                    free += v.blocks
                else:
                    free += v.blocks - len(refs)
                    for h in refs:
                        held = pending.get(h, 0) + 1
                        pending[h] = held
                        if held == cache.refs[h]:
                            free += 1
                            if h in taken:
                                retaken += 1
            if free - need - retaken >= reserve or (watermark and free >= need + retaken and free == self.num_blocks):
                for victim in victims:
                    self._preempt(victim)
                return True
        return False

    def hold(self, requests: Iterable[Request]) -> None:
        """Make the requests among these that wait and were never scheduled inadmissible until
        :meth:`release` (an agent that picks admissions holds each new arrival)."""
        for r in requests:
            if r.state == WAITING and math.isnan(r.first_scheduled):
                r.held = True

    def release(self, r: Request) -> None:
        """Make a held request admissible again; it is rescored at the next step."""
        r.held = False
        self.rescore([r])

    def evict(self, r: Request, mode: PreemptionMode | int | None = None) -> None:
        """Preempt ``r`` now (between two steps, at a decision epoch), freeing its GPU KV.

        ``mode`` overrides the policy's and the engine's choice. A swap-out's PCIe time is charged
        to the next iteration; the request goes back to waiting (recompute, restart) or to swap.
        """
        self._sync_one(r)
        if r.state not in (RUNNING, PAUSED) or r.blocks == 0:
            raise ConfigError(
                f"evict: request {r.id} is {RequestState(r.state).name.lower()}; expected a request holding KV "
                "(running or paused)"
            )
        self._preempt(r, None if mode is None else PreemptionMode(int(mode)))
        self._pending_swap_out += self._swap_out_blocks
        self._swap_out_blocks = 0

    def _preempt(self, r: Request, mode: PreemptionMode | None = None) -> None:
        """Take ``r``'s KV away (``mode``, else the policy's choice, else the engine's default);
        it leaves this iteration's batch."""
        mark = self.iteration + 1
        if r._steady:  # decoding in this batch: give back its slot and token
            self._leave(r)
            self._seats += 1
            self._budget += 1
        elif r._mark == mark:  # a prefill scheduled earlier in this build
            for i, (p, chunk, _) in enumerate(self._prefills):
                if p is r:
                    del self._prefills[i]
                    self._seats += 1
                    self._budget += chunk
                    break
        if r.kv_tokens < r.prefill_target:
            self.n_prefilling -= 1
        elif r in self.ready:
            self.ready.remove(r)
        r._mark = 0
        _remove_sorted(self.holders, r)
        if mode is None:
            chosen = self._mode_hook(r, self) if self._mode_hook is not None else None
            mode = self.default_mode if chosen is None else PreemptionMode(int(chosen))
        if self.prefix_cache is not None:
            self._release_prefix(r)
        self.free_blocks += r.blocks
        r.preemptions += 1
        self.stats.preemptions += 1
        if self.livelock_preemptions and self.stats.preemptions - self._preemptions_at_progress >= self.livelock_preemptions * len(self.live):
            self._check_progress()
        self.events_preempted.append(r)
        self.epoch_pending = True
        if mode == PreemptionMode.SWAP:
            data_blocks = -(-r.kv_tokens // self.block_size)  # blocks holding KV (a prefill's are reserved ahead)
            if 0 < data_blocks <= self.free_swap_blocks:
                self.free_swap_blocks -= data_blocks
                self._swap_out_blocks += data_blocks
                self.n_swapped += 1
                r.swap_blocks = data_blocks
                r.swapped_blocks += data_blocks
                r.swap_preemptions += 1
                r.blocks = 0
                r.state = SWAPPED
                return
            self.stats.swap_fallbacks += 1
            mode = PreemptionMode.RECOMPUTE
        r.blocks = 0
        r.recomputed_tokens += r.kv_tokens
        r.kv_tokens = 0
        if mode == PreemptionMode.RESTART:
            r.restart_preemptions += 1
            r.discarded_tokens += r.generated
            if r.generated > r.peak_generated:
                r.peak_generated = r.generated
            r.generated = 0
            r.prefill_target = r.prompt_len
            r.refresh_index = 0
            r.predicted_output = r.initial_prediction
            self._unscored.append(r)
        else:
            r.recompute_preemptions += 1
            r.prefill_target = r.prompt_len + r.generated
        r.state = WAITING

    def _check_progress(self) -> None:
        """``livelock_preemptions`` preemptions per request in the system since the latest
        completion or check: were the requests served further than at that check? If not, stop
        the run at the end of this iteration, as at a time limit."""
        it = self.iteration
        tokens = 0  # sum of the most tokens each request in the system has held (read, not synced)
        for r in self.live:
            generated = r._gen_offset + it if r._steady else r.generated
            tokens += generated if generated > r.peak_generated else r.peak_generated
        window = self.stats.preemptions - self._preemptions_at_progress
        self._preemptions_at_progress = self.stats.preemptions
        if tokens > self._progress_tokens:
            self._progress_tokens = tokens
            return
        if self.livelock:
            return
        since = self.stats.preemptions - self._preemptions_at_completion
        last = f"since the last completion at t={self._completion_time:.3f} s" if self.completed else "since the start"
        self.livelock = (
            f"livelock: {since:,} preemptions and no request finished {last}; over the last {window:,} no request "
            f"was served further than before (t={self.now:.3f} s; {len(self.live)} requests in the system, "
            f"{self.completed} finished; bound livelock_preemptions={self.livelock_preemptions} x requests in the system)"
        )
        self.stats.livelock = True
        self.max_time = self.now

    # ------------------------------------------------------------------------------ execution
    def _run_stretch(self) -> None:
        self._build()
        if self.on_build is not None:
            self.on_build(list(self.steady.values()), [r for r, _, _ in self._prefills])
        D = len(self.steady)
        batch_size = D + len(self._prefills)
        if batch_size == 0:
            # nothing may run (every request in the system is held): wait for the next arrival
            until = min(self._next_arrival, self.max_time, self._horizon)
            if until == math.inf:
                raise RuntimeError(
                    f"engine stalled at t={self.now:.6f}s: {len(self.live)} requests in the system, none of them "
                    "admissible (held) and no arrival to wait for"
                )
            t0 = self.now
            self.now = max(t0, until)
            self.area += len(self.live) * (self.now - t0)
            if self.on_stretch is not None:
                self.on_stretch(t0, self.now, len(self.live), 0, 0, 0, self.num_blocks, len(self.live))
            self._admit_arrivals()
            return
        self.stats.stretches += 1
        kv_start = self.num_blocks - self.free_blocks
        t0 = self.now
        in_system = len(self.live)
        # anything that ends a stretch after its first iteration: prefill progress, transfers,
        # predictions, or an epoch already pending (a preemption in this build)
        single = (
            not self.fast_forward
            or bool(self._prefills)
            or self._swap_in_blocks > 0
            or self._swap_out_blocks > 0
            or self._predictions > 0
            or self.epoch_pending
        )
        self._run_iterations(D, single)
        kv_end = self._kv_used_last  # the last iteration's use, before its completions freed their blocks
        if kv_start > self.kv_blocks_used_max:
            self.kv_blocks_used_max = kv_start
        if kv_end > self.kv_blocks_used_max:
            self.kv_blocks_used_max = kv_end
        self.area += in_system * (self.now - t0)
        self.stats.busy_time += self.now - t0
        if self.on_stretch is not None:
            self.on_stretch(t0, self.now, in_system, batch_size, kv_start, kv_end, self.num_blocks, in_system - batch_size)
        self._after_stretch()

    def _run_iterations(self, D: int, single: bool) -> None:
        """Run this batch for one iteration (``single``) or for as many identical decode-only
        iterations as no event interrupts, in closed form."""
        B = self.block_size
        it0 = self.iteration
        ctx0 = self._steady_kv_offset + D * (it0 + 1)  # decode context: each decode reads kv + 1 tokens
        if single:
            p_tokens = p_sq = p_ctx = p_prior = 0
            for _, chunk, before in self._prefills:
                p_tokens += chunk
                p_sq += chunk * chunk
                p_ctx += chunk * before
                p_prior += before
            t = self.cost.iteration_time(p_tokens, p_sq, p_ctx, D, ctx0, p_prior)
            if not t > 0.0:
                raise ConfigError(
                    f"cost model {getattr(self.cost, 'name', self.cost)!r} returned iteration time {t!r}: expected > 0 seconds"
                )
            moved = self._swap_in_blocks + self._swap_out_blocks
            if moved:
                swap_t = moved * self.swap_seconds_per_block
                self.stats.swap_time += swap_t
                t += swap_t
            if self._predictions and self.prediction_cost_s:
                pred_t = self._predictions * self.prediction_cost_s
                self.stats.prediction_time += pred_t
                t += pred_t
            n = 1
            duration = t
            self.last_iteration_time = t
        else:
            # iterations until the first completion / refresh among the decoders
            n = self._due(self._finish_heap) - it0
            n_refresh = self._due(self._refresh_heap) - it0
            if n_refresh < n:
                n = n_refresh
            # iterations until the KV cache runs dry: iteration it0 + j needs a block for every
            # member whose context is then a multiple of B (it0's were allocated by the build)
            counts = self._phase_counts
            free = self.free_blocks
            cycles = free // D
            need = cycles * D
            n_kv = cycles * B + B
            for j in range(1, B + 1):
                need += counts[-(it0 + j) % B]
                if need > free:
                    n_kv = cycles * B + j
                    break
            if n_kv < n:
                n = n_kv
            if self.decision_interval > 0:
                left = self.decision_interval - self._since_decision
                if left < n:
                    n = max(left, 1)
            if 0 <= self._wake_at - it0 < n:
                n = max(self._wake_at - it0, 1)
            base, per_ctx = self.cost.decode_affine(D)
            a0 = base + per_ctx * ctx0  # first iteration's time
            q = per_ctx * D  # growth per iteration
            if not (a0 > 0.0 and q >= 0.0):
                raise ConfigError(
                    f"cost model {getattr(self.cost, 'name', self.cost)!r} gave decode iteration time {a0!r} growing by "
                    f"{q!r}: expected a positive time that does not shrink with context"
                )
            limit_time = min(self._next_arrival, self.max_time, self._horizon)
            if limit_time < math.inf:
                n_t = _iterations_to_reach(limit_time - self.now, a0, q)
                if n_t < n:
                    n = n_t
            duration = n * a0 + q * (n * (n - 1) / 2)
            self.last_iteration_time = a0 + q * (n - 1)
            # blocks for iterations it0+1 .. it0+n-1
            full, rest = divmod(n - 1, B)
            used = full * D
            for j in range(1, rest + 1):
                used += counts[-(it0 + j) % B]
            self.free_blocks -= used
            if self.free_blocks < 0:  # pragma: no cover - guarded by n_kv
                raise RuntimeError("KV cache over capacity during fast-forward: engine bug")
        self._kv_used_last = self.num_blocks - self.free_blocks
        self.now += duration
        self.iteration = it0 + n
        self.stats.iterations += n
        self.tokens_generated += D * n
        self._since_decision += n
        self._refreshes = 0
        now = self.now
        # the steady decoders each emitted n tokens: settle those that finish or refresh now
        end = self.iteration
        while self._finish_heap and self._due(self._finish_heap) <= end:
            _, rid, _ = heapq.heappop(self._finish_heap)
            r = self.steady[rid]
            self._leave(r)
            _remove_sorted(self.holders, r)
            self._finish(r, now)
        while self._refresh_heap and self._due(self._refresh_heap) <= end:
            _, rid, _ = heapq.heappop(self._refresh_heap)
            r = self.steady[rid]
            self._sync_one(r)
            self._refresh(r)
            self._push_refresh(r)
        cache = self.prefix_cache
        for r, chunk, _ in self._prefills:
            r.kv_tokens += chunk
            if cache is not None and r.block_hashes is not None:
                self._register_prefix(r)
            if r.kv_tokens >= r.prefill_target:
                self.n_prefilling -= 1
                self.tokens_generated += 1
                self._emit_token(r, now)
                if r.state != FINISHED:
                    self.ready.append(r)
        if self._refreshes and self.prediction_cost_s:
            extra = self._refreshes * self.prediction_cost_s
            self.stats.prediction_time += extra
            self.now += extra

    def _after_stretch(self) -> None:
        if self._finished_now:
            self._preemptions_at_completion = self._preemptions_at_progress = self.stats.preemptions
            self._progress_tokens = -1
            self._completion_time = self.now
            self.completed += len(self._finished_now)
            for r in self._finished_now:
                _remove_sorted(self.live, r, len(self.live) - self._new)
            self._finished_now = []
            self.epoch_pending = True
        self._admit_arrivals()
        if self.decision_interval > 0 and self._since_decision >= self.decision_interval:
            self.epoch_pending = True
        if 0 <= self._wake_at <= self.iteration:
            self.epoch_pending = True

    def _emit_token(self, r: Request, now: float) -> None:
        """A prefill just completed: it emits one token."""
        r.generated += 1
        if math.isnan(r.first_token_time):  # first token ever
            r.first_token_time = now
        if r.generated >= r.output_len:
            _remove_sorted(self.holders, r)
            self._finish(r, now)
        else:
            refresh = r.refresh_values
            if refresh is not None and r.refresh_index < len(refresh) and r.generated == (r.refresh_index + 1) * self.refresh_every:
                self._refresh(r)

    def _refresh(self, r: Request) -> None:
        refresh = r.refresh_values
        assert refresh is not None
        r.predicted_output = r.generated + refresh[r.refresh_index]
        r.refresh_index += 1
        self._refreshes += 1
        self._unscored.append(r)
        self.epoch_pending = True

    def _finish(self, r: Request, now: float) -> None:
        r.state = FINISHED
        r.finish_time = now
        if self.prefix_cache is not None:
            self._release_prefix(r)
        self.free_blocks += r.blocks
        r.blocks = 0
        self._finished_now.append(r)
        self.events_finished.append(r)
        if self.on_record is not None:
            self.on_record(r)

    # ------------------------------------------------------------------------------ prefix cache
    def _admit_prefix(self, r: Request, hit: int, need: int) -> int:
        """Admission from waiting with caching on: take the ``hit`` cached blocks (their tokens
        are computed), count the lookup; returns the blocks leaving the free pool."""
        cache = self.prefix_cache
        assert cache is not None
        stats = self.stats
        stats.prefix_admissions += 1
        stats.prefix_query_tokens += r.prefill_target
        chain = r.block_hashes
        if chain is None:
            return need
        stats.prefix_query_blocks += min(len(chain), (r.prefill_target - 1) // self.block_size)
        if hit == 0:
            return need
        cache.settle(self.free_blocks)  # a victim preempted to make room may have revived some
        revived = sum(1 for h in chain[:hit] if cache.refs[h] == 0)
        r.cache_refs = cache.acquire(chain, hit)
        r.kv_tokens = hit * self.block_size
        stats.prefix_hit_blocks += hit
        stats.prefix_hit_tokens += r.kv_tokens
        return need - hit + revived

    def _register_prefix(self, r: Request) -> None:
        """Cache the full blocks ``r`` has computed so far."""
        cache = self.prefix_cache
        chain = r.block_hashes
        assert cache is not None and chain is not None
        if r.cache_refs is None:
            r.cache_refs = []
        cache.settle(self.free_blocks)
        self.free_blocks += cache.register(chain, r.cache_refs, r.kv_tokens // self.block_size)

    def _release_prefix(self, r: Request) -> None:
        """``r`` leaves the GPU (finish or preemption): cache its full blocks, then drop its
        references. Adjusts ``free_blocks`` so that adding ``r.blocks`` afterwards is right."""
        held = r.cache_refs
        if held is None and r.block_hashes is None:
            return
        self._register_prefix(r)
        held = r.cache_refs
        assert held is not None and self.prefix_cache is not None
        n = len(held)
        self.free_blocks += self.prefix_cache.release(held) - n

    # ------------------------------------------------------------------------------ checks
    def check_invariants(self) -> None:
        """Raise AssertionError if the engine state is inconsistent (used by tests)."""
        self.sync()
        used = sum(r.blocks for r in self.live)
        cache = self.prefix_cache
        if cache is not None:
            cache.settle(self.free_blocks)
            used += cache.referenced_blocks - sum(len(r.cache_refs or ()) for r in self.live)
            cache.check(self.free_blocks, [r.cache_refs for r in self.live if r.cache_refs])
            for r in self.live:
                assert len(r.cache_refs or ()) <= r.blocks, r
        assert used + self.free_blocks == self.num_blocks, (used, self.free_blocks, self.num_blocks)
        assert 0 <= self.free_blocks <= self.num_blocks
        swapped = sum(r.swap_blocks for r in self.live)
        assert swapped + self.free_swap_blocks == self.swap_capacity_blocks
        assert self.n_swapped == sum(1 for r in self.live if r.state == SWAPPED)
        holders = [r for r in self.live if r.blocks > 0]
        assert sorted(map(id, holders)) == sorted(map(id, self.holders)), "holders list out of date"
        assert self.n_prefilling == sum(1 for r in holders if r.kv_tokens < r.prefill_target)
        decoding = {r.id for r in holders if r.kv_tokens >= r.prefill_target}
        assert decoding == set(self.steady) | {r.id for r in self.ready}, "steady/ready out of date"
        B = self.block_size
        for r in self.live:
            assert r.state in (WAITING, RUNNING, PAUSED, SWAPPED), r
            assert 0 <= r.generated < r.output_len, r
            if r.state == WAITING:
                assert r.blocks == 0 and r.kv_tokens == 0 and r.swap_blocks == 0, r
            elif r.state == SWAPPED:
                assert r.blocks == 0 and r.swap_blocks > 0, r
            else:
                assert r.blocks >= -(-r.kv_tokens // B), r
                if r.kv_tokens >= r.prefill_target:
                    assert r.kv_tokens == r.prompt_len + r.generated - 1, r
                    assert r.blocks == -(-r.kv_tokens // B) or (r.blocks == -(-(r.kv_tokens + 1) // B) and r._steady), r
        if not self.epoch_pending:
            keys = [_sort_key(r) for r in self.live]
            assert keys == sorted(keys), "live requests out of priority order"


def _check_policy(policy: Any) -> None:
    """A policy must have ``priorities`` and a boolean ``dynamic`` (see ``policy.py``)."""
    if not callable(getattr(policy, "priorities", None)):
        raise ConfigError(f"policy={policy!r} is invalid: expected an object with a priorities(requests, now) method")
    if not isinstance(getattr(policy, "dynamic", None), bool):
        raise ConfigError(
            f"policy={policy!r} is invalid: expected a boolean attribute 'dynamic' "
            f"(got {getattr(policy, 'dynamic', 'none')!r}; see llmsched_env.sim.policy)"
        )


def _sort_key(r: Request) -> tuple[float, float, int]:
    return (r.priority, r.arrival, r.id)


def _remove_sorted(requests: list[Request], r: Request, hi: int = -1) -> None:
    """Remove ``r`` from a list sorted by :func:`_sort_key` (over ``[0, hi)``) in O(log n)."""
    i = bisect.bisect_left(requests, _sort_key(r), 0, len(requests) if hi < 0 else hi, key=_sort_key)
    if i >= len(requests) or requests[i] is not r:
        raise RuntimeError(f"engine bookkeeping: request {r.id} not found in its ordered list")
    del requests[i]


def _iterations_to_reach(delta: float, a0: float, q: float) -> int:
    """Smallest n >= 1 with n*a0 + q*n*(n-1)/2 >= delta (iteration times a0, a0+q, ...)."""
    if delta <= a0:
        return 1
    if q <= 0.0:
        n = math.ceil(delta / a0)
    else:
        b = a0 - q / 2
        n = math.ceil((-b + math.sqrt(b * b + 2 * q * delta)) / q)
    n = max(n, 1)
    while n > 1 and (n - 1) * a0 + q * ((n - 1) * (n - 2) / 2) >= delta:
        n -= 1
    while n * a0 + q * (n * (n - 1) / 2) < delta:
        n += 1
    return n
