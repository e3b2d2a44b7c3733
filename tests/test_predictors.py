"""Output-length predictors: exactness, noise statistics, confusion model, Trail calibration."""

from __future__ import annotations

import numpy as np
import pytest

from llmsched_env.sim.config import dataclass_from_dict
from llmsched_env.sim.predictors import (
    PredictorConfig,
    bucket_of,
    bucket_value,
    confusion_matrix,
    make_predictor,
    miss_matrix,
)
from llmsched_env.sim.request import RequestBatch
from llmsched_env.sim.validation import ConfigError


def make_batch(output_len) -> RequestBatch:
    out = np.asarray(output_len, dtype=np.int64)
    n = out.shape[0]
    return RequestBatch(np.arange(n, dtype=np.float64), np.full(n, 8, dtype=np.int64), out)


def annotate(cfg: PredictorConfig, output_len, seed: int = 0) -> RequestBatch:
    batch = make_batch(output_len)
    make_predictor(cfg).annotate(batch, np.random.default_rng(seed))
    return batch


def refresh_layout(batch: RequestBatch, every: int) -> tuple[np.ndarray, np.ndarray]:
    """(owner row, tokens generated) of every stored refresh."""
    counts = np.diff(batch.refresh_offsets)
    owner = np.repeat(np.arange(len(batch)), counts)
    k = np.arange(batch.refresh_offsets[-1]) - batch.refresh_offsets[owner] + 1
    return owner, k * every


def expected_mae(cfg: PredictorConfig, output_len: np.ndarray) -> tuple[float, float]:
    """Exact expected MAE (initial, refreshes) of a refining predictor over the given lengths,
    each length equally likely, from the confusion model (no sampling)."""
    k, top = cfg.num_buckets, cfg.bucket_max
    mids = bucket_value(np.arange(k), k, top)
    rows = confusion_matrix(k, cfg.accuracy, cfg.miss_decay)[bucket_of(output_len, k, top)]
    initial = (rows * np.abs(output_len[:, None] - mids)).sum(axis=1).mean()
    counts = (output_len - 1) // cfg.refresh_every
    owner = np.repeat(np.arange(output_len.shape[0]), counts)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    generated = (np.arange(counts.sum()) - starts[owner] + 1) * cfg.refresh_every
    total = output_len[owner]
    remaining = total - generated
    acc = cfg.accuracy + (cfg.final_accuracy - cfg.accuracy) * generated / total
    bins = bucket_of(remaining, k, top)
    rows = acc[:, None] * np.eye(k)[bins] + (1 - acc)[:, None] * miss_matrix(k, cfg.miss_decay)[bins]
    refined = (rows * np.abs(remaining[:, None] - mids)).sum(axis=1).mean()
    return float(initial), float(refined)


# -- oracle -----------------------------------------------------------------------------------


def test_oracle_is_exact_and_never_refreshes():
    out = [1, 7, 300, 5000]
    batch = annotate(PredictorConfig(kind="oracle"), out)
    assert batch.predicted_len.dtype == np.float64
    np.testing.assert_array_equal(batch.predicted_len, out)
    assert batch.refresh_offsets is None and batch.refresh_values is None
    assert make_predictor(PredictorConfig(kind="oracle")).refresh_every == 0


# -- lognormal --------------------------------------------------------------------------------


def test_lognormal_is_median_unbiased_with_the_configured_spread():
    out = np.full(100_000, 400)
    batch = annotate(PredictorConfig(kind="lognormal", sigma=0.5), out)
    log_ratio = np.log(batch.predicted_len / out)
    assert abs(np.median(log_ratio)) < 0.01
    assert abs(log_ratio.std() - 0.5) < 0.01
    assert batch.refresh_offsets is None


def test_lognormal_sigma_zero_is_exact_and_predictions_stay_at_least_one():
    batch = annotate(PredictorConfig(kind="lognormal", sigma=0.0), [1, 2, 99])
    np.testing.assert_array_equal(batch.predicted_len, [1, 2, 99])
    wild = annotate(PredictorConfig(kind="lognormal", sigma=3.0), np.ones(10_000, dtype=np.int64))
    assert wild.predicted_len.min() == 1.0
    # Only the draws below the truth are clamped (half of them), so the median stays at the truth.
    assert abs((wild.predicted_len == 1.0).mean() - 0.5) < 0.02


# -- buckets ----------------------------------------------------------------------------------


def test_bins_and_their_lengths_by_hand():
    # 10 bins of 51.2 tokens over [0, 512); the last one is open-ended.
    lengths = np.array([1, 51, 52, 255, 256, 460, 461, 511, 512, 10_000])
    np.testing.assert_array_equal(bucket_of(lengths, 10, 512), [0, 0, 1, 4, 5, 8, 9, 9, 9, 9])
    np.testing.assert_allclose(bucket_value(np.array([0, 5, 9]), 10, 512), [25.6, 281.6, 486.4])
    # A bin narrower than 2 tokens would have a midpoint below 1: predictions stay >= 1.
    assert bucket_value(np.array([0]), 10, 10)[0] == 1.0


def test_confusion_matrix_by_hand():
    c = confusion_matrix(3, accuracy=0.7, miss_decay=0.5)
    np.testing.assert_allclose(c, [[0.7, 0.2, 0.1], [0.15, 0.7, 0.15], [0.1, 0.2, 0.7]])
    adjacent_only = confusion_matrix(4, accuracy=0.6, miss_decay=0.0)
    np.testing.assert_allclose(adjacent_only[0], [0.6, 0.4, 0.0, 0.0])
    np.testing.assert_allclose(adjacent_only[2], [0.0, 0.2, 0.6, 0.2])
    big = confusion_matrix(10, accuracy=0.6, miss_decay=0.54)
    np.testing.assert_allclose(big.sum(axis=1), 1.0)
    np.testing.assert_allclose(np.diag(big), 0.6)


def test_bucket_predictions_follow_the_confusion_matrix():
    cfg = PredictorConfig(kind="buckets", num_buckets=5, bucket_max=500, accuracy=0.6, miss_decay=0.5)
    true_bins = np.repeat(np.arange(5), 20_000)
    out = true_bins * 100 + 50  # the middle of each 100-token bin
    batch = annotate(cfg, out, seed=3)
    predicted = bucket_of(batch.predicted_len, 5, 500)
    np.testing.assert_allclose(batch.predicted_len, predicted * 100 + 50)  # always a bin midpoint
    observed = np.zeros((5, 5))
    np.add.at(observed, (true_bins, predicted), 1.0)
    observed /= observed.sum(axis=1, keepdims=True)
    np.testing.assert_allclose(observed, confusion_matrix(5, 0.6, 0.5), atol=0.01)
    assert batch.refresh_offsets is None
    assert make_predictor(cfg).refresh_every == 0


def test_a_miss_never_lands_on_the_true_bin():
    out = np.tile(np.arange(1, 600), 100)
    batch = annotate(PredictorConfig(kind="buckets", accuracy=0.0, miss_decay=0.0), out)
    assert np.all(bucket_of(batch.predicted_len, 10, 512) != bucket_of(out, 10, 512))


def test_perfect_buckets_predict_the_true_bin_midpoint():
    batch = annotate(PredictorConfig(kind="buckets", accuracy=1.0), [1, 60, 500, 2000])
    np.testing.assert_allclose(batch.predicted_len, [25.6, 76.8, 486.4, 486.4])


# -- refining ---------------------------------------------------------------------------------


def test_refining_layout_by_hand():
    # Perfect classifier, 4 bins of 32 tokens: every value is the midpoint of the true bin.
    cfg = PredictorConfig(kind="refining", num_buckets=4, bucket_max=128, accuracy=1.0, final_accuracy=1.0, refresh_every=16)
    batch = annotate(cfg, [1, 16, 17, 33, 100])
    np.testing.assert_array_equal(batch.refresh_offsets, [0, 0, 0, 1, 3, 9])
    assert batch.refresh_offsets.dtype == np.int64 and batch.refresh_values.dtype == np.float64
    np.testing.assert_allclose(batch.predicted_len, [16, 16, 16, 48, 112])
    # 17: 1 left after 16 tokens; 33: 17 and 1 left; 100: 84, 68, 52, 36, 20, 4 left.
    np.testing.assert_allclose(batch.refresh_values, [16, 16, 16, 80, 80, 48, 48, 16, 16])
    assert make_predictor(cfg).refresh_every == 16


def test_refining_without_refreshes():
    cfg = PredictorConfig(kind="refining", refresh_every=0)
    batch = annotate(cfg, [5, 500])
    assert batch.refresh_offsets is None and batch.refresh_values is None
    assert make_predictor(cfg).refresh_every == 0


def test_annotating_again_with_another_kind_clears_refreshes():
    batch = annotate(PredictorConfig(kind="refining"), [100, 200])
    assert batch.refresh_values is not None
    make_predictor(PredictorConfig(kind="oracle")).annotate(batch, np.random.default_rng(0))
    assert batch.refresh_offsets is None and batch.refresh_values is None


def test_refining_error_shrinks_with_progress():
    rng = np.random.default_rng(11)
    out = rng.integers(1, 513, 50_000)
    cfg = PredictorConfig(kind="refining")
    batch = annotate(cfg, out, seed=5)
    owner, generated = refresh_layout(batch, cfg.refresh_every)
    assert batch.refresh_values.min() >= 1.0
    remaining = out[owner] - generated
    assert remaining.min() >= 1
    error = np.abs(batch.refresh_values - remaining)
    progress = generated / out[owner]
    quarter_mae = [error[(progress >= q) & (progress < q + 0.25)].mean() for q in (0.0, 0.25, 0.5, 0.75)]
    assert all(a > b for a, b in zip(quarter_mae, quarter_mae[1:])), quarter_mae
    # The hit rate follows the documented linear schedule: 0.6 at the start, 0.875 at the end.
    hit = bucket_of(batch.refresh_values, 10, 512) == bucket_of(remaining, 10, 512)
    assert abs(hit[progress < 0.1].mean() - (0.6 + 0.275 * progress[progress < 0.1].mean())) < 0.02
    assert abs(hit[progress > 0.9].mean() - (0.6 + 0.275 * progress[progress > 0.9].mean())) < 0.02


def test_defaults_reproduce_trails_published_errors():
    # Trail (ICLR 2025), Llama-3-8B / Alpaca, 10 bins over 0-512: MAE 46 tokens before decoding,
    # 34 refined. Mix: output lengths uniform on 1..512.
    out = np.arange(1, 513)
    cfg = PredictorConfig(kind="refining")
    initial, refined = expected_mae(cfg, out)
    assert initial == pytest.approx(46.0, abs=0.5)
    assert refined == pytest.approx(34.0, abs=0.5)
    # The sampled predictions agree with the exact expectation.
    sample = np.random.default_rng(2).integers(1, 513, 100_000)
    batch = annotate(cfg, sample, seed=9)
    owner, generated = refresh_layout(batch, cfg.refresh_every)
    assert np.abs(batch.predicted_len - sample).mean() == pytest.approx(initial, abs=0.5)
    assert np.abs(batch.refresh_values - (sample[owner] - generated)).mean() == pytest.approx(refined, abs=0.3)
    # A skewed mix (lognormal, median 150, log-std 0.8, clipped to 1..512) lands close too.
    skewed = np.clip(np.round(150 * np.exp(0.8 * np.random.default_rng(3).standard_normal(100_000))), 1, 512)
    batch = annotate(cfg, skewed.astype(np.int64), seed=4)
    owner, generated = refresh_layout(batch, cfg.refresh_every)
    assert np.abs(batch.predicted_len - skewed).mean() == pytest.approx(46.0, abs=1.0)
    assert np.abs(batch.refresh_values - (skewed[owner] - generated)).mean() == pytest.approx(34.0, abs=1.0)


# -- common -----------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["oracle", "lognormal", "buckets", "refining"])
def test_deterministic_for_a_given_rng_state(kind):
    out = np.random.default_rng(0).integers(1, 2000, 500)
    a = annotate(PredictorConfig(kind=kind), out, seed=42)
    b = annotate(PredictorConfig(kind=kind), out, seed=42)
    np.testing.assert_array_equal(a.predicted_len, b.predicted_len)
    assert a.predicted_len.min() >= 1.0
    if kind == "refining":
        np.testing.assert_array_equal(a.refresh_offsets, b.refresh_offsets)
        np.testing.assert_array_equal(a.refresh_values, b.refresh_values)
    if kind in ("lognormal", "buckets", "refining"):
        c = annotate(PredictorConfig(kind=kind), out, seed=43)
        assert not np.array_equal(a.predicted_len, c.predicted_len)


def test_cost_is_passed_through():
    assert make_predictor(PredictorConfig(cost_s=0.002)).cost_s == 0.002


def test_integer_fields_accept_integral_floats():
    cfg = PredictorConfig(kind="buckets", num_buckets=8.0, bucket_max=256.0, refresh_every=32.0)
    assert (cfg.num_buckets, cfg.bucket_max, cfg.refresh_every) == (8, 256, 32)
    assert isinstance(cfg.num_buckets, int)


@pytest.mark.parametrize(
    "kwargs, field",
    [
        (dict(kind="psychic"), "predictor.kind"),
        (dict(sigma=-0.1), "predictor.sigma"),
        (dict(sigma=float("nan")), "predictor.sigma"),
        (dict(sigma=11.0), "predictor.sigma"),
        (dict(num_buckets=1), "predictor.num_buckets"),
        (dict(num_buckets=2.5), "predictor.num_buckets"),
        (dict(bucket_max=0), "predictor.bucket_max"),
        (dict(accuracy=1.5), "predictor.accuracy"),
        (dict(miss_decay=-0.1), "predictor.miss_decay"),
        (dict(refresh_every=-1), "predictor.refresh_every"),
        (dict(final_accuracy=2.0), "predictor.final_accuracy"),
        (dict(cost_s=-1.0), "predictor.cost_s"),
        (dict(cost_s=True), "predictor.cost_s"),
    ],
)
def test_config_validation_names_field_and_value(kwargs, field):
    with pytest.raises(ConfigError) as info:
        PredictorConfig(**kwargs)
    message = str(info.value)
    assert message.startswith(field.removeprefix("predictor.") + "=")
    with pytest.raises(ConfigError) as info:  # through a config file's path: the prefix appears once
        dataclass_from_dict(PredictorConfig, kwargs, "predictor")
    assert str(info.value).startswith(field + "=")
    assert repr(next(iter(kwargs.values()))) in message
