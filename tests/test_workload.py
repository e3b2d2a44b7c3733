"""Workloads: config validation, arrival processes, length distributions, presets, streaming, CRN."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from llmsched_env.sim.request import RequestBatch
from llmsched_env.sim.traces import TraceError
from llmsched_env.sim.validation import ConfigError
from llmsched_env.sim.workload import (
    PRESET_DIR,
    PresetAxis,
    WorkloadConfig,
    available_length_presets,
    generate,
    load_length_preset,
    mean_lengths,
    sample_lengths,
    spearman_correlation,
)

FIXTURES = Path(__file__).resolve().parent / "fixtures"
DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
PRESETS = ["arxiv-summarization", "azure-code", "azure-conv", "mooncake-conversation", "mooncake-synthetic", "servegen-deepseek-r1", "sharegpt"]


def run(cfg: WorkloadConfig, rate: float | None, seed=0, chunk_size: int = 8192) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    batches = list(generate(cfg, rate, seed, chunk_size))
    return tuple(np.concatenate([getattr(b, f) for b in batches]) for f in ("arrival_time", "prompt_len", "output_len"))


def iat_stats(times: np.ndarray) -> tuple[float, float]:
    """Mean rate and CV of the inter-arrival times (first IAT measured from 0)."""
    gaps = np.diff(np.concatenate([[0.0], times]))
    return len(times) / times[-1], gaps.std() / gaps.mean()


def timed_trace(tmp_path: Path, times=(0, 1, 3), prompts=(10, 20, 30), outputs=(1, 2, 3)) -> str:
    rows = "".join(f"{t},{p},{o}\n" for t, p, o in zip(times, prompts, outputs))
    path = tmp_path / "trace.csv"
    path.write_text("arrived_at,num_prefill_tokens,num_decode_tokens\n" + rows)
    return str(path)


# -- configuration --------------------------------------------------------------------------------


def test_defaults():
    cfg = WorkloadConfig()
    assert cfg.lengths == "sharegpt" and cfg.arrival == "poisson" and cfg.num_requests == 1000


@pytest.mark.parametrize(
    "kwargs, field",
    [
        (dict(lengths="zipf"), "lengths"),
        (dict(prompt_mean=0.5), "prompt_mean"),
        (dict(output_mean=float("nan")), "output_mean"),
        (dict(lengths="fixed", prompt_mean=10.5), "prompt_mean"),
        (dict(prompt_sigma=-0.1), "prompt_sigma"),
        (dict(lengths="lognormal", length_correlation=1.5), "length_correlation"),
        (dict(lengths="sharegpt", length_correlation=0.5), "length_correlation"),
        (dict(lengths="poisson", length_correlation=0.5), "length_correlation"),
        (dict(uniform_spread=0.0), "uniform_spread"),
        (dict(uniform_spread=1.5), "uniform_spread"),
        (dict(max_prompt_len=0), "max_prompt_len"),
        (dict(max_output_len=2.5), "max_output_len"),
        (dict(arrival="burst"), "arrival"),
        (dict(arrival_cv=0.0), "arrival_cv"),
        (dict(burst_on_s=0.0), "burst_on_s"),
        (dict(burst_off_s=-1.0), "burst_off_s"),
        (dict(num_requests=0), "num_requests"),
        (dict(num_requests=True), "num_requests"),
        (dict(lengths="trace"), "trace_path"),
        (dict(arrival="trace"), "trace_path"),
        (dict(trace_path="x.csv"), "trace_path"),  # set but unused: almost surely a mistake
        (dict(lengths="trace", trace_path=""), "trace_path"),
        (dict(lengths="trace", trace_path="x.csv", trace_format="parquet"), "trace_format"),
        (dict(lengths="trace", trace_path="x.csv", trace_time_unit="h"), "trace_time_unit"),
        (dict(lengths="trace", trace_path="x.csv", trace_format="csv", trace_prompt_column="p"), "trace_output_column"),
        (dict(lengths="trace", trace_path="x.csv", trace_format="azure", trace_prompt_column="p"), "trace_prompt_column"),
        (
            dict(arrival="trace", trace_path="x.csv", trace_format="csv", trace_prompt_column="p", trace_output_column="o"),
            "trace_time_column",
        ),
    ],
)
def test_bad_config_names_the_field(kwargs, field):
    with pytest.raises(ConfigError) as e:
        WorkloadConfig(**kwargs)
    assert str(e.value).startswith(f"{field}=")


def test_config_normalises_paths_and_whole_floats(tmp_path):
    cfg = WorkloadConfig(lengths="trace", trace_path=tmp_path / "t.csv", num_requests=10.0, max_prompt_len=64.0)
    assert cfg.trace_path == str(tmp_path / "t.csv")
    assert cfg.num_requests == 10 and isinstance(cfg.num_requests, int)
    assert cfg.max_prompt_len == 64 and isinstance(cfg.max_prompt_len, int)


@pytest.mark.parametrize(
    "rate, seed, chunk_size, field",
    [(0.0, 0, 10, "rate"), (-1.0, 0, 10, "rate"), (None, 0, 10, "rate"), (1.0, -1, 10, "seed"),
     (1.0, 1.5, 10, "seed"), (1.0, True, 10, "seed"), (1.0, 0, 0, "chunk_size")],
)
def test_bad_generate_arguments_raise_at_the_call(rate, seed, chunk_size, field):
    with pytest.raises(ConfigError) as e:
        generate(WorkloadConfig(), rate, seed, chunk_size)  # no next(): errors are eager
    assert str(e.value).startswith(f"{field}=")


# -- generation: shape, streaming, determinism ---------------------------------------------------


def test_chunks_cover_the_workload_with_consecutive_ids():
    cfg = WorkloadConfig(num_requests=2500)
    batches = list(generate(cfg, 5.0, 0, chunk_size=1000))
    assert [b.first_id for b in batches] == [0, 1000, 2000]
    assert [len(b) for b in batches] == [1000, 1000, 500]
    for b in batches:
        assert isinstance(b, RequestBatch)
        assert b.arrival_time.dtype == np.float64
        assert b.prompt_len.dtype == np.int64 and b.output_len.dtype == np.int64
        assert b.predicted_len is None
    t = np.concatenate([b.arrival_time for b in batches])
    assert t[0] > 0 and np.all(np.diff(t) >= 0)


def test_generation_streams():
    # A billion requests: only the first chunk is ever made.
    first = next(generate(WorkloadConfig(num_requests=10**9), 1.0, 0, chunk_size=100))
    assert len(first) == 100 and first.first_id == 0


ARRIVALS = [
    dict(arrival="poisson"),
    dict(arrival="gamma", arrival_cv=3.0),
    dict(arrival="onoff", burst_on_s=0.5, burst_off_s=2.0),
    dict(arrival="deterministic"),
]
LENGTHS = [
    dict(lengths="lognormal", length_correlation=0.6),
    dict(lengths="poisson"),
    dict(lengths="uniform"),
    dict(lengths="fixed"),
    dict(lengths="azure-conv"),
]


@pytest.mark.parametrize("arrival", ARRIVALS)
@pytest.mark.parametrize("lengths", LENGTHS)
def test_output_does_not_depend_on_chunk_size(arrival, lengths):
    cfg = WorkloadConfig(num_requests=3000, **arrival, **lengths)
    reference = run(cfg, 7.0, 11, chunk_size=8192)
    for chunk_size in (1, 7, 1000):
        for a, b in zip(reference, run(cfg, 7.0, 11, chunk_size=chunk_size)):
            np.testing.assert_array_equal(a, b)


def test_same_seed_same_output_and_seed_sequences_are_not_consumed():
    cfg = WorkloadConfig(num_requests=500, arrival="onoff")
    a, b = run(cfg, 3.0, 42), run(cfg, 3.0, 42)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)
    c = run(cfg, 3.0, 43)
    assert not np.array_equal(a[0], c[0]) and not np.array_equal(a[1], c[1])
    ss = np.random.SeedSequence(42)
    d, e = run(cfg, 3.0, ss), run(cfg, 3.0, ss)
    np.testing.assert_array_equal(d[1], e[1])
    np.testing.assert_array_equal(d[0], a[0])  # SeedSequence(42) and 42 are the same seed


def test_common_random_numbers_across_rates_and_arrival_processes():
    lengths = dict(lengths="lognormal", prompt_mean=300.0, length_correlation=0.3, num_requests=2000)
    base = run(WorkloadConfig(**lengths), 1.0, 5)
    for arrival in ARRIVALS:
        for rate in (0.5, 20.0):
            _, prompt, output = run(WorkloadConfig(**lengths, **arrival), rate, 5)
            np.testing.assert_array_equal(prompt, base[1])
            np.testing.assert_array_equal(output, base[2])
    # ... and arrivals do not depend on the length distribution.
    times, _, _ = run(WorkloadConfig(lengths="azure-code", num_requests=2000), 1.0, 5)
    np.testing.assert_array_equal(times, base[0])


@pytest.mark.parametrize("lengths", LENGTHS)
def test_sample_lengths_are_the_generated_lengths(lengths):
    cfg = WorkloadConfig(num_requests=1000, **lengths)
    _, prompt, output = run(cfg, 1.0, 9)
    p, o = sample_lengths(cfg, 600, 9)
    np.testing.assert_array_equal(p, prompt[:600])
    np.testing.assert_array_equal(o, output[:600])
    assert sample_lengths(cfg, 0, 9)[0].shape == (0,)


# -- arrival processes ----------------------------------------------------------------------------


def test_deterministic_arrivals_exact():
    times, _, _ = run(WorkloadConfig(arrival="deterministic", num_requests=5), 4.0)
    assert times.tolist() == [0.25, 0.5, 0.75, 1.0, 1.25]


def test_poisson_rate_and_cv():
    times, _, _ = run(WorkloadConfig(arrival="poisson", lengths="fixed", num_requests=200_000), 7.0, 1)
    rate, cv = iat_stats(times)
    assert rate == pytest.approx(7.0, rel=0.01) and cv == pytest.approx(1.0, rel=0.02)


@pytest.mark.parametrize("cv", [0.5, 2.0, 4.0])
def test_gamma_rate_and_cv(cv):
    times, _, _ = run(WorkloadConfig(arrival="gamma", arrival_cv=cv, lengths="fixed", num_requests=200_000), 3.0, 2)
    rate, got = iat_stats(times)
    assert rate == pytest.approx(3.0, rel=0.03) and got == pytest.approx(cv, rel=0.05)


@pytest.mark.parametrize("on, off, rate", [(10.0, 10.0, 1.0), (1.0, 3.0, 5.0), (5.0, 1.0, 2.0)])
def test_onoff_rate_and_cv_match_the_interrupted_poisson_process(on, off, rate):
    times, _, _ = run(WorkloadConfig(arrival="onoff", burst_on_s=on, burst_off_s=off, lengths="fixed", num_requests=200_000), rate, 3)
    got_rate, got_cv = iat_stats(times)
    lam, a, b = rate * (on + off) / on, 1 / on, 1 / off
    assert got_rate == pytest.approx(rate, rel=0.03)
    assert got_cv == pytest.approx(math.sqrt(1 + 2 * lam * a / (a + b) ** 2), rel=0.05)


def test_onoff_has_silent_periods():
    times, _, _ = run(WorkloadConfig(arrival="onoff", burst_on_s=1.0, burst_off_s=9.0, lengths="fixed", num_requests=5000), 1.0, 4)
    gaps = np.diff(times)
    # OFF periods (mean 9 s) dwarf the ON-time gaps (mean 0.1 s).
    assert np.mean(gaps > 3.0) > 0.02 and np.median(gaps) < 0.2


def test_trace_arrivals_replay_scale_and_cycle(tmp_path):
    path = timed_trace(tmp_path)  # times 0, 1, 3: rate (n-1)/span = 2/3, period 3 * 3/2 = 4.5
    cfg = WorkloadConfig(arrival="trace", lengths="trace", trace_path=path, num_requests=7)
    times, prompt, output = run(cfg, None)
    assert times.tolist() == [0.0, 1.0, 3.0, 4.5, 5.5, 7.5, 9.0]
    assert prompt.tolist() == [10, 20, 30, 10, 20, 30, 10] and output.tolist() == [1, 2, 3, 1, 2, 3, 1]
    fast, _, _ = run(cfg, 4 / 3)  # twice the trace's rate: half the times
    np.testing.assert_allclose(fast, [0.0, 0.5, 1.5, 2.25, 2.75, 3.75, 4.5])
    # Long run: request k*n arrives at exactly k*n/rate.
    long = WorkloadConfig(arrival="trace", lengths="trace", trace_path=path, num_requests=301)
    t, _, _ = run(long, 2.5, chunk_size=64)
    assert t[300] == pytest.approx(300 / 2.5)


def test_trace_arrivals_with_synthetic_lengths(tmp_path):
    cfg = WorkloadConfig(arrival="trace", lengths="uniform", trace_path=timed_trace(tmp_path), num_requests=4)
    times, prompt, _ = run(cfg, None)
    assert times.tolist() == [0.0, 1.0, 3.0, 4.5] and prompt.min() >= 256


def test_length_only_trace_cannot_give_arrivals():
    cfg = WorkloadConfig(arrival="trace", lengths="sharegpt", trace_path=str(FIXTURES / "lengths_small.csv"))
    with pytest.raises(ConfigError, match="arrival='trace'") as e:
        generate(cfg, None, 0)
    assert "no timestamps" in str(e.value)


def test_trace_with_zero_span_cannot_give_arrivals(tmp_path):
    cfg = WorkloadConfig(arrival="trace", trace_path=timed_trace(tmp_path, times=(2, 2, 2)))
    with pytest.raises(ConfigError, match="trace_path="):
        generate(cfg, 1.0, 0)


def test_missing_trace_file_is_reported(tmp_path):
    cfg = WorkloadConfig(lengths="trace", trace_path=str(tmp_path / "gone.csv"))
    with pytest.raises(TraceError, match="gone.csv"):
        generate(cfg, 1.0, 0)


def test_generic_csv_trace_through_the_config():
    cfg = WorkloadConfig(
        arrival="trace",
        lengths="trace",
        trace_path=str(FIXTURES / "generic_ms.csv"),
        trace_prompt_column="input tokens",
        trace_output_column="output tokens",
        trace_time_column="t_ms",
        trace_time_unit="ms",
        num_requests=4,
    )
    times, prompt, _ = run(cfg, None)
    np.testing.assert_allclose(times, [0.0, 0.25, 0.25, 1.0])
    assert prompt.tolist() == [5, 7, 1, 9]


def test_trace_cache_follows_file_changes(tmp_path):
    path = timed_trace(tmp_path)
    cfg = WorkloadConfig(lengths="trace", trace_path=path, num_requests=3)
    assert run(cfg, 1.0)[1].tolist() == [10, 20, 30]
    timed_trace(tmp_path, prompts=(1000, 2000, 3000))  # a different size, so a different stamp
    assert run(cfg, 1.0)[1].tolist() == [1000, 2000, 3000]
    assert not cfg.read_trace().prompt_len.flags.writeable  # cached arrays are shared


# -- length distributions -------------------------------------------------------------------------


def test_lognormal_mean_sigma_and_copula():
    cfg = WorkloadConfig(lengths="lognormal", prompt_mean=2000.0, output_mean=500.0, prompt_sigma=0.8, output_sigma=0.5, length_correlation=0.7)
    p, o = sample_lengths(cfg, 200_000, 1)
    assert p.mean() == pytest.approx(2000, rel=0.01) and o.mean() == pytest.approx(500, rel=0.01)
    assert np.log(p).std() == pytest.approx(0.8, rel=0.01) and np.log(o).std() == pytest.approx(0.5, rel=0.01)
    assert np.corrcoef(np.log(p), np.log(o))[0, 1] == pytest.approx(0.7, abs=0.01)
    assert spearman_correlation(p, o) == pytest.approx(6 / math.pi * math.asin(0.35), abs=0.01)
    assert np.median(p) == pytest.approx(2000 * math.exp(-0.32), rel=0.02)  # median = mean * e^(-sigma^2/2)


def test_lognormal_negative_correlation_and_clamp_to_one():
    cfg = WorkloadConfig(lengths="lognormal", prompt_mean=3.0, output_mean=3.0, prompt_sigma=2.0, length_correlation=-0.5)
    p, o = sample_lengths(cfg, 50_000, 2)
    assert p.min() == 1 and o.min() >= 1
    assert spearman_correlation(p, o) < -0.3


def test_poisson_lengths():
    p, o = sample_lengths(WorkloadConfig(lengths="poisson", prompt_mean=40.0, output_mean=1.0), 200_000, 3)
    assert p.mean() == pytest.approx(40, rel=0.01) and p.var() == pytest.approx(40, rel=0.03)
    assert o.min() == 1 and o.mean() == pytest.approx(1 + math.exp(-1), rel=0.01)  # zeros raised to 1


def test_fixed_and_uniform_lengths_exact():
    p, o = sample_lengths(WorkloadConfig(lengths="fixed", prompt_mean=300, output_mean=7), 100, 0)
    assert set(p.tolist()) == {300} and set(o.tolist()) == {7}
    p, o = sample_lengths(WorkloadConfig(lengths="uniform", prompt_mean=10.0, output_mean=512.0), 100_000, 0)
    assert p.min() == 5 and p.max() == 15 and np.bincount(p)[5:].min() > 8000  # all 11 values, ~9091 each
    assert o.min() == 256 and o.max() == 768
    p, _ = sample_lengths(WorkloadConfig(lengths="uniform", prompt_mean=10.0, uniform_spread=1.0), 10_000, 0)
    assert p.min() == 1 and p.max() == 20  # round(0) is raised to 1


def test_clipping_applies_to_every_kind(tmp_path):
    for lengths in ("lognormal", "poisson", "uniform", "fixed", "sharegpt"):
        cfg = WorkloadConfig(lengths=lengths, prompt_mean=800, output_mean=500, max_prompt_len=400, max_output_len=300)
        p, o = sample_lengths(cfg, 20_000, 0)
        assert p.max() == 400 and o.max() == 300 and p.min() >= 1
    p, _ = sample_lengths(WorkloadConfig(lengths="trace", trace_path=timed_trace(tmp_path), max_prompt_len=15), 3, 0)
    assert p.tolist() == [10, 15, 15]


# -- mean_lengths ---------------------------------------------------------------------------------


def test_mean_lengths_hand_values(tmp_path):
    assert mean_lengths(WorkloadConfig(lengths="fixed", prompt_mean=300, output_mean=7)) == (300.0, 7.0)
    assert mean_lengths(WorkloadConfig(lengths="fixed", prompt_mean=300, output_mean=7, max_prompt_len=100)) == (100.0, 7.0)
    # uniform 5..15 clipped at 12: (5+...+12 + 3*12) / 11 = 104/11
    p, o = mean_lengths(WorkloadConfig(lengths="uniform", prompt_mean=10.0, output_mean=512.0, max_prompt_len=12))
    assert p == pytest.approx(104 / 11, rel=1e-12) and o == 512.0
    p, o = mean_lengths(WorkloadConfig(lengths="poisson", prompt_mean=1.0, output_mean=30.0))
    assert p == pytest.approx(1 + math.exp(-1), rel=1e-12) and o == pytest.approx(30.0 + math.exp(-30), rel=1e-12)
    p, _ = mean_lengths(WorkloadConfig(lengths="lognormal", prompt_mean=50.0, prompt_sigma=0.0))
    assert p == 50.0
    # trace, 7 requests over 3 rows cycling: (2*(10+20+30) + 10) / 7
    cfg = WorkloadConfig(lengths="trace", trace_path=timed_trace(tmp_path), num_requests=7)
    assert mean_lengths(cfg) == pytest.approx((130 / 7, 13 / 7), rel=1e-12)


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(lengths="lognormal", prompt_mean=800.0, output_mean=200.0, prompt_sigma=1.2),
        dict(lengths="lognormal", prompt_mean=800.0, output_mean=200.0, max_prompt_len=1000, max_output_len=150),
        dict(lengths="lognormal", prompt_mean=20.0, output_mean=200.0, prompt_sigma=1.5),
        dict(lengths="poisson", prompt_mean=3.0, output_mean=200.0, max_output_len=190),
        dict(lengths="uniform", prompt_mean=100.0, uniform_spread=0.9, max_prompt_len=150),
        dict(lengths="sharegpt"),
        dict(lengths="azure-conv", max_prompt_len=2048, max_output_len=256),
        dict(lengths="mooncake-conversation", max_prompt_len=32768),
    ],
)
def test_mean_lengths_match_large_samples(kwargs):
    cfg = WorkloadConfig(**kwargs)
    p, o = sample_lengths(cfg, 400_000, 7)
    mp, mo = mean_lengths(cfg)
    assert mp == pytest.approx(p.mean(), rel=0.01) and mo == pytest.approx(o.mean(), rel=0.01)


# -- presets --------------------------------------------------------------------------------------


def test_available_presets():
    assert available_length_presets() == PRESETS
    with pytest.raises(ConfigError, match="lengths='nope'"):
        load_length_preset("nope")


def test_preset_axis_sampling_and_exact_means():
    # fine bins [1,2) [2,3) [3,5); coarse bins [1,3) [3,5); the fine bin [2,3) is empty.
    axis = PresetAxis(edges=np.array([1, 2, 3, 5]), counts=np.array([1, 0, 3]), coarse_edges=np.array([1, 3, 5]))
    u = np.random.default_rng(0).random(100_000)
    assert set(axis.sample(np.zeros(10, np.int64), u[:10]).tolist()) == {1}
    x = axis.sample(np.ones(len(u), np.int64), u)
    p4 = math.log(5 / 4) / math.log(5 / 3)  # P(floor(log-uniform on [3, 5)) = 4)
    assert set(x.tolist()) == {3, 4} and np.mean(x == 4) == pytest.approx(p4, abs=0.005)
    np.testing.assert_allclose(axis.coarse_means(None), [1.0, 3 + p4], rtol=1e-12)
    np.testing.assert_allclose(axis.coarse_means(3), [1.0, 3.0], rtol=1e-12)
    assert axis.sample(np.array([1]), np.array([np.nextafter(1.0, 0.0)])).tolist() == [4]


@pytest.mark.parametrize("name", PRESETS)
def test_preset_files_are_consistent_and_documented(name):
    path = PRESET_DIR / f"{name}.json"
    assert path.stat().st_size < 40_000
    data = json.loads(path.read_text())
    assert set(data["source"]) >= {"file", "origin", "commit", "license", "citation"}
    p = load_length_preset(name)
    stats = p.trace_stats
    assert p.cell_count.sum() == stats["rows"] == p.prompt.counts.sum() == p.output.counts.sum()
    for axis, bins, key in ((p.prompt, p.cell_prompt_bin, "prompt"), (p.output, p.cell_output_bin, "output")):
        assert len(axis.coarse_edges) <= 41 and len(axis.edges) <= 161
        assert np.isin(axis.coarse_edges, axis.edges).all()
        assert axis.edges[0] == stats[key]["min"] and axis.edges[-1] == stats[key]["max"] + 1
        # The joint histogram's marginal equals the fine histogram grouped into coarse bins.
        first = np.searchsorted(axis.edges, axis.coarse_edges)
        grouped = np.add.reduceat(axis.counts, first[:-1])
        np.testing.assert_array_equal(np.bincount(bins, weights=p.cell_count, minlength=len(grouped)), grouped)
    timed = name.startswith(("azure", "mooncake"))
    assert (p.arrival_stats is not None) == timed
    if timed:
        assert p.arrival_stats["mean_rate"] > 0 and p.arrival_stats["iat_cv"] > 0


@pytest.mark.parametrize("name", PRESETS)
def test_preset_samples_match_the_trace(name):
    stats = load_length_preset(name).trace_stats
    cfg = WorkloadConfig(lengths=name)
    p, o = sample_lengths(cfg, 300_000, 0)
    exact = mean_lengths(cfg)
    for x, key, mean in ((p, "prompt", exact[0]), (o, "output", exact[1])):
        rec = stats[key]
        assert x.mean() == pytest.approx(rec["mean"], rel=0.03)
        assert mean == pytest.approx(rec["mean"], rel=0.01)  # measured: within 0.5 %
        assert np.median(x) == pytest.approx(rec["median"], rel=0.10)
        assert np.percentile(x, 90) == pytest.approx(rec["p90"], rel=0.10)
        assert np.percentile(x, 99) == pytest.approx(rec["p99"], rel=0.10)
        assert x.min() >= rec["min"] and x.max() <= rec["max"]
    assert spearman_correlation(p, o) == pytest.approx(stats["spearman"], abs=0.03)


def test_spearman_handles_ties():
    assert spearman_correlation(np.array([1, 2, 2, 3]), np.array([1, 2, 2, 3])) == pytest.approx(1.0)
    assert spearman_correlation(np.array([1, 2, 3, 4]), np.array([4, 3, 2, 1])) == pytest.approx(-1.0)
    # ranks (1, 2.5, 2.5, 4) vs (1, 2, 3, 4): Pearson = 4.5 / sqrt(4.5 * 5)
    assert spearman_correlation(np.array([1, 2, 2, 3]), np.array([1, 2, 3, 4])) == pytest.approx(4.5 / math.sqrt(4.5 * 5))


# -- property test --------------------------------------------------------------------------------


@settings(max_examples=40, deadline=None)
@given(
    lengths=st.sampled_from(["lognormal", "poisson", "uniform", "fixed", "sharegpt", "mooncake-synthetic"]),
    arrival=st.sampled_from(["poisson", "gamma", "onoff", "deterministic"]),
    rate=st.floats(0.01, 1000.0),
    cv=st.floats(0.1, 20.0),
    on=st.floats(0.01, 100.0),
    off=st.floats(0.01, 100.0),
    cap=st.one_of(st.none(), st.integers(1, 5000)),
    num_requests=st.integers(1, 3000),
    chunk_size=st.integers(1, 4000),
    seed=st.integers(0, 2**32),
)
def test_any_workload_is_well_formed(lengths, arrival, rate, cv, on, off, cap, num_requests, chunk_size, seed):
    cfg = WorkloadConfig(
        lengths=lengths, arrival=arrival, arrival_cv=cv, burst_on_s=on, burst_off_s=off,
        max_prompt_len=cap, max_output_len=cap, num_requests=num_requests,
    )
    batches = list(generate(cfg, rate, seed, chunk_size))
    assert [b.first_id for b in batches] == list(range(0, num_requests, chunk_size))
    t = np.concatenate([b.arrival_time for b in batches])
    p = np.concatenate([b.prompt_len for b in batches])
    o = np.concatenate([b.output_len for b in batches])
    assert len(t) == len(p) == len(o) == num_requests
    assert np.all(np.isfinite(t)) and t[0] >= 0 and np.all(np.diff(t) >= 0)
    assert p.min() >= 1 and o.min() >= 1
    if cap is not None:
        assert p.max() <= cap and o.max() <= cap
    whole = run(cfg, rate, seed, chunk_size=num_requests)
    np.testing.assert_array_equal(whole[0], t)
    np.testing.assert_array_equal(whole[1], p)


# -- the real traces (../shared/data) ------------------------------------------------------------


def test_replaying_the_azure_trace():
    path = DATA / "traces" / "azure_llm_2023_conv.csv.gz"
    if not path.is_file():
        pytest.skip("../shared/data/traces is not available")
    cfg = WorkloadConfig(arrival="trace", lengths="trace", trace_path=str(path), num_requests=19366)
    times, prompt, _ = run(cfg, None)
    trace = cfg.read_trace()
    np.testing.assert_array_equal(times, trace.arrival_time)
    np.testing.assert_array_equal(prompt, trace.prompt_len)
    doubled, _, _ = run(cfg, 2 * (19366 - 1) / trace.arrival_time[-1])
    np.testing.assert_allclose(doubled, trace.arrival_time / 2, rtol=1e-12)
    assert mean_lengths(cfg)[0] == pytest.approx(1154.7, abs=0.05)
