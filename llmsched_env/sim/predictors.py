"""Output-length predictors: what a scheduling policy believes about each request's length.

Policies never see the true output length (except ``oracle``); they see the predictions made
here. Predictions are drawn once per :class:`~llmsched_env.sim.request.RequestBatch` chunk, when
the workload is generated, from a random stream of their own, so every policy run on the same
seed sees exactly the same predictions for the same request (common random numbers), and the
engine never calls numpy per request.

Kinds (``PredictorConfig.kind``):

* ``oracle``: the true output length.
* ``lognormal``: ``pred = true * exp(sigma * Z)``, ``Z ~ N(0, 1)``: median-unbiased
  multiplicative noise (``sigma`` is the std of ``log(pred / true)``), as in the
  predicted-job-size queueing literature (Mitzenmacher & Shahout 2025).
* ``buckets``: a length classifier with ``num_buckets`` bins, as in S3 (Jin et al. 2023) and the
  learning-to-rank schedulers (Fu et al., NeurIPS 2024). See *Bins* and *Confusion model*.
* ``refining``: Trail (Shahout et al., "Don't Stop Me Now: Embedding Based Scheduling for LLMs",
  ICLR 2025). A bin estimate of the total length before decoding, then, every ``refresh_every``
  generated tokens, a fresh bin estimate of the *remaining* length whose accuracy improves as
  decoding proceeds. See *Refining model*.

Bins. ``bucket_scale='linear'`` (Trail's): ``num_buckets`` equal bins of width
``w = bucket_max / num_buckets`` cover ``[0, bucket_max)``; bin ``i`` holds lengths in
``[i*w, (i+1)*w)`` and the last bin is open-ended (it also holds every length ``>= bucket_max``).
A predicted bin is turned into a length by its midpoint ``(i + 0.5) * w`` (the median of a length
spread evenly over the bin, so it minimises the absolute error there); for the open-ended bin this
is the midpoint of its nominal range. Trail's setting, 10 bins over 0..512, is the default.
``bucket_scale='log'``: the bins are evenly spaced in log length, bin ``i`` holding
``[bucket_max**(i/k), bucket_max**((i+1)/k))`` for ``k = num_buckets`` (the first bin also holds
length 0, the last every length above), and a bin stands for its geometric midpoint. Linear bins
over 0..512 say nothing about outputs of thousands of tokens (all fall in the last bin); log bins
over the workload's range keep the error proportional to the length (see *Calibration*).

Confusion model. The classifier returns the true bin ``b`` with probability ``accuracy``. A miss
lands on another bin ``c != b`` with probability proportional to ``miss_decay ** (|c - b| - 1)``
(normalised over the bins that exist, so ``P(hit)`` is exactly ``accuracy`` in every row, edge
bins included): adjacent bins are the likeliest mistakes, and each further bin is ``miss_decay``
times less likely (``miss_decay = 0``: misses only reach the adjacent bins). The full matrix is
:func:`confusion_matrix`.

Refining model. Request ``i`` (true length ``L``) gets an initial total-length estimate from the
confusion model with ``accuracy``. Its ``k``-th refresh (``k = 1, 2, ...``) is made when
``g = k * refresh_every`` tokens have been generated, for every ``g < L``; it is an independent
bin estimate of the remaining length ``L - g`` with accuracy
``accuracy + (final_accuracy - accuracy) * g / L``, i.e. it rises linearly with the decoded
fraction, so the error shrinks as decoding proceeds. Independent draws are a simplification:
Trail's successive estimates are correlated (it smooths them).

Calibration (the expectations are computed exactly in ``tests/test_predictors.py``). Trail
reports, for Llama-3-8B-Instruct on Alpaca with 10 bins over 0-512, a mean absolute error of 46
tokens before decoding and 34 tokens once refined. With the defaults (``accuracy=0.6``,
``miss_decay=0.54``, ``final_accuracy=0.875``, ``refresh_every=16``) and output lengths uniform
on 1..512, the expected MAE of the initial estimate is 46.1 tokens and that of the refreshed
remaining-length estimates, averaged over all refreshes of all requests, is 34.0 tokens. The
model works in bins, so these figures barely depend on the mix while lengths stay within 0..512:
a lognormal mix (median 150, log-std 0.8, clipped to 1..512) gives 46.4 and 34.0 (2 x 10^5
sampled requests); ``refresh_every`` 1 / 64 gives 34.3 / 33.0 on the uniform mix. Relative to
the mean length (256.5) the initial MAE is 18.0 %; the refreshed one is 20.1 % of the mean
remaining length at the refresh points.

Long outputs. Linear bins over 0..512 put every output above 512 tokens in one bin, so on
reasoning-length outputs the refreshes carry no information (Trail then orders like SPRPT). Log bins
over the workload's range keep Trail's accuracy relative to the length: on the
``servegen-deepseek-r1`` lengths (mean output 1,527 tokens, up to 32,768), 60 log bins over
1..32,768 with the default accuracies give an initial MAE of 17.9 % of the mean output length
(Trail's 18.0 %) and refreshed estimates within 14.8 % of the mean remaining length (Trail's 20.1 %);
10 log bins would be 2.8 times coarser per bin and give 103 % (``tests/test_predictors.py``
checks these figures).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .request import RequestBatch
from .validation import check_choice, check_fraction, check_nonnegative, check_number, check_positive, fail

PREDICTOR_KINDS = ("oracle", "lognormal", "buckets", "refining")
BUCKET_SCALES = ("linear", "log")


@dataclass(frozen=True)
class PredictorConfig:
    """Which predictor to use and how wrong it is (every field is validated on construction).

    Attributes:
        kind: ``oracle`` | ``lognormal`` | ``buckets`` | ``refining``.
        sigma: lognormal: std of ``log(pred / true)`` (0..10; 0 is exact).
        num_buckets: buckets / refining: number of length bins (>= 2; Trail: 10).
        bucket_max: buckets / refining: the bins split ``[0, bucket_max)`` evenly; the last bin
            also takes every longer length (Trail: 512).
        bucket_scale: ``linear`` (Trail's equal bins) or ``log`` (bins evenly spaced in log
            length up to ``bucket_max``, for long outputs; see the module docstring).
        accuracy: buckets, and refining's estimate before decoding: P(predicted bin == true bin).
        miss_decay: buckets / refining: a miss lands ``j`` bins away with weight
            ``miss_decay ** (j - 1)`` (in [0, 1]; 0 = adjacent bins only).
        refresh_every: refining: generated tokens between refreshed estimates (0 = never).
        final_accuracy: refining: bin accuracy of the remaining-length estimate at the end of
            decoding; the accuracy moves linearly from ``accuracy`` to it with the decoded
            fraction.
        cost_s: simulated seconds charged per prediction made (the engine charges it).
    """

    kind: str = "lognormal"
    sigma: float = 0.5
    num_buckets: int = 10
    bucket_max: int = 512
    bucket_scale: str = "linear"
    accuracy: float = 0.6
    miss_decay: float = 0.54
    refresh_every: int = 16
    final_accuracy: float = 0.875
    cost_s: float = 0.0

    def __post_init__(self) -> None:
        check_choice("kind", self.kind, PREDICTOR_KINDS)
        check_number("sigma", self.sigma, low=0, high=10)  # exp(10 * 8) still fits a float
        object.__setattr__(self, "num_buckets", check_number("num_buckets", self.num_buckets, low=2, integer=True))
        object.__setattr__(self, "bucket_max", check_positive("bucket_max", self.bucket_max, integer=True))
        check_choice("bucket_scale", self.bucket_scale, BUCKET_SCALES)
        if self.bucket_scale == "log" and self.bucket_max < 2:
            raise fail("bucket_max", self.bucket_max, "at least 2 with bucket_scale='log'")
        check_fraction("accuracy", self.accuracy)
        check_fraction("miss_decay", self.miss_decay)
        object.__setattr__(self, "refresh_every", check_nonnegative("refresh_every", self.refresh_every, integer=True))
        check_fraction("final_accuracy", self.final_accuracy)
        check_nonnegative("cost_s", self.cost_s)
        # YAML may give 8.0 for an integer field: store the int.
        object.__setattr__(self, "num_buckets", int(self.num_buckets))
        object.__setattr__(self, "bucket_max", int(self.bucket_max))
        object.__setattr__(self, "refresh_every", int(self.refresh_every))


def bucket_of(lengths: np.ndarray, num_buckets: int, bucket_max: int, scale: str = "linear") -> np.ndarray:
    """Bin index (int64) of each length; lengths >= ``bucket_max`` fall in the last bin."""
    if scale == "log":
        edges = log_bucket_edges(num_buckets, bucket_max)
        return np.minimum(np.searchsorted(edges, np.asarray(lengths), side="right") - 1, num_buckets - 1).clip(0)
    # Integer arithmetic: a length on a bin edge (e.g. 256 of 512 in 10 bins) must not round down.
    bins = np.asarray(lengths, dtype=np.int64) * num_buckets // bucket_max
    return np.minimum(bins, num_buckets - 1)


def bucket_value(bins: np.ndarray, num_buckets: int, bucket_max: int, scale: str = "linear") -> np.ndarray:
    """The length a predicted bin stands for: its midpoint (geometric for log bins), at least 1 token (float64)."""
    if scale == "log":
        edges = log_bucket_edges(num_buckets, bucket_max)
        b = np.asarray(bins, dtype=np.int64)
        return np.maximum(np.sqrt(edges[b] * edges[b + 1]), 1.0)
    return np.maximum((np.asarray(bins, dtype=np.float64) + 0.5) * (bucket_max / num_buckets), 1.0)


def log_bucket_edges(num_buckets: int, bucket_max: int) -> np.ndarray:
    """Edges of log-spaced bins: ``bucket_max ** (i / num_buckets)`` for i = 0..num_buckets."""
    return np.asarray(bucket_max, dtype=np.float64) ** (np.arange(num_buckets + 1) / num_buckets)


def miss_matrix(num_buckets: int, miss_decay: float) -> np.ndarray:
    """Row ``b``: where a miss on true bin ``b`` lands (zero diagonal, rows sum to 1)."""
    idx = np.arange(num_buckets)
    distance = np.abs(idx[:, None] - idx[None, :])
    weights = np.where(distance > 0, float(miss_decay) ** np.maximum(distance - 1, 0), 0.0)
    return weights / weights.sum(axis=1, keepdims=True)


def confusion_matrix(num_buckets: int, accuracy: float, miss_decay: float) -> np.ndarray:
    """``C[b, c]`` = P(predicted bin ``c`` | true bin ``b``) of the bucket classifier."""
    return accuracy * np.eye(num_buckets) + (1.0 - accuracy) * miss_matrix(num_buckets, miss_decay)


class Predictor:
    """Annotates request batches with predictions (see the module docstring for each kind).

    Attributes:
        kind: the config's kind.
        refresh_every: tokens between refreshed estimates; 0 if it never refreshes.
        cost_s: simulated seconds charged per prediction made.
    """

    def __init__(self, cfg: PredictorConfig) -> None:
        self.cfg = cfg
        self.kind = cfg.kind
        self.refresh_every = cfg.refresh_every if cfg.kind == "refining" else 0
        self.cost_s = float(cfg.cost_s)
        miss_cdf = np.cumsum(miss_matrix(cfg.num_buckets, cfg.miss_decay), axis=1)
        miss_cdf /= miss_cdf[:, -1:]  # exactly 1 from each row's last possible miss on: u < 1 stays in its row
        self._miss_table = (miss_cdf + np.arange(cfg.num_buckets)[:, None]).ravel()

    def annotate(self, batch: RequestBatch, rng: np.random.Generator) -> None:
        """Fill ``batch.predicted_len`` (float64, >= 1, predicted TOTAL output length) and, for
        refining predictors, ``batch.refresh_offsets`` / ``batch.refresh_values``: request i's
        k-th refresh (k = 1, 2, ...) is made when ``k * refresh_every`` tokens have been generated
        and predicts the REMAINING output tokens (>= 1); only checkpoints strictly before the
        request's end (``k * refresh_every < output_len``) are stored. Other kinds set the
        refresh fields to None. Deterministic for a given ``rng`` state.
        """
        cfg = self.cfg
        true_len = np.asarray(batch.output_len, dtype=np.int64)
        batch.refresh_offsets = None
        batch.refresh_values = None
        if cfg.kind == "oracle":
            batch.predicted_len = true_len.astype(np.float64)
        elif cfg.kind == "lognormal":
            noise = np.exp(cfg.sigma * rng.standard_normal(true_len.shape[0]))
            batch.predicted_len = np.maximum(true_len * noise, 1.0)
        else:  # buckets and refining share the initial bin estimate
            bins = bucket_of(true_len, cfg.num_buckets, cfg.bucket_max, cfg.bucket_scale)
            guess = self._classify(bins, cfg.accuracy, rng)
            batch.predicted_len = bucket_value(guess, cfg.num_buckets, cfg.bucket_max, cfg.bucket_scale)
            if cfg.kind == "refining" and self.refresh_every > 0:
                batch.refresh_offsets, batch.refresh_values = self._refreshes(true_len, rng)

    def _classify(self, true_bins: np.ndarray, accuracy: float | np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Draw predicted bins: the true bin with probability ``accuracy``, else a miss.

        ``_miss_table`` is :func:`miss_matrix`'s row-wise CDF with row ``b`` shifted up by ``b``
        and flattened, so one ``searchsorted`` inverts every request's own row without an (n, k)
        array.
        """
        hit = rng.random(true_bins.shape[0]) < accuracy
        u = rng.random(true_bins.shape[0])
        missed = np.searchsorted(self._miss_table, true_bins + u, side="right") - true_bins * self.cfg.num_buckets
        return np.where(hit, true_bins, missed)

    def _refreshes(self, true_len: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """Refreshed remaining-length estimates, flattened request by request."""
        cfg, every = self.cfg, self.refresh_every
        counts = (true_len - 1) // every  # checkpoints k * every < output_len
        offsets = np.zeros(true_len.shape[0] + 1, dtype=np.int64)
        np.cumsum(counts, out=offsets[1:])
        owner = np.repeat(np.arange(true_len.shape[0]), counts)
        k = np.arange(offsets[-1], dtype=np.int64) - offsets[owner] + 1
        generated = k * every
        total = true_len[owner]
        accuracy = cfg.accuracy + (cfg.final_accuracy - cfg.accuracy) * (generated / total)
        bins = bucket_of(total - generated, cfg.num_buckets, cfg.bucket_max, cfg.bucket_scale)
        guess = self._classify(bins, accuracy, rng)
        return offsets, bucket_value(guess, cfg.num_buckets, cfg.bucket_max, cfg.bucket_scale)


def make_predictor(cfg: PredictorConfig) -> Predictor:
    """The predictor a config describes."""
    return Predictor(cfg)
