"""Per-request features for agents: the one place that turns a request into numbers.

The environments show an agent up to K requests as rows of ``REQUEST_FEATURES``. Every feature
is scaled to roughly [0, 1] (log scales for lengths and times), and none reveals the true output
length: predictions are what the predictor says (exact only with the ``oracle`` predictor).
Compiled with the engine (see setup.py), because it runs at every environment step.
"""

from __future__ import annotations

import math

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

LENGTH_SCALE = 16384.0  # tokens mapped to 1.0
TIME_SCALE = 3600.0  # seconds mapped to 1.0
_LOG_LENGTH = math.log1p(LENGTH_SCALE)
_LOG_TIME = math.log1p(TIME_SCALE)
_PREEMPT_SCALE = _LOG_LENGTH / math.log1p(10.0)  # turns a length-scaled log into log1p(x)/log1p(10)
# log1p(n) / log1p(LENGTH_SCALE) for small whole n, looked up instead of computed (hot path)
_TABLE_SIZE = 1 << 15
_LOG_TABLE: list[float] = [math.log1p(i) / _LOG_LENGTH for i in range(_TABLE_SIZE)]
# state one-hot rows (waiting, running, paused, swapped), indexed by RequestState
_STATE_ROWS: list[tuple[float, float, float, float]] = [
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


def request_features(requests: list[Request], now: float, num_blocks: int, block_size: int) -> list[float]:
    """Row-major features of ``requests`` (len(requests) x NUM_REQUEST_FEATURES), counters synced."""
    out: list[float] = []
    inv_blocks = 1.0 / num_blocks
    for r in requests:
        state = int(r.state)
        kv = r.kv_tokens
        if state == RequestState.WAITING:
            progress = 0.0
        elif kv < r.prefill_target:
            progress = kv / r.prefill_target
        else:
            progress = 1.0
        predicted = int(r.predicted_output)
        first = r.first_scheduled if r.first_scheduled == r.first_scheduled else now
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
        out.append((r.swap_blocks if state == RequestState.SWAPPED else (kv + block_size - 1) // block_size) * inv_blocks)
    return out
