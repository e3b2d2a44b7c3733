"""Per-request features for agents: the one place that turns requests into numbers.

The environments show an agent up to K requests as rows of ``REQUEST_FEATURES`` (``Serve-v0/v1``
and the network env), or of ``REQUEST_FEATURES + DECISION_FEATURES`` (``Serve-v2``: what the
heuristics decide by, i.e. progress against the initial prediction, the KV footprint at
completion, the request's class and SLO slack). Every feature is scaled to roughly [0, 1] (log
scales for lengths and times), and none reveals the true output length: predictions are what the
predictor says (exact only with the ``oracle`` predictor).

Which requests are shown is decided here too (:func:`select_slots`), and so is the summary of the
requests left out (:func:`hidden_summary`, ``HIDDEN_FEATURES``). Compiled with the engine (see
setup.py), because it runs at every environment step.
"""

from __future__ import annotations

import heapq
import math
from typing import Final

from .engine import Engine
from .request import Request, RequestState

#: Names of the per-request features, in column order.
REQUEST_FEATURES: tuple[str, ...] = (
    "present",  # 1 for a real request (0 rows pad the slots)
    "waiting",  # state one-hot: waiting for (re)admission
    "running",  # in the last batch
    "paused",  # holds KV, left out of the last batch
    "swapped",  # KV in CPU swap space
    "held",  # waiting for an agent to admit it (admit mode)
    "prompt_len",  # log1p(tokens) / log1p(LENGTH_SCALE)
    "prefill_progress",  # prefilled / to prefill (1 while decoding, 0 before admission)
    "generated",  # log1p(output tokens so far) / log1p(LENGTH_SCALE)
    "predicted_total",  # log1p(predicted output length, whole tokens) / log1p(LENGTH_SCALE)
    "predicted_remaining",  # log1p(max(predicted - generated, 0)) / log1p(LENGTH_SCALE)
    "age",  # log1p(seconds since arrival) / log1p(TIME_SCALE)
    "waiting_time",  # log1p(seconds before first served, or so far) / log1p(TIME_SCALE)
    "kv_fraction",  # KV blocks held / KV capacity
    "preemptions",  # log1p(count) / log1p(10)
    "recompute_tokens",  # log1p(tokens a recompute preemption would prefill again) / log1p(LENGTH_SCALE)
    "swap_fraction",  # KV blocks a swap would move / KV capacity
)
NUM_REQUEST_FEATURES = len(REQUEST_FEATURES)
NUM_CLASS_COLUMNS: Final = 4  # request classes shown one-hot (classes beyond the fourth share no column)
#: Columns that ``Serve-v2``'s layout appends to ``REQUEST_FEATURES``, in order.
DECISION_FEATURES: tuple[str, ...] = (
    "initial_progress",  # generated / initial predicted length, capped at 2 (Trail preempts below 0.8)
    "peak_kv_fraction",  # predicted KV blocks at completion (prompt + predicted output) / KV capacity
    "kv_growth",  # predicted blocks still to allocate (peak - held) / KV capacity
    "has_slo",  # 1 if the request has a TTFT or TPOT target
    "class_0",  # request class one-hot (NUM_CLASS_COLUMNS columns; all 0 without a class)
    "class_1",
    "class_2",
    "class_3",
    "ttft_slack",  # before its first token: log1p(seconds left to the TTFT target) / log1p(TIME_SCALE); else / no target: 1
    "ttft_overdue",  # before its first token: log1p(seconds past the TTFT target) / log1p(TIME_SCALE); else 0
    "tpot_target",  # log1p(TPOT target in ms) / log1p(1000 ms) (1 without a target)
    "tpot_ratio",  # seconds per output token so far / TPOT target, capped at 10 (0 without a target or tokens)
)
NUM_DECISION_FEATURES = len(DECISION_FEATURES)
#: The summary of the live requests not shown in the slots (``Serve-v2``'s extra globals).
HIDDEN_FEATURES: tuple[str, ...] = (
    "hidden_oldest_age",  # log1p(seconds since the oldest hidden request arrived) / log1p(TIME_SCALE)
    "hidden_min_remaining",  # log1p(smallest predicted remaining output among them) / log1p(LENGTH_SCALE)
    "hidden_kv_demand",  # KV blocks they are predicted to still allocate (peak - held), summed / KV capacity (capped at 10)
)
NUM_HIDDEN_FEATURES = len(HIDDEN_FEATURES)
#: Names of the global features (the engine's state), in order; ``Serve-v2`` appends ``HIDDEN_FEATURES``.
GLOBAL_FEATURES: tuple[str, ...] = (
    "free_kv",  # free KV blocks / capacity
    "waiting",  # log1p(requests waiting for admission) / log1p(COUNT_SCALE)
    "running",  # log1p(requests in the last batch still in the system) / log1p(COUNT_SCALE)
    "paused",  # log1p(other requests holding KV) / log1p(COUNT_SCALE)
    "swapped",  # log1p(requests swapped to CPU) / log1p(COUNT_SCALE)
    "beyond_slots",  # log1p(requests not shown in the slots) / log1p(COUNT_SCALE)
    "iteration_time",  # log1p(last iteration in ms) / log1p(1000)
    "arrival_rate",  # recent arrival rate / the engine's sustainable rate (about the load)
    "time",  # log1p(simulated seconds) / log1p(86400)
    "arrived",  # requests arrived / requests in the episode
    "completed",  # requests finished / requests in the episode
    "free_swap",  # free CPU swap space / swap capacity (1 without swap space)
)
NUM_GLOBAL_FEATURES = len(GLOBAL_FEATURES)
COUNT_SCALE: Final = 1000.0
_LOG_COUNT: Final = math.log1p(COUNT_SCALE)
_LOG_MS: Final = math.log1p(1000.0)
_LOG_DAY: Final = math.log1p(86400.0)

LENGTH_SCALE: Final = 16384.0  # tokens mapped to 1.0
TIME_SCALE: Final = 3600.0  # seconds mapped to 1.0
_LOG_LENGTH: Final = math.log1p(LENGTH_SCALE)
_LOG_TIME: Final = math.log1p(TIME_SCALE)
_PREEMPT_SCALE: Final = _LOG_LENGTH / math.log1p(10.0)  # turns a length-scaled log into log1p(x)/log1p(10)
# log1p(n) / log1p(LENGTH_SCALE) for small whole n, looked up instead of computed (hot path)
_TABLE_SIZE: Final = 1 << 15
_LOG_TABLE: Final[list[float]] = [math.log1p(i) / _LOG_LENGTH for i in range(_TABLE_SIZE)]
# state one-hot rows (waiting, running, paused, swapped), indexed by RequestState
_STATE_ROWS: Final[list[tuple[float, float, float, float]]] = [
    (1.0, 0.0, 0.0, 0.0),
    (0.0, 1.0, 0.0, 0.0),
    (0.0, 0.0, 1.0, 0.0),
    (0.0, 0.0, 0.0, 1.0),
    (0.0, 0.0, 0.0, 0.0),
    (0.0, 0.0, 0.0, 0.0),
]


def _log_length(n: int) -> float:
    """log1p(max(n, 0)) / log1p(LENGTH_SCALE)."""
    if n < _TABLE_SIZE:
        return _LOG_TABLE[n] if n > 0 else 0.0
    return math.log1p(n) / _LOG_LENGTH


_LOG_TPOT: Final = math.log1p(1000.0)
_WAITING: Final = int(RequestState.WAITING)
_SWAPPED: Final = int(RequestState.SWAPPED)
_INF: Final = math.inf


def request_features(
    requests: list[Request], now: float, num_blocks: int, block_size: int, decision: bool = False
) -> list[float]:
    """Row-major features of ``requests`` (counters synced): ``NUM_REQUEST_FEATURES`` columns, and
    with ``decision`` the ``NUM_DECISION_FEATURES`` columns of ``DECISION_FEATURES`` after them."""
    out: list[float] = []
    request_features_into(out, requests, now, num_blocks, block_size, decision)
    return out


def request_features_into(
    out: list[float], requests: list[Request], now: float, num_blocks: int, block_size: int, decision: bool
) -> None:
    """:func:`request_features`, appended to ``out`` (one list for a batch of envs)."""
    inv_blocks = 1.0 / num_blocks
    for r in requests:
        state = int(r.state)
        kv = r.kv_tokens
        if state == _WAITING:
            progress = 0.0
        elif kv < r.prefill_target:
            progress = kv / r.prefill_target
        else:
            progress = 1.0
        predicted = int(r.predicted_output)
        first = now if math.isnan(r.first_scheduled) else r.first_scheduled
        one_hot = _STATE_ROWS[state]
        out.append(1.0)
        out.append(one_hot[0])
        out.append(one_hot[1])
        out.append(one_hot[2])
        out.append(one_hot[3])
        out.append(1.0 if r.held else 0.0)
        out.append(_log_length(r.prompt_len))
        out.append(progress)
        out.append(_log_length(r.generated))
        out.append(_log_length(predicted))
        out.append(_log_length(predicted - r.generated))
        out.append(math.log1p(max(now - r.arrival, 0.0)) / _LOG_TIME)
        out.append(math.log1p(max(first - r.arrival, 0.0)) / _LOG_TIME)
        out.append(r.blocks * inv_blocks)
        out.append(_log_length(r.preemptions) * _PREEMPT_SCALE)
        out.append(_log_length(kv))
        out.append((r.swap_blocks if state == _SWAPPED else (kv + block_size - 1) // block_size) * inv_blocks)
        if decision:
            _decision_features(out, r, now, inv_blocks, block_size)


def _peak_blocks(r: Request, block_size: int) -> int:
    """Predicted KV blocks at completion: prompt + predicted output (at least one more token)."""
    total = r.predicted_output if r.predicted_output > r.generated + 1 else float(r.generated + 1)
    peak_tokens = r.prompt_len + int(total) - 1
    return (peak_tokens + block_size - 1) // block_size


def _decision_features(out: list[float], r: Request, now: float, inv_blocks: float, block_size: int) -> None:
    initial = r.initial_prediction if r.initial_prediction > 1.0 else 1.0
    progress = r.generated / initial
    out.append(progress if progress < 2.0 else 2.0)
    peak = _peak_blocks(r, block_size)
    out.append(min(peak * inv_blocks, 10.0))
    out.append(min(max(peak - r.blocks, 0) * inv_blocks, 10.0))
    ttft, tpot = r.ttft_slo_s, r.tpot_slo_s
    out.append(1.0 if ttft < _INF or tpot < _INF else 0.0)
    c = r.slo_class
    for k in range(NUM_CLASS_COLUMNS):
        out.append(1.0 if c == k else 0.0)
    started = not math.isnan(r.first_token_time)
    if ttft < _INF and not started:
        left = r.arrival + ttft - now
        out.append(math.log1p(left) / _LOG_TIME if left > 0.0 else 0.0)
        out.append(math.log1p(-left) / _LOG_TIME if left < 0.0 else 0.0)
    else:
        out.append(1.0)
        out.append(0.0)
    if tpot < _INF:
        out.append(min(math.log1p(1000.0 * tpot) / _LOG_TPOT, 1.0))
        if started and r.generated > 1:
            ratio = (now - r.first_token_time) / ((r.generated - 1) * tpot)
            out.append(ratio if ratio < 10.0 else 10.0)
        else:
            out.append(0.0)
    else:
        out.append(1.0)
        out.append(0.0)


def _arrival_key(r: Request) -> float:
    return r.arrival


def _remaining_key(r: Request) -> tuple[float, float]:
    return (r.predicted_output - r.generated, r.arrival)


def select_slots(live: list[Request], holders: list[Request], num_slots: int, waiting_slots: int) -> list[Request]:
    """The requests shown in ``num_slots`` slots, requests holding KV first (``holders``, in the
    engine's priority order), then requests without KV (waiting or swapped).

    Everyone is shown when everyone fits. Otherwise ``waiting_slots`` slots (or as many as there
    are requests without KV) are kept for requests without KV, the holders get the rest, and
    slots that the holders leave free go to requests without KV too. The requests without KV
    shown are, with ``waiting_slots == 0``, the oldest (``Serve-v0/v1``); otherwise half of them
    (rounded up) are the oldest, the head of the FCFS queue, and the others the shortest by
    predicted remaining output, what size-based policies admit first.
    """
    K = num_slots
    n_holders = len(holders)
    if len(live) <= K:
        others = [r for r in live if r.blocks == 0]
        others.sort(key=_arrival_key)
        return holders + others
    others = [r for r in live if r.blocks == 0]
    w = min(waiting_slots, len(others))
    h = min(n_holders, K - w)
    w = min(K - h, len(others))
    slots = holders[:h]
    if w == 0:
        return slots
    if waiting_slots == 0:
        return slots + heapq.nsmallest(w, others, key=_arrival_key)
    n_oldest = (w + 1) // 2
    oldest = heapq.nsmallest(n_oldest, others, key=_arrival_key)
    chosen = {r.id for r in oldest}
    rest = [r for r in others if r.id not in chosen]
    return slots + oldest + heapq.nsmallest(w - n_oldest, rest, key=_remaining_key)


def global_features_into(
    out: list[float], engine: Engine, slots: list[Request], arrival_rate: float, num_requests: int, hidden: bool
) -> None:
    """Append the ``GLOBAL_FEATURES`` of ``engine`` (counters synced) with ``slots`` shown, and with
    ``hidden`` the ``HIDDEN_FEATURES`` of the requests left out. ``arrival_rate`` is the recent
    arrival rate over the engine's sustainable rate. Values are not capped here (the envs cap at 10)."""
    live = engine.live
    holders = len(engine.holders)
    running = engine.batch_size
    waiting = len(live) - holders - engine.n_swapped
    swap_total = engine.swap_capacity_blocks
    out.append(engine.free_blocks / engine.num_blocks)
    out.append(math.log1p(waiting) / _LOG_COUNT)
    out.append(math.log1p(running) / _LOG_COUNT)
    out.append(math.log1p(max(holders - running, 0)) / _LOG_COUNT)
    out.append(math.log1p(engine.n_swapped) / _LOG_COUNT)
    out.append(math.log1p(max(len(live) - len(slots), 0)) / _LOG_COUNT)
    out.append(math.log1p(1000.0 * engine.last_iteration_time) / _LOG_MS)
    out.append(arrival_rate)
    out.append(math.log1p(engine.now) / _LOG_DAY)
    out.append(engine.arrived / num_requests)
    out.append(engine.completed / num_requests)
    out.append(engine.free_swap_blocks / swap_total if swap_total else 1.0)
    if hidden:
        out.extend(hidden_summary(live, slots, engine.now, engine.num_blocks, engine.block_size))


def hidden_summary(live: list[Request], slots: list[Request], now: float, num_blocks: int, block_size: int) -> list[float]:
    """``HIDDEN_FEATURES`` of the live requests not in ``slots`` (0 each when none is hidden)."""
    if len(live) <= len(slots):
        return [0.0, 0.0, 0.0]
    shown = {r.id for r in slots}
    oldest = _INF
    shortest = _INF
    demand = 0
    for r in live:
        if r.id in shown:
            continue
        if r.arrival < oldest:
            oldest = r.arrival
        left = r.predicted_output - r.generated
        if left < shortest:
            shortest = left
        demand += _peak_blocks(r, block_size) - r.blocks
    if oldest == _INF:
        return [0.0, 0.0, 0.0]
    return [
        math.log1p(max(now - oldest, 0.0)) / _LOG_TIME,
        _log_length(int(shortest)) if shortest > 0.0 else 0.0,
        min(max(demand, 0) / num_blocks, 10.0),
    ]
