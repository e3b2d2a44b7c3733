"""Run metrics: hand-computed summaries, SLO counting, streaming vs exact, time series."""

from __future__ import annotations

import math

import numpy as np
import pytest

from llmsched_env.sim.metrics import (
    LATENCY_METRICS,
    PERCENTILES,
    SLO,
    LogHistogram,
    StreamingSummary,
    TimeSeries,
    backlog_trend,
    request_metrics,
    summarize,
)
from llmsched_env.sim.request import RECORD_FIELDS, RequestState
from llmsched_env.sim.validation import ConfigError

F, RUN, REJ = int(RequestState.FINISHED), int(RequestState.RUNNING), int(RequestState.REJECTED)
nan = math.nan

# Five requests, run of 10 s:
#   0 finished, 5 tokens: e2e 3, ttft 1, tpot 2/4 = 0.5, queueing 0.5, one recompute preemption
#   1 finished, 1 token:  e2e 1, ttft 1, no tpot, queueing 0
#   2 finished, 11 tokens: e2e 6, ttft 2, tpot 4/10 = 0.4, queueing 0.5, two swap preemptions
#   3 still running at the end (first token after 1 s), one restart preemption
#   4 rejected
ROWS = [
    # id arrival prompt out gen state first_sched first_tok finish pre rec swp rst recomp swapblk pred
    (0, 0.0, 10, 5, 5, F, 0.5, 1.0, 3.0, 1, 1, 0, 0, 12, 0, 4.0),
    (1, 1.0, 20, 1, 1, F, 1.0, 2.0, 2.0, 0, 0, 0, 0, 0, 0, 3.0),
    (2, 2.0, 30, 11, 11, F, 2.5, 4.0, 8.0, 2, 0, 2, 0, 0, 4, 20.0),
    (3, 3.0, 40, 100, 50, RUN, 3.5, 4.0, nan, 1, 0, 0, 1, 0, 0, 90.0),
    (4, 4.0, 50, 7, 0, REJ, nan, nan, nan, 0, 0, 0, 0, 0, 0, 7.0),
]


def records_from(rows) -> dict[str, np.ndarray]:
    columns = list(zip(*rows)) if rows else [()] * len(RECORD_FIELDS)
    return {name: np.asarray(col, dtype=np.float64 if isinstance(col[0] if col else 0.0, float) else np.int64)
            for name, col in zip(RECORD_FIELDS, columns)}


def hand_series() -> TimeSeries:
    series = TimeSeries()
    series.observe(0.0, 2.0, in_system=2, batch_size=2, kv_blocks_start=0, kv_blocks_end=10, kv_total_blocks=100, waiting=0)
    series.observe(2.0, 4.0, in_system=4, batch_size=3, kv_blocks_start=10, kv_blocks_end=30, kv_total_blocks=100, waiting=1)
    # 4..6 s not observed: an empty system.
    series.observe(6.0, 10.0, in_system=1, batch_size=1, kv_blocks_start=30, kv_blocks_end=30, kv_total_blocks=100, waiting=0)
    return series


EXPECTED = {
    "duration_s": 10.0,
    "arrived": 5,
    "finished": 3,
    "unfinished": 1,
    "rejected": 1,
    # e2e sorted [1, 3, 6]; numpy linear percentiles
    "e2e_mean_s": 10 / 3,
    "e2e_p50_s": 3.0,
    "e2e_p90_s": 5.4,
    "e2e_p99_s": 5.94,
    "e2e_max_s": 6.0,
    "ttft_mean_s": 4 / 3,
    "ttft_p50_s": 1.0,
    "ttft_p90_s": 1.8,
    "ttft_p99_s": 1.98,
    "ttft_max_s": 2.0,
    "tpot_mean_s": 0.45,
    "tpot_p50_s": 0.45,
    "tpot_p90_s": 0.49,
    "tpot_p99_s": 0.499,
    "tpot_max_s": 0.5,
    "normalized_latency_mean_s_per_token": (0.6 + 1.0 + 6 / 11) / 3,
    "normalized_latency_p50_s_per_token": 0.6,
    "normalized_latency_p90_s_per_token": 0.92,
    "normalized_latency_p99_s_per_token": 0.992,
    "normalized_latency_max_s_per_token": 1.0,
    "queueing_delay_mean_s": 1 / 3,
    "output_tokens_per_s": 1.7,
    "requests_per_s": 0.3,
    "slo_attainment": 0.2,
    "goodput_requests_per_s": 0.1,
    "preemptions": 4,
    "preemptions_recompute": 1,
    "preemptions_swap": 2,
    "preemptions_restart": 1,
    "recomputed_tokens": 12,
    "swapped_blocks": 4,
    "swap_bytes": 4000.0,
    "prediction_mae_tokens": 4.4,  # (1 + 2 + 9 + 10 + 0) / 5
    "in_system_mean": 1.6,  # (2*2 + 4*2 + 1*4) / 10
    "waiting_mean": 0.2,
    "kv_utilization_mean": 0.17,  # (2*0.05 + 2*0.2 + 4*0.3) / 10
    "kv_utilization_max": 0.3,
    "batch_size_mean": 1.75,  # (2*2 + 3*2 + 1*4) / 8 busy seconds
    "busy_fraction": 0.8,
    "stability": "stable",
}


def test_every_key_by_hand():
    summary = summarize(records_from(ROWS), hand_series(), duration=10.0, slo=SLO(ttft_s=1.5, tpot_s=0.45), kv_bytes_per_block=1000)
    assert set(summary) == set(EXPECTED) | {"backlog_slope_per_s"}
    for key, value in EXPECTED.items():
        if isinstance(value, str):
            assert summary[key] == value, key
        else:
            assert summary[key] == pytest.approx(value, rel=1e-9, abs=1e-12), key
            assert type(summary[key]) is type(value), key  # plain Python numbers for JSON / TensorBoard
    # The backlog over 5..10 s is a step from 0 to 1 at 6 s: a small positive trend, well under the threshold.
    assert 0.0 < summary["backlog_slope_per_s"] < 0.5


@pytest.mark.parametrize(
    "slo, met",
    [
        (None, 3),  # no target: every finished request counts
        (SLO(), 3),
        (SLO(ttft_s=2.0), 3),  # request 3 had its first token after 1 s but never finished: a miss
        (SLO(ttft_s=1.0), 2),
        (SLO(tpot_s=0.5), 3),  # targets are inclusive; the one-token request has no TPOT and meets it
        (SLO(tpot_s=0.45), 2),
        (SLO(ttft_s=1.5, tpot_s=0.45), 1),
        (SLO(ttft_s=0.5), 0),
    ],
)
def test_slo_counts_every_arrival_and_unfinished_requests_miss(slo, met):
    summary = summarize(records_from(ROWS), None, duration=10.0, slo=slo)
    assert summary["slo_attainment"] == pytest.approx(met / 5)
    assert summary["goodput_requests_per_s"] == pytest.approx(met / 10)


def test_per_request_definitions():
    per = request_metrics(records_from(ROWS))
    np.testing.assert_allclose(per["e2e"], [3, 1, 6])
    np.testing.assert_allclose(per["ttft"], [1, 1, 2])
    np.testing.assert_allclose(per["tpot"], [0.5, nan, 0.4])
    np.testing.assert_allclose(per["normalized_latency"], [0.6, 1.0, 6 / 11])
    np.testing.assert_allclose(per["queueing_delay"], [0.5, 0.0, 0.5])


def test_without_series_or_finished_requests():
    summary = summarize(records_from(ROWS[3:]), None, duration=5.0)
    assert (summary["arrived"], summary["finished"], summary["unfinished"], summary["rejected"]) == (2, 0, 1, 1)
    for name, unit in LATENCY_METRICS:
        assert math.isnan(summary[f"{name}_mean_{unit}"])
        for label, _ in PERCENTILES:
            assert math.isnan(summary[f"{name}_{label}_{unit}"])
    assert summary["output_tokens_per_s"] == 0.0 and summary["slo_attainment"] == 0.0
    assert math.isnan(summary["swap_bytes"]) and math.isnan(summary["in_system_mean"])
    assert summary["stability"] == "inconclusive"
    empty = summarize(records_from([]), None, duration=1.0)
    assert empty["arrived"] == 0 and math.isnan(empty["slo_attainment"]) and math.isnan(empty["prediction_mae_tokens"])


def test_littles_law_holds_for_a_consistent_run():
    # A arrives at 0 and leaves at 2, B arrives at 1 and leaves at 4.
    rows = [
        (0, 0.0, 4, 3, 3, F, 0.0, 0.5, 2.0, 0.8, 0, 0, 0, 0, 0, 0, 3.0),
        (1, 1.0, 4, 3, 3, F, 1.0, 1.5, 4.0, 1.5, 0, 0, 0, 0, 0, 0, 3.0),
    ]
    series = TimeSeries()
    series.observe(0.0, 1.0, 1, 1, 1, 1, 10, 0)
    series.observe(1.0, 2.0, 2, 2, 2, 2, 10, 0)
    series.observe(2.0, 4.0, 1, 1, 1, 1, 10, 0)
    summary = summarize(records_from(rows), series, duration=4.0)
    arrival_rate = 2 / 4.0
    assert summary["in_system_mean"] == pytest.approx(arrival_rate * summary["e2e_mean_s"])


def test_bad_inputs_raise_config_errors():
    records = records_from(ROWS)
    with pytest.raises(ConfigError, match="duration"):
        summarize(records, None, duration=0.0)
    with pytest.raises(ConfigError, match="kv_bytes_per_block"):
        summarize(records, None, duration=1.0, kv_bytes_per_block=-1)
    with pytest.raises(ConfigError, match="missing.*finish_time"):
        summarize({k: v for k, v in records.items() if k != "finish_time"}, None, duration=1.0)
    with pytest.raises(ConfigError, match="equal length"):
        summarize({**records, "arrival": records["arrival"][:2]}, None, duration=1.0)
    with pytest.raises(ConfigError, match=r"slo.ttft_s=-1"):
        SLO(ttft_s=-1)
    with pytest.raises(ConfigError, match=r"slo.tpot_s=0"):
        SLO(tpot_s=0)


# -- streaming ----------------------------------------------------------------------------------


def random_records(n: int, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    arrival = np.cumsum(rng.exponential(0.1, n))
    out = rng.integers(1, 600, n)
    queue = np.where(rng.random(n) < 0.3, 0.0, rng.exponential(0.5, n))
    ttft = queue + rng.lognormal(-3, 0.5, n)
    tpot = rng.lognormal(-4, 0.3, n)
    finish = arrival + ttft + tpot * (out - 1)
    state = rng.choice([F, F, F, F, F, F, F, F, RUN, REJ], n)
    done = state == F
    return {
        "id": np.arange(n),
        "arrival": arrival,
        "prompt_len": rng.integers(1, 2000, n),
        "output_len": out,
        "generated": np.where(done, out, 0),
        "state": state,
        "first_scheduled": np.where(state == REJ, nan, arrival + queue),
        "first_token_time": np.where(state == REJ, nan, arrival + ttft),
        "finish_time": np.where(done, finish, nan),
        "preemptions": rng.integers(0, 3, n),
        "recompute_preemptions": rng.integers(0, 2, n),
        "swap_preemptions": rng.integers(0, 2, n),
        "restart_preemptions": np.zeros(n, dtype=np.int64),
        "recomputed_tokens": rng.integers(0, 100, n),
        "swapped_blocks": rng.integers(0, 5, n),
        "predicted_len": out * rng.lognormal(0, 0.5, n),
    }


def test_streaming_summary_matches_the_exact_one():
    records = random_records(20_000, seed=1)
    slo = SLO(ttft_s=0.3, tpot_s=0.02)
    exact = summarize(records, hand_series(), duration=2500.0, slo=slo, kv_bytes_per_block=512.0)
    stream = StreamingSummary(slo)
    for start in range(0, 20_000, 3_000):  # uneven chunks
        stream.add({k: v[start : start + 3_000] for k, v in records.items()})
    approx = stream.result(hand_series(), 2500.0, slo=slo, kv_bytes_per_block=512.0)
    assert set(approx) == set(exact)
    percentile_keys = {f"{m}_{p}_{u}" for m, u in LATENCY_METRICS for p, _ in PERCENTILES}
    for key, value in exact.items():
        if key in percentile_keys:
            assert approx[key] == pytest.approx(value, rel=0.01), key
        elif isinstance(value, str):
            assert approx[key] == value, key
        else:
            assert approx[key] == pytest.approx(value, rel=1e-9), key
    assert 0.0 < exact["slo_attainment"] < 1.0


def test_streaming_summary_requires_its_own_slo():
    stream = StreamingSummary(SLO(ttft_s=1.0))
    stream.add(records_from(ROWS))
    assert stream.result(None, 10.0)["slo_attainment"] == pytest.approx(0.4)
    assert stream.result(None, 10.0, slo=SLO(ttft_s=1.0))["slo_attainment"] == pytest.approx(0.4)
    with pytest.raises(ConfigError, match="slo"):
        stream.result(None, 10.0, slo=SLO(ttft_s=2.0))


def test_log_histogram_relative_error_bound():
    # Values on and next to bin edges, across the whole range, plus zeros.
    rng = np.random.default_rng(4)
    edges = LogHistogram.LOW * LogHistogram.RATIO ** np.arange(0, 1600, 7)
    values = np.concatenate([edges, edges * (1 - 1e-12), rng.lognormal(0, 3, 5000), np.zeros(40)])
    hist = LogHistogram()
    hist.add(values[: len(values) // 2])
    hist.add(values[len(values) // 2 :])
    qs = list(np.linspace(0, 100, 201))
    exact = np.percentile(values, qs)
    approx = np.asarray(hist.percentiles(qs))
    np.testing.assert_allclose(approx, exact, rtol=0.01)
    assert hist.percentiles([0, 100]) == [0.0, values.max()]
    assert all(math.isnan(v) for v in LogHistogram().percentiles([50]))


# -- time series ----------------------------------------------------------------------------------


def test_time_series_weights_by_time():
    series = TimeSeries()
    series.observe(0.0, 1.0, in_system=10, batch_size=4, kv_blocks_start=0, kv_blocks_end=50, kv_total_blocks=100, waiting=6)
    series.observe(1.0, 4.0, in_system=2, batch_size=2, kv_blocks_start=50, kv_blocks_end=20, kv_total_blocks=100, waiting=0)
    series.observe(4.0, 4.0, in_system=99, batch_size=99, kv_blocks_start=90, kv_blocks_end=90, kv_total_blocks=100, waiting=99)
    out = series.summary(5.0)  # 4..5 s unobserved: empty
    assert out["in_system_mean"] == pytest.approx((10 + 6) / 5)
    assert out["waiting_mean"] == pytest.approx(6 / 5)
    assert out["batch_size_mean"] == pytest.approx((4 + 6) / 4)
    assert out["busy_fraction"] == pytest.approx(4 / 5)
    assert out["kv_utilization_mean"] == pytest.approx((0.25 + 3 * 0.35) / 5)
    assert out["kv_utilization_max"] == pytest.approx(0.9)  # a zero-length interval still shows its peak
    times, backlog = series.backlog()
    assert times[-1] == pytest.approx(4.0 - series.bin_s / 2)
    np.testing.assert_allclose(backlog[: int(round(1 / series.bin_s))], 10)
    np.testing.assert_allclose(backlog[int(round(1 / series.bin_s)) :], 2)


def test_backlog_is_decimated_within_its_bounds_and_conserves_area():
    series = TimeSeries(capacity=64, resolution_s=0.01)
    # Backlog n(t) = floor(t) for 100 s, observed in uneven pieces.
    t = 0.0
    for step in np.random.default_rng(0).uniform(0.001, 0.05, 4000):
        t1 = min(t + step, math.floor(t) + 1.0)
        series.observe(t, t1, int(math.floor(t)), 1, 0, 0, 1, 0)
        t = t1
        if t >= 100.0:
            break
    times, backlog = series.backlog()
    assert len(times) <= 64
    assert series.bin_s == pytest.approx(0.01 * 2**8)  # 64 bins of 2.56 s cover 100 s
    # Bins are bin_s wide except the last, partial one: their areas add up to the observed area.
    full = len(times) - 1
    area = backlog[:full].sum() * series.bin_s + backlog[-1] * (series.end_s - full * series.bin_s)
    assert area == pytest.approx(series.in_system_area, rel=1e-9)
    # Each bin holds the exact average of floor(t) over it.
    lo = np.arange(full) * series.bin_s
    grid = np.linspace(0.0, 1.0, 20001)
    exact = [np.floor(a + grid * series.bin_s).mean() for a in lo]
    np.testing.assert_allclose(backlog[:full], exact, atol=1e-3)
    assert series.summary(series.end_s)["stability"] == "unstable"


def test_one_long_interval_spans_many_bins():
    series = TimeSeries(capacity=64, resolution_s=1.0)
    series.observe(0.0, 10.5, 3, 1, 0, 0, 1, 0)
    times, backlog = series.backlog(20.0)
    assert len(times) == 20
    np.testing.assert_allclose(backlog[:10], 3.0)
    assert backlog[10] == pytest.approx(1.5)
    np.testing.assert_allclose(backlog[11:], 0.0)


def test_stability_verdicts_on_synthetic_backlogs():
    rng = np.random.default_rng(0)
    t = np.linspace(0, 1000, 2000)
    flat_noisy = 50 + rng.normal(0, 10, t.size)
    growing = 5 + 0.05 * t + rng.normal(0, 2, t.size)
    assert backlog_trend(t, flat_noisy)[1] == "stable"
    slope, verdict = backlog_trend(t, growing)
    assert verdict == "unstable" and slope == pytest.approx(0.05, rel=0.05)
    assert backlog_trend(t, 1000 + 0.05 * t)[1] == "stable"  # +50 on a backlog of 1000: under 20 %
    assert backlog_trend(t, 1 + 0.004 * t)[1] == "stable"  # +4 requests: under the absolute floor
    assert backlog_trend(t[:10], growing[:10])[1] == "inconclusive"
    assert math.isnan(backlog_trend(t[:10], growing[:10])[0])


def test_stability_from_observed_runs():
    stable, unstable, short = TimeSeries(), TimeSeries(), TimeSeries()
    rng = np.random.default_rng(1)
    for i in range(1000):  # 100 s in 0.1 s steps
        t0, t1 = i * 0.1, (i + 1) * 0.1
        stable.observe(t0, t1, int(rng.integers(20, 40)), 16, 0, 0, 1, 0)
        unstable.observe(t0, t1, 10 + i // 5, 16, 0, 0, 1, 0)
    short.observe(0.0, 0.1, 50, 16, 0, 0, 1, 0)
    assert stable.summary(100.0)["stability"] == "stable"
    assert unstable.summary(100.0)["stability"] == "unstable"
    assert unstable.summary(100.0)["backlog_slope_per_s"] == pytest.approx(2.0, rel=0.02)
    assert short.summary(0.1)["stability"] == "inconclusive"


def test_time_series_rejects_bad_times_and_sizes():
    with pytest.raises(ValueError):
        TimeSeries().observe(2.0, 1.0, 1, 1, 0, 0, 1, 0)
    with pytest.raises(ConfigError, match="capacity"):
        TimeSeries(capacity=63)
    with pytest.raises(ConfigError, match="resolution_s"):
        TimeSeries(resolution_s=0.0)
