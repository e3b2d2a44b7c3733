"""Run metrics: the one place where every latency, throughput, SLO and stability figure is defined.

The engine hands per-request records as column arrays (``RECORD_FIELDS`` in request.py; one row
per request that arrived, written when it leaves the system or, for requests still inside, at the
end of the run) and a :class:`TimeSeries` it filled while running.

Per request (a FINISHED request; every time in seconds):

* end-to-end latency ``e2e = finish_time - arrival``;
* time to first token ``ttft = first_token_time - arrival``;
* time per output token ``tpot = (finish_time - first_token_time) / (output_len - 1)``, the mean
  gap between output tokens, defined only for ``output_len > 1``;
* normalized latency ``e2e / output_len`` (seconds per output token);
* queueing delay ``first_scheduled - arrival`` (time before first entering a batch);

Per run (``summarize``; a flat dict whose keys carry their units):

* ``<metric>_{mean,p50,p90,p99,max}_<unit>`` for ``e2e``, ``ttft``, ``tpot`` (s)
  and ``normalized_latency`` (s_per_token), and ``queueing_delay_mean_s``: over FINISHED requests
  only (NaN if none). Percentiles are numpy's default (linear interpolation); the maximum is
  exact (the worst-served request: starvation shows there first).
* ``arrived`` (records), ``finished``, ``rejected``, ``unfinished`` (neither: still inside at the
  end; reported, never dropped).
* ``output_tokens_per_s`` = output tokens of finished requests / duration; ``requests_per_s`` =
  finished requests / duration. ``duration_s`` is the run length given by the engine.
* ``slo_attainment``: fraction of ALL arrived requests that finished and met every target the
  :class:`SLO` gives (``ttft <= ttft_s``; ``tpot <= tpot_s``, which a one-token request meets by
  definition). Unfinished and rejected requests are misses. With no target this is the fraction
  finished. ``goodput_requests_per_s``: requests meeting the SLO / duration. A request of an SLO
  class is held to its class's targets (its ``ttft_slo_s`` / ``tpot_slo_s`` records) instead;
  ``slo_attainment_<class>`` and ``arrived_<class>`` give each class's attainment and count.
* ``preemptions`` (all modes), ``preemptions_recompute`` / ``_swap`` / ``_restart``,
  ``recomputed_tokens`` (tokens prefilled again), ``swapped_blocks`` (KV blocks swapped out) and
  ``swap_bytes`` = swapped_blocks x kv_bytes_per_block (bytes moved to CPU; swapping back in
  moves as many again; NaN without ``kv_bytes_per_block``).
* ``prediction_mae_tokens``: mean |initial predicted length - true output length| over all
  arrived requests.
* From the time series (NaN / "inconclusive" without one; intervals the engine did not observe
  count as an empty system): ``in_system_mean`` and ``waiting_mean`` (time averages over the run,
  so ``in_system_mean = arrival rate x mean time in system``, Little's law),
  ``kv_utilization_mean`` (time average of used / total KV blocks over the run),
  ``kv_utilization_max``, ``batch_size_mean`` (time average over the time the engine was busy),
  ``busy_fraction`` (busy time / duration), ``backlog_slope_per_s`` and ``stability``.

Stability verdict: a least-squares line through the backlog series (requests in system, bin
averages) over the second half of the arrival period (``TimeSeries.arrivals_end_s``, the last
arrival, when the runner sets it; otherwise the whole run): once arrivals stop every system drains,
so the drain must not hide growth. The run is "unstable" when the fitted growth over that
window exceeds both ``STABILITY_MIN_GROWTH`` requests and ``STABILITY_REL_GROWTH`` x the window's
mean backlog and the slope is significant, "stable" when the growth is confidently below that,
"inconclusive" in between, with fewer than ``STABILITY_MIN_POINTS`` points in the window (a run
too short for the series' resolution) or with no series (see :func:`backlog_trend`). When the runner
counts arrivals into the series (``TimeSeries.add_arrival``; ``simulate`` and the envs do), a window
in which more requests than average arrived is judged on the backlog minus that arrival excess, so
a burst late in a run of a stable queue is not read as instability.

:class:`StreamingSummary` gives the same dict from chunks of records without keeping them: counts,
sums and means are exact; percentiles come from log-spaced histograms (bins 2 % wide, value = the
bin's geometric midpoint), within 1 % relative error of the exact ones for values in
``[LogHistogram.LOW, LogHistogram.HIGH)`` (zeros are exact).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np

from .request import RECORD_FIELDS, RequestState
from .validation import ConfigError, check_number, check_positive, fail

NAN = math.nan
FINISHED = int(RequestState.FINISHED)
REJECTED = int(RequestState.REJECTED)

# (name, unit) of every per-request latency metric reported with mean / p50 / p90 / p99.
LATENCY_METRICS: tuple[tuple[str, str], ...] = (
    ("e2e", "s"),
    ("ttft", "s"),
    ("tpot", "s"),
    ("normalized_latency", "s_per_token"),
)
PERCENTILES: tuple[tuple[str, float], ...] = (("p50", 50.0), ("p90", 90.0), ("p99", 99.0))

STABILITY_MIN_POINTS = 16  # backlog points needed in the window for a verdict
STABILITY_MIN_GROWTH = 5.0  # requests: smaller fitted growth is noise
STABILITY_REL_GROWTH = 0.2  # fraction of the window's mean backlog
STABILITY_ARRIVAL_FRACTION = 0.03  # fraction of the window's arrivals left behind
STABILITY_BATCHES = 8  # batch means the trend is fitted to
STABILITY_T = 3.0  # standard errors a growing slope must clear to be called unstable
STABILITY_T_STABLE = 2.0  # standard errors under the threshold to be called stable


@dataclass(frozen=True)
class SLO:
    """Service-level objective; a target left None is not checked.

    Attributes:
        ttft_s: time-to-first-token target (s).
        tpot_s: mean time-per-output-token target (s).
    """

    ttft_s: float | None = None
    tpot_s: float | None = None

    def __post_init__(self) -> None:
        if self.ttft_s is not None:
            check_positive("slo.ttft_s", self.ttft_s)
        if self.tpot_s is not None:
            check_positive("slo.tpot_s", self.tpot_s)


# ------------------------------------------------------------------------------------------------
# Per-request definitions


# Record fields a hand-made record set may leave out, with the value that means "not given".
OPTIONAL_RECORD_FIELDS: dict[str, float] = {"slo_class": -1, "ttft_slo_s": math.inf, "tpot_slo_s": math.inf}


def _column(records: dict[str, np.ndarray], name: str) -> np.ndarray:
    if name in records:
        return np.asarray(records[name])
    return np.full(len(records["id"]), OPTIONAL_RECORD_FIELDS[name])


def request_metrics(records: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Per-request metrics of the FINISHED requests in ``records``, one entry per finished row.

    Keys: the names in ``LATENCY_METRICS`` plus ``queueing_delay`` (seconds; ``tpot`` is NaN
    where ``output_len == 1``), ``output_len``, and the request's class and SLO targets
    (``slo_class``, ``ttft_slo_s``, ``tpot_slo_s``; -1 and inf when it has none).
    """
    done = np.asarray(records["state"]) == FINISHED
    arrival = np.asarray(records["arrival"], dtype=np.float64)[done]
    first_token = np.asarray(records["first_token_time"], dtype=np.float64)[done]
    finish = np.asarray(records["finish_time"], dtype=np.float64)[done]
    out_len = np.asarray(records["output_len"], dtype=np.int64)[done]
    multi = out_len > 1
    e2e = finish - arrival
    with np.errstate(divide="ignore", invalid="ignore"):
        tpot = np.where(multi, (finish - first_token) / (out_len - 1), NAN)
    return {
        "e2e": e2e,
        "ttft": first_token - arrival,
        "tpot": tpot,
        "normalized_latency": e2e / out_len,
        "queueing_delay": np.asarray(records["first_scheduled"], dtype=np.float64)[done] - arrival,
        "output_len": out_len,
        "slo_class": _column(records, "slo_class").astype(np.int64)[done],
        "ttft_slo_s": _column(records, "ttft_slo_s").astype(np.float64)[done],
        "tpot_slo_s": _column(records, "tpot_slo_s").astype(np.float64)[done],
    }


def slo_met(metrics: dict[str, np.ndarray], slo: SLO | None) -> np.ndarray:
    """Which finished requests (rows of :func:`request_metrics`) meet their SLO targets.

    A request of a class is held to its class's targets (``ttft_slo_s``, ``tpot_slo_s``; inf: not
    checked); a request without a class to its own finite targets, else ``slo``'s.
    """
    ttft_target = metrics["ttft_slo_s"]
    tpot_target = metrics["tpot_slo_s"]
    unclassed = metrics["slo_class"] < 0  # a class's unset target is not checked; requests without one use slo's
    if slo is not None and slo.ttft_s is not None:
        ttft_target = np.where(unclassed & ~np.isfinite(ttft_target), slo.ttft_s, ttft_target)
    if slo is not None and slo.tpot_s is not None:
        tpot_target = np.where(unclassed & ~np.isfinite(tpot_target), slo.tpot_s, tpot_target)
    ok = metrics["ttft"] <= ttft_target
    ok &= (metrics["output_len"] <= 1) | (metrics["tpot"] <= tpot_target)
    return ok


def _check_records(records: dict[str, np.ndarray]) -> int:
    """Every record field is present and all columns have one length; returns it."""
    missing = [name for name in RECORD_FIELDS if name not in records and name not in OPTIONAL_RECORD_FIELDS]
    if missing:
        raise fail("records", sorted(records), f"all record fields; missing {missing}")
    lengths = {name: len(records[name]) for name in RECORD_FIELDS if name in records}
    if len(set(lengths.values())) > 1:
        raise fail("records", lengths, "columns of equal length")
    return lengths["id"]


@dataclass
class _Totals:
    """Counts and sums of a run's records: everything but the percentiles, exact and additive."""

    arrived: int = 0
    finished: int = 0
    rejected: int = 0
    output_tokens: int = 0
    slo_met: int = 0
    preemptions: int = 0
    preemptions_recompute: int = 0
    preemptions_swap: int = 0
    preemptions_restart: int = 0
    recomputed_tokens: int = 0
    swapped_blocks: int = 0
    prediction_abs_error: float = 0.0
    class_arrived: dict[int, int] = field(default_factory=dict)  # request class -> arrived
    class_slo_met: dict[int, int] = field(default_factory=dict)  # request class -> met its SLO
    sums: dict[str, float] = field(default_factory=dict)  # metric -> sum over defined values
    counts: dict[str, int] = field(default_factory=dict)  # metric -> number of defined values
    maxima: dict[str, float] = field(default_factory=dict)  # metric -> largest defined value

    def add(self, records: dict[str, np.ndarray], slo: SLO | None) -> dict[str, np.ndarray]:
        """Fold one chunk of records in; returns its :func:`request_metrics`."""
        self.arrived += _check_records(records)
        state = np.asarray(records["state"])
        per = request_metrics(records)
        self.finished += int(per["e2e"].shape[0])
        self.rejected += int(np.count_nonzero(state == REJECTED))
        self.output_tokens += int(per["output_len"].sum())
        met = slo_met(per, slo)
        self.slo_met += int(np.count_nonzero(met))
        classes = _column(records, "slo_class").astype(np.int64)
        for c in np.unique(classes[classes >= 0]).tolist():
            self.class_arrived[c] = self.class_arrived.get(c, 0) + int(np.count_nonzero(classes == c))
            self.class_slo_met[c] = self.class_slo_met.get(c, 0) + int(np.count_nonzero(met & (per["slo_class"] == c)))
        self.preemptions += int(np.sum(records["preemptions"]))
        self.preemptions_recompute += int(np.sum(records["recompute_preemptions"]))
        self.preemptions_swap += int(np.sum(records["swap_preemptions"]))
        self.preemptions_restart += int(np.sum(records["restart_preemptions"]))
        self.recomputed_tokens += int(np.sum(records["recomputed_tokens"]))
        self.swapped_blocks += int(np.sum(records["swapped_blocks"]))
        error = np.abs(np.asarray(records["predicted_len"], dtype=np.float64) - records["output_len"])
        self.prediction_abs_error += float(error.sum())
        for name in [m for m, _ in LATENCY_METRICS] + ["queueing_delay"]:
            values = per[name][~np.isnan(per[name])]
            self.sums[name] = self.sums.get(name, 0.0) + float(values.sum())
            self.counts[name] = self.counts.get(name, 0) + int(values.shape[0])
            if values.shape[0]:
                self.maxima[name] = max(self.maxima.get(name, -math.inf), float(values.max()))
        return per

    def mean(self, name: str) -> float:
        count = self.counts.get(name, 0)
        return self.sums[name] / count if count else NAN


def _assemble(
    totals: _Totals,
    percentiles: dict[str, list[float]],
    series: "TimeSeries | None",
    duration: float,
    kv_bytes_per_block: float | None,
    class_names: tuple[str, ...] | None = None,
) -> dict[str, float | int | str]:
    """The summary dict (see the module docstring) from totals and per-metric percentiles."""
    out: dict[str, float | int | str] = {
        "duration_s": float(duration),
        "arrived": totals.arrived,
        "finished": totals.finished,
        "unfinished": totals.arrived - totals.finished - totals.rejected,
        "rejected": totals.rejected,
    }
    for name, unit in LATENCY_METRICS:
        out[f"{name}_mean_{unit}"] = totals.mean(name)
        for (label, _), value in zip(PERCENTILES, percentiles[name]):
            out[f"{name}_{label}_{unit}"] = float(value)
        out[f"{name}_max_{unit}"] = totals.maxima.get(name, NAN)
    out["queueing_delay_mean_s"] = totals.mean("queueing_delay")
    out["output_tokens_per_s"] = totals.output_tokens / duration
    out["requests_per_s"] = totals.finished / duration
    out["slo_attainment"] = totals.slo_met / totals.arrived if totals.arrived else NAN
    out["goodput_requests_per_s"] = totals.slo_met / duration
    for c in sorted(totals.class_arrived):
        name = class_names[c] if class_names is not None and c < len(class_names) else f"class{c}"
        out[f"slo_attainment_{name}"] = totals.class_slo_met.get(c, 0) / totals.class_arrived[c]
        out[f"arrived_{name}"] = totals.class_arrived[c]
    out["preemptions"] = totals.preemptions
    out["preemptions_recompute"] = totals.preemptions_recompute
    out["preemptions_swap"] = totals.preemptions_swap
    out["preemptions_restart"] = totals.preemptions_restart
    out["recomputed_tokens"] = totals.recomputed_tokens
    out["swapped_blocks"] = totals.swapped_blocks
    out["swap_bytes"] = totals.swapped_blocks * float(kv_bytes_per_block) if kv_bytes_per_block is not None else NAN
    out["prediction_mae_tokens"] = totals.prediction_abs_error / totals.arrived if totals.arrived else NAN
    out.update(series.summary(duration) if series is not None else _no_series())
    return out


def _check_run_args(duration: float, kv_bytes_per_block: float | None) -> None:
    check_positive("duration", duration)
    if kv_bytes_per_block is not None:
        check_positive("kv_bytes_per_block", kv_bytes_per_block)


def summarize(
    records: dict[str, np.ndarray],
    series: "TimeSeries | None",
    *,
    duration: float,
    slo: SLO | None = None,
    kv_bytes_per_block: float | None = None,
    class_names: tuple[str, ...] | None = None,
) -> dict[str, float | int | str]:
    """Exact run summary of all ``records`` (see the module docstring for every key);
    ``class_names`` name the request classes in the per-class keys."""
    _check_run_args(duration, kv_bytes_per_block)
    totals = _Totals()
    per = totals.add(records, slo)
    percentiles = {}
    for name, _ in LATENCY_METRICS:
        values = per[name][~np.isnan(per[name])]
        qs = [q for _, q in PERCENTILES]
        percentiles[name] = list(np.percentile(values, qs)) if values.size else [NAN] * len(qs)
    return _assemble(totals, percentiles, series, duration, kv_bytes_per_block, class_names)


# ------------------------------------------------------------------------------------------------
# Streaming summary


class LogHistogram:
    """Counts of nonnegative values in log-spaced bins, for approximate percentiles.

    Bin ``i`` covers ``[LOW * RATIO**i, LOW * RATIO**(i+1))`` and stands for its geometric
    midpoint, so a value in ``[LOW, HIGH)`` is represented within ``sqrt(RATIO) - 1 < 1 %``
    relative error; values outside fall in the edge bins, zeros are counted exactly, and estimates
    are clamped to the exact minimum and maximum seen.
    """

    LOW: ClassVar[float] = 1e-7
    HIGH: ClassVar[float] = 1e7
    RATIO: ClassVar[float] = 1.02

    def __init__(self) -> None:
        self._log_ratio = math.log(self.RATIO)
        self.num_bins = math.ceil(math.log(self.HIGH / self.LOW) / self._log_ratio)
        self.counts = np.zeros(self.num_bins, dtype=np.int64)
        self.zeros = 0
        self.min = math.inf
        self.max = -math.inf

    def add(self, values: np.ndarray) -> None:
        """Count the finite values (negative ones are not expected; they count as zeros)."""
        values = np.asarray(values, dtype=np.float64)
        values = values[np.isfinite(values)]
        if values.size == 0:
            return
        self.min = min(self.min, float(values.min()))
        self.max = max(self.max, float(values.max()))
        positive = values[values > 0]
        self.zeros += int(values.size - positive.size)
        idx = np.floor(np.log(positive / self.LOW) / self._log_ratio).astype(np.int64)
        self.counts += np.bincount(np.clip(idx, 0, self.num_bins - 1), minlength=self.num_bins)

    def __len__(self) -> int:
        return self.zeros + int(self.counts.sum())

    def _order_statistic(self, ranks: np.ndarray, cumulative: np.ndarray) -> np.ndarray:
        """Estimated k-th smallest values (0-based ranks)."""
        bins = np.searchsorted(cumulative, ranks - self.zeros, side="right")
        mids = self.LOW * self.RATIO ** (bins + 0.5)
        return np.where(ranks < self.zeros, 0.0, np.clip(mids, self.min, self.max))

    def percentiles(self, qs: list[float]) -> list[float]:
        """numpy-style (linear) percentiles; NaN if empty."""
        n = len(self)
        if n == 0:
            return [NAN] * len(qs)
        cumulative = np.cumsum(self.counts)
        position = np.asarray(qs, dtype=np.float64) / 100.0 * (n - 1)
        below = np.floor(position).astype(np.int64)
        above = np.minimum(below + 1, n - 1)
        lo = self._order_statistic(below, cumulative)
        hi = self._order_statistic(above, cumulative)
        return list(lo + (position - below) * (hi - lo))


class StreamingSummary:
    """The :func:`summarize` dict from chunks of records, without keeping them.

    The SLO is fixed at construction because meeting it is decided per request as chunks arrive.
    Everything but the percentiles is exact; percentiles come from :class:`LogHistogram` (within
    1 % relative error).
    """

    def __init__(self, slo: SLO | None = None, class_names: tuple[str, ...] | None = None) -> None:
        self.slo = slo
        self.class_names = class_names
        self._totals = _Totals()
        self._histograms = {name: LogHistogram() for name, _ in LATENCY_METRICS}

    def add(self, records: dict[str, np.ndarray]) -> None:
        """Fold in one chunk of records (column arrays or lists, as ``RECORD_FIELDS``)."""
        per = self._totals.add(records, self.slo)
        for name, histogram in self._histograms.items():
            histogram.add(per[name])

    def result(
        self,
        series: "TimeSeries | None",
        duration: float,
        slo: SLO | None = None,
        kv_bytes_per_block: float | None = None,
    ) -> dict[str, float | int | str]:
        """The summary so far. ``slo``, if given, must be the one given at construction."""
        if slo is not None and slo != self.slo:
            raise ConfigError(
                f"slo={slo!r} is invalid: StreamingSummary decides SLO hits as records arrive; "
                f"expected the SLO given at construction ({self.slo!r}) or None"
            )
        _check_run_args(duration, kv_bytes_per_block)
        qs = [q for _, q in PERCENTILES]
        percentiles = {name: h.percentiles(qs) for name, h in self._histograms.items()}
        return _assemble(self._totals, percentiles, series, duration, kv_bytes_per_block, self.class_names)


# ------------------------------------------------------------------------------------------------
# Time series


def backlog_trend(
    times: np.ndarray, backlog: np.ndarray, arrival_rate: float = 0.0, arrival_excess: np.ndarray | None = None
) -> tuple[float, str]:
    """Slope (requests/s) of a backlog window and the stability verdict.

    ``arrival_excess`` (optional, one value per point): arrivals so far minus the run's mean rate
    times the time. Bursty arrivals make a stable queue's backlog rise wherever more requests than
    average arrived; when the arrival excess itself grows over the window (its trend, fitted the
    same way, is positive), the verdict is taken on ``backlog - arrival_excess``, the part of the
    backlog the arrivals do not explain (the backlog of a stable queue follows its arrivals; one
    that cannot keep up grows beyond them). With no growing excess, the backlog as it is.

    The backlog of a stable queue near saturation wanders widely and slowly, so a plain
    least-squares slope over a short run often looks like growth. We therefore fit the line to
    ``STABILITY_BATCHES`` batch means of the window (the batch means absorb the autocorrelation)
    and compare the growth over the window, ``slope x (times[-1] - times[0])``, with a threshold
    of ``max(STABILITY_MIN_GROWTH, STABILITY_REL_GROWTH x mean backlog,
    STABILITY_ARRIVAL_FRACTION x arrival_rate x window)`` requests (an overloaded queue keeps a
    fraction 1 - 1/load of its arrivals: 9 % at load 1.1): "unstable" when the growth exceeds it
    and the slope is at least ``STABILITY_T`` standard errors above zero; "stable" when even
    ``slope + STABILITY_T_STABLE`` standard errors stays under it; "inconclusive" otherwise, and
    (NaN, "inconclusive") with fewer than ``STABILITY_MIN_POINTS`` points.
    """
    times = np.asarray(times, dtype=np.float64)
    backlog = np.asarray(backlog, dtype=np.float64)
    if times.size < STABILITY_MIN_POINTS or times[-1] <= times[0]:
        return NAN, "inconclusive"
    batches = np.array_split(np.arange(times.size), STABILITY_BATCHES)
    t = np.array([times[b].mean() for b in batches])
    dt = t - t.mean()

    def fit(values: np.ndarray) -> tuple[float, float]:
        y = np.array([values[b].mean() for b in batches])
        slope = float(np.dot(dt, y - y.mean()) / np.dot(dt, dt))
        residual = y - y.mean() - slope * dt
        return slope, math.sqrt(float(np.dot(residual, residual)) / (len(t) - 2) / float(np.dot(dt, dt)))

    slope, stderr = fit(backlog)
    if arrival_excess is not None and len(arrival_excess) == len(backlog) and fit(np.asarray(arrival_excess))[0] > 0:
        slope, stderr = fit(backlog - np.asarray(arrival_excess, dtype=np.float64))
    span = times[-1] - times[0]
    threshold = max(
        STABILITY_MIN_GROWTH,
        STABILITY_REL_GROWTH * float(backlog.mean()),
        STABILITY_ARRIVAL_FRACTION * arrival_rate * span,
    )
    if slope * span > threshold and slope > STABILITY_T * stderr:
        return slope, "unstable"
    if (slope + STABILITY_T_STABLE * stderr) * span <= threshold:
        return slope, "stable"
    return slope, "inconclusive"  # some growth, not enough to tell within this run


def _no_series() -> dict[str, float | str]:
    keys = ("in_system_mean", "waiting_mean", "kv_utilization_mean", "kv_utilization_max")
    out: dict[str, float | str] = {key: NAN for key in keys}
    out.update(batch_size_mean=NAN, busy_fraction=NAN, backlog_slope_per_s=NAN, stability="inconclusive")
    return out


class TimeSeries:
    """What the engine was doing over time: time-weighted sums and a decimated backlog series.

    ``observe`` is O(1) (amortised) and memory is bounded: the backlog (requests in system) is
    kept as its time average over ``capacity`` equal bins starting at t = 0; when a time beyond
    the last bin arrives, neighbouring bins are merged pairwise (resolution halves) until it fits.
    """

    def __init__(self, capacity: int = 4096, resolution_s: float = 0.01) -> None:
        capacity = check_number("capacity", capacity, low=2 * STABILITY_MIN_POINTS, integer=True)
        if capacity % 2:
            raise fail("capacity", capacity, "an even integer")
        check_positive("resolution_s", resolution_s)
        self.capacity = int(capacity)
        self.bin_s = float(resolution_s)  # current bin width
        self._area: list[float] = [0.0] * self.capacity  # integral of in_system over each bin (a list:
        # one element updated per stretch, which a compiled list does far faster than a numpy array)
        self._arrived: list[float] = [0.0] * self.capacity  # arrivals in each bin (add_arrival)
        self._arrivals_seen = 0
        self.end_s = 0.0  # latest time observed
        self.busy_s = 0.0  # time with a nonempty batch
        self.in_system_area = 0.0
        self.waiting_area = 0.0
        self.batch_area = 0.0
        self.kv_area = 0.0  # integral of the used KV fraction
        self.kv_max = 0.0
        self.arrivals_end_s: float | None = None  # time of the last arrival (set by the runner)
        self.arrivals = 0  # requests that arrived (set by the runner)

    def observe(
        self,
        t0: float,
        t1: float,
        in_system: int,
        batch_size: int,
        kv_blocks_start: int,
        kv_blocks_end: int,
        kv_total_blocks: int,
        waiting: int,
    ) -> None:
        """The engine ran from ``t0`` to ``t1`` with ``in_system`` requests in the system,
        ``batch_size`` in each batch and ``waiting`` queued; KV use went about linearly from
        ``kv_blocks_start`` (the first iteration's) to ``kv_blocks_end`` (the last iteration's,
        taken before the requests finishing in it free their blocks, so a stretch that ends in
        completions is not averaged down to the freed state) of ``kv_total_blocks`` blocks."""
        if not 0.0 <= t0 <= t1:
            raise ValueError(f"TimeSeries.observe: need 0 <= t0 <= t1, got t0={t0!r}, t1={t1!r}")
        dt = t1 - t0
        self.end_s = max(self.end_s, t1)
        if batch_size > 0:
            self.busy_s += dt
            self.batch_area += dt * batch_size
        self.in_system_area += dt * in_system
        self.waiting_area += dt * waiting
        if kv_total_blocks > 0:
            self.kv_area += dt * (kv_blocks_start + kv_blocks_end) / (2.0 * kv_total_blocks)
            self.kv_max = max(self.kv_max, max(kv_blocks_start, kv_blocks_end) / kv_total_blocks)
        if dt > 0 and in_system:
            self._add_backlog(t0, t1, in_system)

    def _cover(self, t: float) -> None:
        """Halve the resolution until the bins reach time ``t``."""
        half = self.capacity // 2
        while t > self.capacity * self.bin_s:
            area = self._area
            self._area = [area[2 * i] + area[2 * i + 1] for i in range(half)] + [0.0] * half
            arrived = self._arrived
            self._arrived = [arrived[2 * i] + arrived[2 * i + 1] for i in range(half)] + [0.0] * half
            self.bin_s *= 2.0

    def add_arrival(self, t: float) -> None:
        """Count a request that arrived at time ``t`` (the runner calls it once per request, e.g.
        when the request leaves); the stability verdict uses the arrival counts to tell a burst of
        arrivals from a backlog that grows on its own."""
        self._cover(t)
        self._arrived[min(int(t // self.bin_s), self.capacity - 1)] += 1.0
        self._arrivals_seen += 1

    def _add_backlog(self, t0: float, t1: float, n: int) -> None:
        self._cover(t1)
        w = self.bin_s
        last = min(int(t1 // w), self.capacity - 1)
        first = min(int(t0 // w), last)
        if first >= last:
            self._area[first] += n * (t1 - t0)
            return
        area = self._area
        area[first] += n * ((first + 1) * w - t0)
        for i in range(first + 1, last):
            area[i] += n * w
        area[last] += n * (t1 - last * w)

    def backlog(self, until: float | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(bin mid-times, mean requests in system per bin) over ``[0, max(until, end_s)]``.

        Halves the resolution first if the bins do not reach ``until`` yet.
        """
        end = max(self.end_s, until or 0.0)
        if end <= 0.0:
            return np.zeros(0), np.zeros(0)
        self._cover(end)
        w = self.bin_s
        n = min(math.ceil(end / w), self.capacity)
        starts = np.arange(n) * w
        widths = np.minimum(starts + w, end) - starts  # the last bin may be partial
        keep = widths > 0  # a last bin of zero width can only come from rounding
        return (starts + widths / 2.0)[keep], np.asarray(self._area[:n])[keep] / widths[keep]

    def summary(self, duration: float) -> dict[str, float | str]:
        """The time-series keys of the run summary (see the module docstring)."""
        times, backlog = self.backlog(duration)
        # judge growth while requests still arrive: after the last arrival the backlog drains
        end = duration if self.arrivals_end_s is None else min(self.arrivals_end_s, duration)
        window = (times >= end / 2.0) & (times <= end)
        rate = self.arrivals / end if end > 0 else 0.0
        excess = None
        if self._arrivals_seen:
            # arrivals by each bin's mid-time, minus what the run's mean rate would have brought
            counts = np.asarray(self._arrived[: len(times)])
            arrived_by = np.cumsum(counts) - counts / 2.0
            excess = (arrived_by - self._arrivals_seen / end * times)[window] if end > 0 else None
        slope, verdict = backlog_trend(times[window], backlog[window], rate, excess)
        return {
            "in_system_mean": self.in_system_area / duration,
            "waiting_mean": self.waiting_area / duration,
            "kv_utilization_mean": self.kv_area / duration,
            "kv_utilization_max": self.kv_max,
            "batch_size_mean": self.batch_area / self.busy_s if self.busy_s > 0 else NAN,
            "busy_fraction": self.busy_s / duration,
            "backlog_slope_per_s": slope,
            "stability": verdict,
        }
