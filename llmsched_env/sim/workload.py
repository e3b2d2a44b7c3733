"""Workloads: arrival processes, request-length distributions, fitted presets, and generation.

A :class:`WorkloadConfig` describes *what* arrives; :func:`generate` streams it as
:class:`~llmsched_env.sim.request.RequestBatch` chunks for a given mean arrival rate and seed
(the engine turns ``load`` into ``rate`` with :func:`mean_lengths`
or :func:`sample_lengths`).

Arrival processes (``arrival``), all with long-run mean rate ``rate`` requests/s:

* ``poisson``: exponential inter-arrival times (IATs).
* ``gamma``: Gamma IATs with shape ``1/arrival_cv**2`` and mean ``1/rate`` (CV > 1 is burstier
  than Poisson; the same model as vLLM's ``--burstiness`` = ``1/cv**2``).
* ``onoff``: Markov-modulated (interrupted) Poisson. ON and OFF periods are exponential with
  means ``burst_on_s`` and ``burst_off_s``; arrivals are Poisson at ``rate*(on+off)/on`` while ON
  and absent while OFF. The process starts at the beginning of an ON period. Its IAT CV is
  ``sqrt(1 + 2*lam*a/(a+b)**2)`` with ``lam`` the ON rate, ``a = 1/on``, ``b = 1/off``.
* ``deterministic``: one request every ``1/rate`` s.
* ``trace``: the timestamps of ``trace_path`` in file order, the first mapped to 0, scaled so the
  whole trace's mean rate, ``(n-1)/span``, becomes ``rate`` (``rate=None`` keeps its own timing).

The first request arrives after the first IAT (``trace``: at 0).

Length distributions (``lengths``); every length is an int64 >= 1, clipped (not dropped) to
``max_prompt_len`` / ``max_output_len`` when those are set:

* ``lognormal``: mean ``prompt_mean`` / ``output_mean`` (the mean, not the median:
  ``mu = ln(mean) - sigma**2/2``), log-std ``prompt_sigma`` / ``output_sigma``, rounded to the
  nearest integer; ``length_correlation`` is the correlation of the two underlying normals (a
  Gaussian copula; the Spearman rank correlation is ``6/pi * asin(rho/2)``).
* ``poisson``: Poisson with the given means, values of 0 raised to 1.
* ``geometric``: geometric on 1, 2, ... with the given means (memoryless: with a constant
  iteration time the service time is the lattice analogue of an exponential, for M/M/c checks).
* ``fixed``: every request has exactly ``prompt_mean`` / ``output_mean`` tokens (whole numbers).
* ``uniform``: integers uniform on ``[round(mean*(1-uniform_spread)), round(mean*(1+uniform_spread))]``
  (lower end at least 1), independent.
* ``trace``: the lengths of ``trace_path`` in file order.
* a preset name (below): an empirical joint distribution fitted to a real trace.

Presets (``available_length_presets()``; JSON files in ``sim/data/lengths/`` written by
``benchmarks/fit_length_presets.py`` from the public traces; each JSON names its source):

* ``sharegpt`` (default): ShareGPT conversations, Llama-2 tokenizer, totals <= 8,192 tokens
  (Sarathi-Serve's ``sharegpt_8k_filtered``). Mean prompt 2,340 / output 439 tokens.
* ``arxiv-summarization``: arXiv paper summarization, Llama-2 tokenizer, totals <= 4,096 (Vidur).
  Mean 2,588 / 291, long output tail.
* ``azure-conv``: Azure LLM inference trace 2023, conversation service (Splitwise). Mean 1,155 / 211.
* ``azure-code``: Azure LLM inference trace 2023, coding service. Mean 2,048 / 28 (short outputs).
* ``mooncake-conversation``: Kimi chat traffic (Mooncake FAST'25). Mean 12,035 / 343 (long context).
* ``mooncake-synthetic``: Mooncake's synthetic trace built from public datasets. Mean 15,325 / 149.

A preset is a sparse 2-D histogram of (prompt, output) counts on integer bins spaced evenly in
log length (<= 40 per axis; it keeps the prompt/output dependence) plus a finer histogram of each
length (<= 160 bins). Sampling picks a joint cell with its empirical probability, then each length
from the fine histogram inside the cell's bin, log-uniform within a fine bin and floored, so
lengths stay within the trace's min/max. Against the traces, 400k samples match the mean within
0.6 % and p50/p90/p99 within 1.6 % (``benchmarks/fit_length_presets.py`` prints the comparison).
:func:`mean_lengths` is exact for this model.

Traces shorter than ``num_requests`` are replayed again from the start, the k-th replay shifted by
k times the trace's period ``span * n / (n-1)`` (its span plus one mean IAT), so the long-run rate
is still ``(n-1)/span`` before scaling.

Shared prefixes (``prefix``, for prefix caching; every request then carries the hash chain of its
blocks of ``prefix_block_size`` tokens, ``RequestBatch.block_hash_*``, covering its prompt and
output):

* ``none`` (default): no chains.
* ``system-prompt``: the first ``system_prompt_len`` tokens of every prompt (all of it if
  shorter) are one of ``num_system_prompts`` system prompts, drawn uniformly; the rest is unique.
  Lengths are unchanged.
* ``multi-turn``: conversations. Each arrival goes to one of ``num_conversations`` conversation
  slots, drawn uniformly; the slot's conversation continues (its next turn) unless it has had
  its number of turns (geometric, mean ``turns_mean``), when a new one starts there. Turn k's
  prompt is turn k-1's whole exchange (prompt + output) followed by the drawn prompt length of
  new tokens, so prompts grow with the turns (a turn that would exceed ``max_prompt_len`` starts a
  new conversation). Arrivals stay open-loop: a turn arriving before the previous one finished
  finds only what is cached by then. :func:`mean_lengths` is then a sample mean (20,000 draws).
* ``trace``: the trace's own chains (Mooncake ``hash_ids``, 512-token blocks; needs
  ``lengths='trace'``). A block the trace marks partial (the prompt's last, when the prompt is
  not a multiple of 512 tokens) is dropped: only full blocks are shared. Each replay of a trace
  gets fresh hash values (its k-th replay does not hit the cache of the (k-1)-th).

Common random numbers: arrivals and lengths use separate child streams of ``seed``, so configs
that share ``lengths`` (and its parameters) give the same length sequence whatever the arrival
process or rate, and the same seed always gives the same output. Each random quantity has its own
generator drawing one value per request, so the output does not depend on ``chunk_size``.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Mapping

import numpy as np

from .request import RequestBatch
from .streams import child, generator, generators, seed_sequence
from .traces import TIME_UNITS, TRACE_FORMATS, Trace, read_trace
from .validation import ConfigError, check_choice, check_number, check_positive, fail

LENGTH_KINDS: tuple[str, ...] = ("lognormal", "poisson", "geometric", "fixed", "uniform", "trace", "mixture", "pmf")
ARRIVAL_KINDS: tuple[str, ...] = ("poisson", "gamma", "onoff", "deterministic", "trace", "profile")
TRACE_ORDERS: tuple[str, ...] = ("file", "window", "shuffle")
PRESET_DIR = Path(__file__).resolve().parent / "data" / "lengths"
PROFILE_DIR = Path(__file__).resolve().parent / "data" / "arrivals"

# Spawn keys of the workload's child streams of the run seed (ASCII "arrv", "leng"); other
# modules deriving streams from the same seed must use other keys.
ARRIVAL_STREAM = 0x61727276
LENGTH_STREAM = 0x6C656E67
PREFIX_STREAM = 0x70726678  # "prfx"
PREFIX_KINDS: tuple[str, ...] = ("none", "system-prompt", "multi-turn", "trace")
WINDOW_STREAM = 0x77696E64  # "wind": the first trace row of a trace window
_NO_CAP = float(2**40)  # cap on sampled lengths when none is set (keeps int64 casts safe)


# -- presets --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PresetAxis:
    """One length axis (prompt or output) of a preset.

    A fine histogram of the trace's lengths (``counts`` over integer bins ``edges``, <= 160 bins
    spaced evenly in log length; short lengths get one bin per integer), grouped into the coarse
    bins ``coarse_edges`` (<= 40, a subset of ``edges``) on which the joint histogram is kept.
    """

    edges: np.ndarray  # int64 (F+1,): fine bin f holds lengths edges[f] .. edges[f+1]-1
    counts: np.ndarray  # int64 (F,): trace requests in each fine bin
    coarse_edges: np.ndarray  # int64 (B+1,)

    def _layout(self) -> tuple[np.ndarray, np.ndarray]:
        """Cumulative counts from 0 (F+1,) and the first fine bin of each coarse bin (B+1,)."""
        cum = np.concatenate([[0], np.cumsum(self.counts)]).astype(np.float64)
        return cum, np.searchsorted(self.edges, self.coarse_edges)

    def sample(self, coarse_bin: np.ndarray, u: np.ndarray) -> np.ndarray:
        """Lengths in the given coarse bins from uniforms ``u``: the inverse CDF of the fine
        histogram restricted to the coarse bin, log-uniform inside each fine bin, floored."""
        cum, first = self._layout()
        lo, hi = cum[first[coarse_bin]], cum[first[coarse_bin + 1]]
        # Counts are integers, so hi - 0.5 lies inside the coarse bin's last nonempty fine bin:
        # the cap only catches lo + u*(hi-lo) rounding up to hi.
        mass = np.minimum(lo + u * (hi - lo), hi - 0.5)
        fine = np.searchsorted(cum, mass, side="right") - 1
        within = (mass - cum[fine]) / self.counts[fine]  # position inside the fine bin, in [0, 1)
        a, b = self.edges[fine], self.edges[fine + 1]
        x = np.floor(a * np.exp(within * np.log(b / a)))
        return np.minimum(x.astype(np.int64), b - 1)  # guard against rounding up to the next bin

    def coarse_means(self, cap: int | None) -> np.ndarray:
        """Exact E[min(length, cap)] for a sample in each coarse bin."""
        _, first = self._layout()
        weighted = np.add.reduceat(self.counts * _floor_loguniform_means(self.edges, cap), first[:-1])
        return weighted / np.maximum(np.add.reduceat(self.counts, first[:-1]), 1)  # empty bins: 0


@dataclass(frozen=True)
class LengthPreset:
    """An empirical joint (prompt, output) length distribution fitted to a real trace.

    Sampling picks a joint cell (a pair of coarse bins) with its empirical probability, then each
    length from its axis's fine histogram inside that coarse bin (:meth:`PresetAxis.sample`).
    """

    name: str
    description: str
    source: dict  # file, origin (repository and path), commit, license, citation
    trace_stats: dict  # rows; prompt/output mean, median, p90, p99, min, max; spearman
    arrival_stats: dict | None  # span_s, mean_rate (= (n-1)/span), iat_cv; None if untimed
    prompt: PresetAxis
    output: PresetAxis
    cell_prompt_bin: np.ndarray  # int64 (C,) coarse prompt bin of each nonzero joint cell
    cell_output_bin: np.ndarray  # int64 (C,)
    cell_count: np.ndarray  # int64 (C,) trace requests in each cell


def available_length_presets() -> list[str]:
    """Names of the shipped length presets."""
    return list(_preset_names())


@functools.lru_cache(maxsize=1)
def _preset_names() -> tuple[str, ...]:
    return tuple(sorted(p.stem for p in PRESET_DIR.glob("*.json")))


def is_preset_path(value: str) -> bool:
    """Whether ``lengths`` names a preset file of the user's (a path ending in .json)."""
    return isinstance(value, str) and value.endswith(".json")


def _frozen(values: list | np.ndarray) -> np.ndarray:
    a = np.asarray(values, dtype=np.int64)
    a.setflags(write=False)  # shared through the cache
    return a


@functools.lru_cache(maxsize=None)
def load_length_preset(name: str) -> LengthPreset:
    """A preset with its metadata (source, the trace's own statistics) and histograms: a shipped
    one by name, or a file in the same format (written by ``benchmarks/fit_length_presets.py``)
    by its path."""
    if is_preset_path(name):
        try:
            data = json.loads(Path(name).read_text())
            hist = data["histogram"]
            for key in ("prompt", "output", "cells"):
                hist[key]
        except OSError as err:
            raise fail("lengths", name, f"a readable length preset file ({err.strerror})") from None
        except (ValueError, KeyError, TypeError) as err:
            raise fail("lengths", name, f"a length preset file in the format of {PRESET_DIR.name}/*.json ({err!r})") from None
        data.setdefault("name", Path(name).stem)
        for key in ("description", "source", "trace_stats", "arrival_stats"):
            data.setdefault(key, {} if key != "description" else "")
    else:
        check_choice("lengths", name, available_length_presets())
        data = json.loads((PRESET_DIR / f"{name}.json").read_text())
    hist = data["histogram"]
    axes = {k: PresetAxis(**{f: _frozen(v) for f, v in hist[k].items()}) for k in ("prompt", "output")}
    cells = np.asarray(hist["cells"], dtype=np.int64).reshape(-1, 3)
    return LengthPreset(
        name=data["name"],
        description=data["description"],
        source=data["source"],
        trace_stats=data["trace_stats"],
        arrival_stats=data["arrival_stats"],
        cell_prompt_bin=_frozen(cells[:, 0]),
        cell_output_bin=_frozen(cells[:, 1]),
        cell_count=_frozen(cells[:, 2]),
        **axes,
    )


@dataclass(frozen=True)
class PMFLengths:
    """Empirical lengths from probability mass functions: a weighted mixture of components, each
    an independent (prompt PMF, output PMF) pair, as ServeGen publishes them per client."""

    weights: np.ndarray  # float64 (K,), summing to 1
    prompt: tuple[tuple[np.ndarray, np.ndarray], ...]  # per component: (values int64, cumulative probs)
    output: tuple[tuple[np.ndarray, np.ndarray], ...]

    def mean(self, cap_prompt: int | None, cap_output: int | None) -> tuple[float, float]:
        def one(axis: tuple[tuple[np.ndarray, np.ndarray], ...], cap: int | None) -> float:
            means = [float(np.dot(_clip(np.maximum(v, 1), cap), np.diff(np.concatenate([[0.0], c])))) for v, c in axis]
            return float(np.dot(self.weights, means))

        return one(self.prompt, cap_prompt), one(self.output, cap_output)


def _parse_pmf(where: str, value: object) -> tuple[np.ndarray, np.ndarray]:
    """``{length: probability}`` (a mapping, or ServeGen's Python-literal string of one)."""
    import ast

    if isinstance(value, str):
        try:
            value = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            raise fail(where, value[:60], "a mapping of length to probability") from None
    if not isinstance(value, dict) or not value:
        raise fail(where, value, "a non-empty mapping of length to probability")
    try:
        lengths = np.asarray([int(float(k)) for k in value], dtype=np.int64)
        probs = np.asarray([float(v) for v in value.values()], dtype=np.float64)
    except (TypeError, ValueError):
        raise fail(where, list(value.items())[:3], "integer lengths with numeric probabilities") from None
    if (probs < 0).any() or not probs.sum() > 0 or (lengths < 0).any():
        raise fail(where, list(value.items())[:3], "lengths >= 0 with probabilities >= 0 and a positive total")
    order = np.argsort(lengths, kind="stable")
    lengths, probs = lengths[order], probs[order]
    return lengths, np.cumsum(probs) / probs.sum()


@functools.lru_cache(maxsize=8)
def load_pmf_lengths(path: str) -> PMFLengths:
    """Read a PMF length file (see ``WorkloadConfig.pmf_path``)."""
    try:
        data = json.loads(Path(path).read_text())
    except OSError as err:
        raise fail("pmf_path", path, f"a readable JSON file ({err.strerror})") from None
    except ValueError as err:
        raise fail("pmf_path", path, f"a JSON file ({err})") from None
    entries = data.get("components", [data]) if isinstance(data, dict) else None
    if not isinstance(entries, list) or not entries:
        raise fail("pmf_path", path, "a JSON object with prompt/output PMFs, or with a list of weighted 'components'")
    weights, prompts, outputs = [], [], []
    for i, entry in enumerate(entries):
        where = f"pmf_path {path!r} component {i}"
        if not isinstance(entry, dict):
            raise fail(where, entry, "an object with prompt and output PMFs")
        prompt = entry.get("prompt", entry.get("input_tokens"))
        output = entry.get("output", entry.get("output_tokens"))
        if prompt is None or output is None:
            raise fail(where, sorted(entry), "keys prompt (or input_tokens) and output (or output_tokens)")
        weight = entry.get("weight", 1.0)
        if not isinstance(weight, (int, float)) or isinstance(weight, bool) or not weight > 0:
            raise fail(f"{where} weight", weight, "a number > 0")
        weights.append(float(weight))
        prompts.append(_parse_pmf(f"{where} prompt", prompt))
        outputs.append(_parse_pmf(f"{where} output", output))
    w = np.asarray(weights)
    return PMFLengths(weights=w / w.sum(), prompt=tuple(prompts), output=tuple(outputs))


@dataclass(frozen=True)
class ArrivalProfile:
    """A rate profile for ``arrival='profile'``: arrivals are Poisson with a rate that follows
    ``counts`` (requests per ``bin_s`` seconds of the source trace), scaled to the mean rate."""

    name: str
    description: str
    source: dict
    stats: dict
    bin_s: float
    counts: np.ndarray  # float64 (B,) requests in each bin of the source

    @property
    def period_s(self) -> float:
        return self.bin_s * len(self.counts)

    @property
    def mean_rate(self) -> float:
        return float(self.counts.sum()) / self.period_s


def available_arrival_profiles() -> list[str]:
    """Names of the shipped arrival profiles."""
    return sorted(p.stem for p in PROFILE_DIR.glob("*.json"))


@functools.lru_cache(maxsize=None)
def load_arrival_profile(name: str) -> ArrivalProfile:
    """A shipped arrival profile by name, or a profile file (same format) by its path."""
    path = Path(name) if name.endswith(".json") else PROFILE_DIR / f"{name}.json"
    if not name.endswith(".json"):
        check_choice("arrival_profile", name, available_arrival_profiles())
    try:
        data = json.loads(path.read_text())
        counts = np.asarray(data["counts"], dtype=np.float64)
        bin_s = float(data["bin_s"])
    except OSError as err:
        raise fail("arrival_profile", name, f"a readable profile file ({err.strerror})") from None
    except (ValueError, KeyError, TypeError) as err:
        raise fail("arrival_profile", name, f"a JSON profile with bin_s and counts ({err!r})") from None
    if counts.ndim != 1 or counts.size == 0 or (counts < 0).any() or not counts.sum() > 0 or not bin_s > 0:
        raise fail("arrival_profile", name, "bin_s > 0 and counts >= 0 with a positive total")
    counts.setflags(write=False)
    return ArrivalProfile(
        name=data.get("name", path.stem),
        description=data.get("description", ""),
        source=data.get("source", {}),
        stats=data.get("stats", {}),
        bin_s=bin_s,
        counts=counts,
    )


#: WorkloadConfig fields that describe lengths (what a mixture component may set).
COMPONENT_LENGTH_FIELDS: tuple[str, ...] = (
    "lengths",
    "prompt_mean",
    "output_mean",
    "prompt_sigma",
    "output_sigma",
    "length_correlation",
    "uniform_spread",
    "max_prompt_len",
    "max_output_len",
    "trace_path",
    "trace_format",
    "trace_order",
    "pmf_path",
)


@dataclass(frozen=True)
class LengthComponent:
    """One component of a ``mixture`` length distribution.

    ``weight`` (> 0, relative) is the share of requests drawn from it; ``slo_class`` names the
    request class of those requests (targets in ``SimConfig.slo_classes``; None: no class); the
    other fields are the :class:`WorkloadConfig` length fields of the same names (a component
    cannot itself be a mixture).
    """

    weight: float = 1.0
    slo_class: str | None = None
    lengths: str = "sharegpt"
    prompt_mean: float = 512.0
    output_mean: float = 256.0
    prompt_sigma: float = 1.0
    output_sigma: float = 1.0
    length_correlation: float = 0.0
    uniform_spread: float = 0.5
    max_prompt_len: int | None = None
    max_output_len: int | None = None
    trace_path: str | None = None
    trace_format: str = "auto"
    trace_order: str = "file"
    pmf_path: str | None = None

    def __post_init__(self) -> None:
        check_positive("weight", self.weight)
        if self.slo_class is not None and (not isinstance(self.slo_class, str) or not self.slo_class):
            raise fail("slo_class", self.slo_class, "a class name (non-empty str) or None")
        if self.lengths == "mixture":
            raise fail("lengths", "mixture", "a non-mixture length kind or preset inside a mixture component")
        self.workload()  # validates the length fields

    def workload(self) -> "WorkloadConfig":
        """The component's lengths as a WorkloadConfig (its arrival fields unused)."""
        fields = {name: getattr(self, name) for name in COMPONENT_LENGTH_FIELDS}
        return WorkloadConfig(**fields)


# -- configuration --------------------------------------------------------------------------------


@dataclass(frozen=True)
class WorkloadConfig:
    """What arrives: a length distribution, an arrival process and a request count.

    Fields (see the module docstring for each kind):

    * ``lengths``: a preset name or one of ``LENGTH_KINDS``.
    * ``prompt_mean``, ``output_mean``: mean lengths (tokens, >= 1) for lognormal / poisson /
      uniform; the exact lengths for fixed (whole numbers). Unused by presets and traces.
    * ``prompt_sigma``, ``output_sigma``: lognormal std of log length (>= 0).
    * ``length_correlation``: lognormal only: Gaussian-copula correlation in [-1, 1]. Presets
      and traces carry their own measured correlation.
    * ``uniform_spread``: uniform only: half-width of the range relative to the mean, in (0, 1].
    * ``max_prompt_len``, ``max_output_len``: clip sampled lengths (any kind), or None.
    * ``arrival``: one of ``ARRIVAL_KINDS``.
    * ``arrival_cv``: gamma only: CV of the inter-arrival times (> 0; 1 = Poisson).
    * ``burst_on_s``, ``burst_off_s``: onoff only: mean ON / OFF period lengths (s, > 0).
    * ``trace_path``: trace file, required exactly when ``lengths`` or ``arrival`` is "trace".
    * ``trace_format``: one of ``TRACE_FORMATS`` (see traces.py); "auto" reads the header.
    * ``trace_prompt_column``, ``trace_output_column``, ``trace_time_column``,
      ``trace_time_unit``: columns of a generic CSV trace (format "csv", or "auto" with columns
      given) and the unit of its time column (s | ms | us).
    * ``num_requests``: requests in the workload (>= 1); traces are replayed again if shorter.
    * ``prefix``: one of ``PREFIX_KINDS``, the requests' shared prefixes (module docstring).
    * ``prefix_block_size``: tokens per hashed block of generated chains (>= 1; the engine maps
      other block sizes that divide or are divided by it).
    * ``system_prompt_len``, ``num_system_prompts``: system-prompt only (tokens >= 1; >= 1).
    * ``num_conversations``, ``turns_mean``: multi-turn only: concurrent conversations (>= 1) and
      mean turns per conversation (>= 1).
    * ``components``: ``mixture`` only: the weighted :class:`LengthComponent` list (mappings of
      their fields are accepted, as from YAML).
    * ``pmf_path``: ``pmf`` only: a JSON file of length PMFs (see the module docstring).
    * ``trace_order``: which trace rows a run serves: ``file`` (from row 0, whatever the seed),
      ``window`` (consecutive rows from a first row drawn from the seed; with ``arrival='trace'``
      their timestamps, shifted to start at 0) or ``shuffle`` (rows drawn at random with
      replacement from the seed; lengths only, so not with ``arrival='trace'``).
    * ``arrival_profile``: ``profile`` only: a shipped arrival profile
      (``available_arrival_profiles()``) or a profile JSON file.
    """

    lengths: str = "sharegpt"
    prompt_mean: float = 512.0
    output_mean: float = 256.0
    prompt_sigma: float = 1.0
    output_sigma: float = 1.0
    length_correlation: float = 0.0
    uniform_spread: float = 0.5
    max_prompt_len: int | None = None
    max_output_len: int | None = None
    arrival: str = "poisson"
    arrival_cv: float = 1.0
    burst_on_s: float = 10.0
    burst_off_s: float = 10.0
    trace_path: str | None = None
    trace_format: str = "auto"
    trace_prompt_column: str | None = None
    trace_output_column: str | None = None
    trace_time_column: str | None = None
    trace_time_unit: str = "s"
    num_requests: int = 1000
    prefix: str = "none"
    prefix_block_size: int = 16
    system_prompt_len: int = 1024
    num_system_prompts: int = 1
    num_conversations: int = 16
    turns_mean: float = 4.0
    components: tuple[LengthComponent, ...] = ()
    pmf_path: str | None = None
    trace_order: str = "file"
    arrival_profile: str | None = None

    def __post_init__(self) -> None:
        if not is_preset_path(self.lengths):
            check_choice("lengths", self.lengths, LENGTH_KINDS + tuple(available_length_presets()))
        else:
            load_length_preset(self.lengths)  # a user's preset file: it must read
        for name in ("prompt_mean", "output_mean"):
            check_number(name, getattr(self, name), low=1, integer=self.lengths == "fixed")
        for name in ("prompt_sigma", "output_sigma"):
            check_number(name, getattr(self, name), low=0)
        check_number("length_correlation", self.length_correlation, low=-1, high=1)
        if self.length_correlation != 0 and self.lengths != "lognormal":
            raise fail(
                "length_correlation",
                self.length_correlation,
                f"0 with lengths={self.lengths!r} (only lognormal lengths take a copula correlation; "
                "presets and traces keep their own measured correlation)",
            )
        check_number("uniform_spread", self.uniform_spread, low=0, high=1, low_open=True)
        for name in ("max_prompt_len", "max_output_len"):
            if getattr(self, name) is not None:
                object.__setattr__(self, name, check_positive(name, getattr(self, name), integer=True))
        check_choice("arrival", self.arrival, ARRIVAL_KINDS)
        check_positive("arrival_cv", self.arrival_cv)
        check_positive("burst_on_s", self.burst_on_s)
        check_positive("burst_off_s", self.burst_off_s)
        object.__setattr__(self, "num_requests", check_positive("num_requests", self.num_requests, integer=True))
        self._check_trace_fields()
        check_choice("prefix", self.prefix, PREFIX_KINDS)
        for name in ("prefix_block_size", "system_prompt_len", "num_system_prompts", "num_conversations"):
            object.__setattr__(self, name, check_positive(name, getattr(self, name), integer=True))
        check_number("turns_mean", self.turns_mean, low=1)
        if self.prefix == "trace" and self.lengths != "trace":
            raise fail("prefix", self.prefix, f"another prefix kind with lengths={self.lengths!r} (prefix='trace' needs lengths='trace')")
        if self.prefix == "trace" and self.trace_order == "shuffle":
            raise fail("prefix", self.prefix, "another prefix kind with trace_order='shuffle' (chains follow the trace's rows in order)")
        self._check_mixture()
        if self.lengths == "pmf":
            if self.pmf_path is None:
                raise fail("pmf_path", None, "a PMF file path when lengths='pmf'")
            load_pmf_lengths(str(self.pmf_path))
        elif self.pmf_path is not None:
            raise fail("pmf_path", self.pmf_path, "None unless lengths='pmf'")
        if self.arrival == "profile":
            if self.arrival_profile is None:
                raise fail("arrival_profile", None, "a profile name (" + ", ".join(available_arrival_profiles()) + ") or file when arrival='profile'")
            load_arrival_profile(str(self.arrival_profile))
        elif self.arrival_profile is not None:
            raise fail("arrival_profile", self.arrival_profile, "None unless arrival='profile'")

    def _check_mixture(self) -> None:
        if not isinstance(self.components, (tuple, list)):
            raise fail("components", self.components, "a list of mixture components")
        components = []
        for i, c in enumerate(self.components):
            if isinstance(c, LengthComponent):
                components.append(c)
                continue
            if not isinstance(c, Mapping):
                raise fail(f"components[{i}]", c, "a mapping of component fields (weight, slo_class, lengths, ...)")
            unknown = sorted(set(c) - {f.name for f in dataclasses.fields(LengthComponent)})
            if unknown:
                raise fail(f"components[{i}]", unknown, "fields of " + ", ".join(f.name for f in dataclasses.fields(LengthComponent)))
            try:
                components.append(LengthComponent(**c))
            except ConfigError as err:
                raise ConfigError(f"components[{i}].{err}") from None
        object.__setattr__(self, "components", tuple(components))
        if self.lengths == "mixture" and not components:
            raise fail("components", [], "at least one component when lengths='mixture'")
        if self.lengths != "mixture" and components:
            raise fail("components", "[...]", "empty unless lengths='mixture'")

    def class_names(self) -> tuple[str, ...]:
        """The request classes of a mixture's components, in order of first appearance."""
        return tuple(dict.fromkeys(c.slo_class for c in self.components if c.slo_class is not None))
    def _check_trace_fields(self) -> None:
        uses_trace = self.lengths == "trace" or self.arrival == "trace"
        check_choice("trace_order", self.trace_order, TRACE_ORDERS)
        if self.trace_order == "shuffle" and self.arrival == "trace":
            raise fail("trace_order", "shuffle", "'file' or 'window' with arrival='trace' (timestamps need consecutive rows)")
        if self.trace_path is not None:
            if not isinstance(self.trace_path, (str, os.PathLike)) or not str(self.trace_path):
                raise fail("trace_path", self.trace_path, "a file path (str) or None")
            object.__setattr__(self, "trace_path", str(self.trace_path))
            if not uses_trace:
                raise fail("trace_path", self.trace_path, "None unless lengths='trace' or arrival='trace'")
        elif uses_trace:
            raise fail("trace_path", None, "a trace file path when lengths='trace' or arrival='trace'")
        check_choice("trace_format", self.trace_format, TRACE_FORMATS)
        check_choice("trace_time_unit", self.trace_time_unit, TIME_UNITS)
        columns = ("trace_prompt_column", "trace_output_column", "trace_time_column")
        for name in columns:
            value = getattr(self, name)
            if value is not None and (not isinstance(value, str) or not value):
                raise fail(name, value, "a column name (non-empty str) or None")
        if self.trace_format == "csv" or (self.trace_format == "auto" and self.trace_prompt_column is not None):
            for name in columns[:2]:
                if getattr(self, name) is None:
                    raise fail(name, None, "a column name for a generic CSV trace (trace_format='csv')")
            if self.arrival == "trace" and self.trace_time_column is None:
                raise fail("trace_time_column", None, "a column name: arrival='trace' needs timestamps")
        else:
            for name in columns:
                if getattr(self, name) is not None:
                    raise fail(name, getattr(self, name), f"None with trace_format={self.trace_format!r} (CSV only)")

    def read_trace(self) -> Trace:
        """The trace at ``trace_path`` (cached while the file is unchanged; arrays read-only)."""
        if self.trace_path is None:
            raise fail("trace_path", None, "a trace file path")
        kw = {}
        if self.trace_prompt_column is not None:
            kw = dict(
                prompt_column=self.trace_prompt_column,
                output_column=self.trace_output_column,
                time_column=self.trace_time_column,
                time_unit=self.trace_time_unit,
            )
        try:
            st = os.stat(self.trace_path)
            stamp = (st.st_mtime_ns, st.st_size)
        except OSError:
            stamp = None  # read_trace reports the missing file
        return _read_trace_cached(self.trace_path, self.trace_format, tuple(sorted(kw.items())), stamp)


@functools.lru_cache(maxsize=8)
def _read_trace_cached(path: str, format: str, kw: tuple, stamp: tuple | None) -> Trace:
    trace = read_trace(path, format, **dict(kw))
    for a in (trace.arrival_time, trace.prompt_len, trace.output_len):
        if a is not None:
            a.setflags(write=False)
    return trace


# -- lengths --------------------------------------------------------------------------------------


def _uniform_bounds(mean: float, spread: float) -> tuple[int, int]:
    lo = max(1, round(mean * (1 - spread)))
    return lo, max(lo, round(mean * (1 + spread)))


def _lognormal_mu(mean: float, sigma: float) -> float:
    return math.log(mean) - sigma * sigma / 2


def _clip(x: np.ndarray, cap: int | None) -> np.ndarray:
    return x if cap is None else np.minimum(x, cap)


def _categorical(cumulative: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Indices drawn by inverting a cumulative distribution with uniforms ``u`` (the last index
    when rounding leaves ``cumulative[-1]`` just below 1)."""
    return np.minimum(np.searchsorted(cumulative, u, side="right"), len(cumulative) - 1)


def trace_start(cfg: WorkloadConfig, ss: np.random.SeedSequence, rows: int) -> int:
    """The first trace row a run serves: 0, or with ``trace_order='window'`` a row drawn from the
    workload seed (shared by the length and arrival streams, so rows stay paired)."""
    if cfg.trace_order != "window":
        return 0
    return int(generator(ss, WINDOW_STREAM).integers(rows))


class _LengthStream:
    """Draws consecutive (prompt, output) lengths of a config; one generator per random quantity.

    ``ss`` is the workload's seed sequence (the stream uses its ``LENGTH_STREAM`` child; a trace
    window's first row comes from ``WINDOW_STREAM``). A mixture picks each request's component
    with a generator of its own and draws the component's lengths from the component's own stream,
    so every component's sequence is the same whatever the others are.
    """

    def __init__(self, cfg: WorkloadConfig, ss: np.random.SeedSequence) -> None:
        self.cfg = cfg
        own = child(ss, LENGTH_STREAM)
        self.rng_prompt, self.rng_output, self.rng_cell = generators(own, 3)
        self.preset = load_length_preset(cfg.lengths) if cfg.lengths not in LENGTH_KINDS else None
        self.trace = cfg.read_trace() if cfg.lengths == "trace" else None
        self.cursor = 0 if self.trace is None else trace_start(cfg, ss, len(self.trace))  # trace lengths: next row
        self.pmf = load_pmf_lengths(str(cfg.pmf_path)) if cfg.lengths == "pmf" else None
        if self.preset is not None:
            self.cell_cum = np.cumsum(self.preset.cell_count)
        self.parts: list[_LengthStream] = []
        self.part_class: np.ndarray = np.zeros(0, dtype=np.int64)
        if cfg.lengths == "mixture":
            names = cfg.class_names()
            for k, component in enumerate(cfg.components):
                self.parts.append(_LengthStream(component.workload(), child(own, 1 + k)))
            weights = np.asarray([c.weight for c in cfg.components], dtype=np.float64)
            self.part_cum = np.cumsum(weights / weights.sum())
            self.part_class = np.asarray(
                [names.index(c.slo_class) if c.slo_class is not None else -1 for c in cfg.components], dtype=np.int64
            )
        #: the request classes of the last draw (-1: none), or None when the config has no classes
        self.classes: np.ndarray | None = None

    def draw(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        c, kind = self.cfg, self.cfg.lengths
        if kind == "mixture":
            part = _categorical(self.part_cum, self.rng_cell.random(n))
            prompt = np.empty(n, dtype=np.int64)
            output = np.empty(n, dtype=np.int64)
            for k, stream in enumerate(self.parts):
                rows = np.flatnonzero(part == k)
                prompt[rows], output[rows] = stream.draw(len(rows))
            self.classes = self.part_class[part] if (self.part_class >= 0).any() else None
            return _clip(prompt, c.max_prompt_len), _clip(output, c.max_output_len)
        if kind == "lognormal":
            zp = self.rng_prompt.standard_normal(n)
            rho = c.length_correlation
            zo = rho * zp + math.sqrt(1 - rho * rho) * self.rng_output.standard_normal(n)
            # Round in float, capping first so the int64 cast cannot overflow.
            prompt = np.rint(np.minimum(np.exp(_lognormal_mu(c.prompt_mean, c.prompt_sigma) + c.prompt_sigma * zp), _NO_CAP))
            output = np.rint(np.minimum(np.exp(_lognormal_mu(c.output_mean, c.output_sigma) + c.output_sigma * zo), _NO_CAP))
        elif kind == "poisson":
            prompt = self.rng_prompt.poisson(c.prompt_mean, n)
            output = self.rng_output.poisson(c.output_mean, n)
        elif kind == "geometric":
            prompt = self.rng_prompt.geometric(1.0 / c.prompt_mean, n)
            output = self.rng_output.geometric(1.0 / c.output_mean, n)
        elif kind == "fixed":
            prompt = np.full(n, int(c.prompt_mean))
            output = np.full(n, int(c.output_mean))
        elif kind == "uniform":
            lo_p, hi_p = _uniform_bounds(c.prompt_mean, c.uniform_spread)
            lo_o, hi_o = _uniform_bounds(c.output_mean, c.uniform_spread)
            prompt = lo_p + np.floor(self.rng_prompt.random(n) * (hi_p - lo_p + 1))
            output = lo_o + np.floor(self.rng_output.random(n) * (hi_o - lo_o + 1))
        elif kind == "trace":
            trace = self.trace
            assert trace is not None
            if c.trace_order == "shuffle":
                rows = np.floor(self.rng_cell.random(n) * len(trace)).astype(np.int64)
            else:
                rows = (self.cursor + np.arange(n)) % len(trace)
                self.cursor += n
            prompt, output = trace.prompt_len[rows], trace.output_len[rows]
        elif kind == "pmf":
            pmf = self.pmf
            assert pmf is not None
            part = _categorical(np.cumsum(pmf.weights), self.rng_cell.random(n))
            u_prompt, u_output = self.rng_prompt.random(n), self.rng_output.random(n)
            prompt = np.empty(n, dtype=np.int64)
            output = np.empty(n, dtype=np.int64)
            for k in range(len(pmf.weights)):
                rows = np.flatnonzero(part == k)
                for out, (values, cum), u in ((prompt, pmf.prompt[k], u_prompt), (output, pmf.output[k], u_output)):
                    out[rows] = values[_categorical(cum, u[rows])]
        else:
            p = self.preset
            assert p is not None
            draws = np.floor(self.rng_cell.random(n) * self.cell_cum[-1])
            cells = np.searchsorted(self.cell_cum, draws, side="right")
            prompt = p.prompt.sample(p.cell_prompt_bin[cells], self.rng_prompt.random(n))
            output = p.output.sample(p.cell_output_bin[cells], self.rng_output.random(n))
        prompt = _clip(np.maximum(np.asarray(prompt, dtype=np.int64), 1), c.max_prompt_len)
        output = _clip(np.maximum(np.asarray(output, dtype=np.int64), 1), c.max_output_len)
        return prompt, output


def sample_lengths(cfg: WorkloadConfig, n: int, seed: int | np.random.SeedSequence) -> tuple[np.ndarray, np.ndarray]:
    """``n`` draws of the length mix: exactly the lengths of the first ``n`` requests that
    :func:`generate` gives for the same seed (trace lengths: the rows it serves, cycling)."""
    n = check_number("n", n, low=0, integer=True)
    ss = seed_sequence(seed)
    prompt, output = _LengthStream(cfg, ss).draw(int(n))
    if cfg.prefix == "multi-turn":  # prompts carry the conversation so far
        prompt = _PrefixStream(cfg, ss).draw(prompt, output)[0]
    return prompt, output


def _normal_cdf(x: float) -> float:
    return 0.5 * math.erfc(-x / math.sqrt(2))


def _lognormal_clipped_mean(mean: float, sigma: float, cap: int | None) -> float:
    """E[min(max(X, 1), cap)] for X lognormal with the given mean and log-std."""
    if sigma == 0:
        return float(min(max(mean, 1.0), cap if cap is not None else math.inf))
    mu = _lognormal_mu(mean, sigma)

    def below(b: float) -> tuple[float, float]:  # P(X < b), E[X; X < b]
        z = (math.log(b) - mu) / sigma
        return _normal_cdf(z), mean * _normal_cdf(z - sigma)

    p1, e1 = below(1.0)
    if cap is None:
        return p1 + (mean - e1)
    pc, ec = below(float(cap))
    return p1 + (ec - e1) + cap * (1 - pc)


def _poisson_clipped_mean(mean: float, cap: int | None) -> float:
    """E[min(max(N, 1), cap)] for N Poisson(mean): the pmf summed up to far into the tail."""
    top = int(mean + 40 * math.sqrt(mean) + 50)
    k = np.arange(top + 1)
    log_pmf = -mean + k * math.log(mean) - np.cumsum(np.log(np.maximum(k, 1)))
    values = np.clip(k, 1, cap if cap is not None else top)
    return float(np.sum(np.exp(log_pmf) * values))


def _geometric_clipped_mean(mean: float, cap: int | None) -> float:
    """E[min(K, cap)] for K geometric on 1, 2, ... with mean ``mean``: sum of P(K >= k) = q^(k-1)."""
    if cap is None:
        return float(mean)
    q = 1.0 - 1.0 / mean
    return float(mean * (1.0 - q**cap))


def _uniform_clipped_mean(lo: int, hi: int, cap: int | None) -> float:
    k = np.arange(lo, hi + 1)
    return float(np.mean(_clip(k, cap)))


def _floor_loguniform_means(edges: np.ndarray, cap: int | None) -> np.ndarray:
    """E[min(K, cap)] for K = floor(log-uniform on [a, b)) in each bin: P(K >= k) =
    ln(b/k) / ln(b/a) for a < k < b, summed in closed form with lgamma."""
    means = []
    for a, b in zip(edges[:-1].tolist(), edges[1:].tolist()):
        if cap is not None and cap <= a:
            means.append(float(cap))
            continue
        top = b - 1 if cap is None else min(b - 1, cap)
        terms = top - a  # k = a+1 .. top
        log_sum = math.lgamma(top + 1) - math.lgamma(a + 1)  # sum of ln k over those k
        means.append(a + (terms * math.log(b) - log_sum) / math.log(b / a))
    return np.asarray(means)


def mean_lengths(cfg: WorkloadConfig) -> tuple[float, float]:
    """Mean (prompt, output) length of the mix, after clipping.

    Exact for fixed, uniform, poisson, presets and traces (trace: over the ``num_requests`` rows
    generated, cycling). Lognormal: exact for the continuous distribution before rounding to
    integers; rounding moves the mean by under 0.1 % for means >= 10 with sigma <= 2 (0.5 % at
    mean 3).
    """
    kind = cfg.lengths
    if cfg.prefix == "multi-turn":
        return _multi_turn_means(cfg)
    if kind == "mixture":
        if cfg.max_prompt_len is not None or cfg.max_output_len is not None:
            # clipping the mixture as a whole: measure it (seeded, so repeatable)
            prompt, output = sample_lengths(cfg, 200_000, 0)
            return float(prompt.mean()), float(output.mean())
        weights = np.asarray([c.weight for c in cfg.components], dtype=np.float64)
        means = np.asarray([mean_lengths(c.workload()) for c in cfg.components])
        prompt_mean, output_mean = (weights / weights.sum()) @ means
        return float(prompt_mean), float(output_mean)
    if kind == "pmf":
        return load_pmf_lengths(str(cfg.pmf_path)).mean(cfg.max_prompt_len, cfg.max_output_len)
    if kind == "lognormal":
        return (
            _lognormal_clipped_mean(cfg.prompt_mean, cfg.prompt_sigma, cfg.max_prompt_len),
            _lognormal_clipped_mean(cfg.output_mean, cfg.output_sigma, cfg.max_output_len),
        )
    if kind == "poisson":
        return _poisson_clipped_mean(cfg.prompt_mean, cfg.max_prompt_len), _poisson_clipped_mean(cfg.output_mean, cfg.max_output_len)
    if kind == "geometric":
        return _geometric_clipped_mean(cfg.prompt_mean, cfg.max_prompt_len), _geometric_clipped_mean(cfg.output_mean, cfg.max_output_len)
    if kind == "fixed":
        return (
            float(min(cfg.prompt_mean, cfg.max_prompt_len or math.inf)),
            float(min(cfg.output_mean, cfg.max_output_len or math.inf)),
        )
    if kind == "uniform":
        return (
            _uniform_clipped_mean(*_uniform_bounds(cfg.prompt_mean, cfg.uniform_spread), cfg.max_prompt_len),
            _uniform_clipped_mean(*_uniform_bounds(cfg.output_mean, cfg.uniform_spread), cfg.max_output_len),
        )
    if kind == "trace":
        trace = cfg.read_trace()
        if cfg.trace_order != "file":  # rows depend on the seed: the mean over the whole trace
            return float(_clip(trace.prompt_len, cfg.max_prompt_len).mean()), float(_clip(trace.output_len, cfg.max_output_len).mean())
        n, total = len(trace), cfg.num_requests
        full, rest = divmod(total, n)

        def cycled_mean(x: np.ndarray) -> float:
            return float((full * x.sum() + x[:rest].sum()) / total)

        return cycled_mean(_clip(trace.prompt_len, cfg.max_prompt_len)), cycled_mean(_clip(trace.output_len, cfg.max_output_len))
    p = load_length_preset(kind)
    weights = p.cell_count / p.cell_count.sum()
    prompt = p.prompt.coarse_means(cfg.max_prompt_len)[p.cell_prompt_bin]
    output = p.output.coarse_means(cfg.max_output_len)[p.cell_output_bin]
    return float(weights @ prompt), float(weights @ output)


@functools.lru_cache(maxsize=32)
def _multi_turn_means(cfg: WorkloadConfig) -> tuple[float, float]:
    """Sample means of 20,000 multi-turn requests (prompts grow with the conversation)."""
    prompt, output = sample_lengths(cfg, 20_000, 0)
    return float(np.mean(prompt)), float(np.mean(output))


def spearman_correlation(x: np.ndarray, y: np.ndarray) -> float:
    """Spearman rank correlation (Pearson correlation of average ranks, so ties are handled)."""

    def ranks(v: np.ndarray) -> np.ndarray:
        _, inverse, counts = np.unique(v, return_inverse=True, return_counts=True)
        first = np.cumsum(counts) - counts  # 0-based rank of each distinct value's first copy
        return (first + (counts + 1) / 2)[inverse]

    return float(np.corrcoef(ranks(np.asarray(x)), ranks(np.asarray(y)))[0, 1])


# -- arrivals -------------------------------------------------------------------------------------


def _running_sum(start: float, steps: np.ndarray) -> np.ndarray:
    """start + steps[0], + steps[1], ... added one at a time, so the values are bit-identical
    however a sequence is split into chunks."""
    return np.cumsum(np.concatenate([[start], steps]))[1:]


class _ArrivalStream:
    """Draws consecutive absolute arrival times; one generator per random quantity."""

    def __init__(self, cfg: WorkloadConfig, rate: float | None, ss: np.random.SeedSequence) -> None:
        self.cfg, self.rate = cfg, rate
        self.rng_gap, self.rng_on, self.rng_off = generators(child(ss, ARRIVAL_STREAM), 3)
        self.count = 0  # arrivals drawn so far
        self.last = 0.0  # time of the last arrival
        if cfg.arrival == "onoff":
            assert rate is not None
            on, off = cfg.burst_on_s, cfg.burst_off_s
            self.on_rate = rate * (on + off) / on
            self.clock = 0.0  # ON-time of the last arrival (time spent ON since the start)
            self.on_end = np.empty(0)  # ON-time at which each period held so far ends
            self.off_before = np.empty(0)  # OFF time elapsed before each such period starts
            self.on_total = self.off_total = 0.0  # totals over all periods drawn so far
        if cfg.arrival == "trace":
            self._init_trace(ss)
        if cfg.arrival == "profile":
            self._init_profile()

    def _init_profile(self) -> None:
        # A Poisson process whose rate follows the profile, time-scaled so that its mean rate is
        # ``rate`` (each bin keeps its share of the arrivals), cycling, from a seeded random
        # offset: unit-rate points mapped through the inverse of the cumulative intensity.
        assert self.rate is not None
        profile = load_arrival_profile(str(self.cfg.arrival_profile))
        scale = profile.mean_rate / self.rate  # seconds of the run per second of the profile
        self.bin_s = profile.bin_s * scale
        self.bin_rate = profile.counts / self.bin_s  # requests/s in each bin of the run
        self.cum = np.concatenate([[0.0], np.cumsum(profile.counts)])  # arrivals expected by each bin edge
        self.per_period = float(self.cum[-1])
        start = self.rng_on.random() * self.per_period  # where in the profile the run starts
        self.origin = start
        self.offset_s = self._time_at(np.asarray([start]))[0]

    def _time_at(self, mass: np.ndarray) -> np.ndarray:
        """Time (s, from the profile's start) at which the cumulative intensity reaches ``mass``."""
        cycles, rest = np.divmod(mass, self.per_period)
        b = np.minimum(np.searchsorted(self.cum, rest, side="right") - 1, len(self.bin_rate) - 1)
        # a bin with no arrivals is never the one a point lands in, except at rounding edges
        within = np.where(self.bin_rate[b] > 0, (rest - self.cum[b]) / np.maximum(self.bin_rate[b], 1e-300), 0.0)
        return (cycles * len(self.bin_rate) + b) * self.bin_s + np.minimum(within, self.bin_s)

    def _init_trace(self, ss: np.random.SeedSequence) -> None:
        trace = self.cfg.read_trace()
        if trace.arrival_time is None:
            raise fail(
                "arrival",
                "trace",
                f"an arrival process other than 'trace': {trace.source} has no timestamps (a length-only trace)",
            )
        n, span = len(trace), float(trace.arrival_time[-1])
        if n < 2 or span <= 0:
            raise fail("trace_path", trace.source, "a trace whose timestamps span a positive time for arrival='trace'")
        self.times = trace.arrival_time
        self.period = span * n / (n - 1)  # one replay lasts its span plus one mean IAT
        self.scale = 1.0 if self.rate is None else (n - 1) / span / self.rate
        self.start = trace_start(self.cfg, ss, n)

    def draw(self, n: int) -> np.ndarray:
        kind = self.cfg.arrival
        rate = self.rate if self.rate is not None else math.nan  # only trace replay may keep its own timing
        if kind == "deterministic":
            times = (self.count + np.arange(1, n + 1)) / rate
        elif kind == "trace":
            idx = self.start + self.count + np.arange(n)
            replay, row = np.divmod(idx, len(self.times))
            times = (self.times[row] + replay * self.period - self.times[self.start]) * self.scale
        elif kind == "profile":
            mass = _running_sum(self.origin, self.rng_gap.standard_exponential(n))
            if n:
                self.origin = float(mass[-1])
            times = self._time_at(mass) - self.offset_s
        elif kind == "onoff":
            times = self._draw_onoff(n)
        else:
            if kind == "poisson":
                gaps = self.rng_gap.standard_exponential(n) / rate
            else:  # gamma
                cv2 = self.cfg.arrival_cv**2
                gaps = self.rng_gap.gamma(1 / cv2, cv2 / rate, n)
            times = _running_sum(self.last, gaps)
        self.count += n
        self.last = float(times[-1]) if n else self.last
        return times

    def _draw_onoff(self, n: int) -> np.ndarray:
        # Arrivals are a Poisson process on the "ON clock"; each is then shifted by the OFF time
        # elapsed before the ON period that contains it.
        clock = _running_sum(self.clock, self.rng_gap.standard_exponential(n) / self.on_rate)
        if n == 0:
            return clock
        self.clock = float(clock[-1])
        while self.on_total <= self.clock:
            m = max(16, int(1.25 * (self.clock - self.on_total) / self.cfg.burst_on_s) + 1)
            on = self.rng_on.standard_exponential(m) * self.cfg.burst_on_s
            off = self.rng_off.standard_exponential(m) * self.cfg.burst_off_s
            off_end = _running_sum(self.off_total, off)  # OFF time elapsed after each new period
            self.on_end = np.concatenate([self.on_end, _running_sum(self.on_total, on)])
            self.off_before = np.concatenate([self.off_before, [self.off_total], off_end[:-1]])
            self.on_total, self.off_total = float(self.on_end[-1]), float(off_end[-1])
        period = np.searchsorted(self.on_end, clock, side="right")
        times = clock + self.off_before[period]
        keep = int(period[-1])  # later draws never fall in earlier periods
        self.on_end, self.off_before = self.on_end[keep:], self.off_before[keep:]
        return times


# -- generation -----------------------------------------------------------------------------------


def generate(
    cfg: WorkloadConfig,
    rate: float | None,
    seed: int | np.random.SeedSequence,
    chunk_size: int = 8192,
) -> Iterator[RequestBatch]:
    """Stream ``cfg.num_requests`` requests as consecutive RequestBatch chunks.

    ``rate`` is the long-run mean arrival rate (requests/s, > 0); with ``arrival='trace'`` it
    rescales the trace's timing and ``None`` keeps it. Chunk k holds requests
    ``k*chunk_size ...`` (``first_id``); arrival times are absolute seconds, nondecreasing.
    Memory is O(chunk_size) (plus the trace, when one is replayed).
    """
    if not isinstance(cfg, WorkloadConfig):
        raise fail("cfg", type(cfg).__name__, "a WorkloadConfig")
    if rate is not None or cfg.arrival != "trace":
        check_positive("rate", rate)
    chunk_size = check_positive("chunk_size", chunk_size, integer=True)
    ss = seed_sequence(seed)
    # Both streams are built here, not in the generator below, so errors surface at the call.
    arrivals = _ArrivalStream(cfg, None if rate is None else float(rate), ss)
    lengths = _LengthStream(cfg, ss)
    prefixes = None if cfg.prefix == "none" else _PrefixStream(cfg, ss)
    return _chunks(arrivals, lengths, prefixes, cfg.num_requests, int(chunk_size))


def _chunks(
    arrivals: _ArrivalStream, lengths: _LengthStream, prefixes: "_PrefixStream | None", total: int, chunk_size: int
) -> Iterator[RequestBatch]:
    for start in range(0, total, chunk_size):
        n = min(chunk_size, total - start)
        prompt, output = lengths.draw(n)
        batch = RequestBatch(
            arrival_time=arrivals.draw(n), prompt_len=prompt, output_len=output, first_id=start, slo_class=lengths.classes
        )
        if prefixes is not None:
            batch.prompt_len, batch.block_hash_offsets, batch.block_hash_values = prefixes.draw(prompt, output)
            batch.block_hash_size = prefixes.block_size
        yield batch


class _PrefixStream:
    """Hash chains of consecutive requests (and, for multi-turn, their grown prompts)."""

    def __init__(self, cfg: WorkloadConfig, ss: np.random.SeedSequence) -> None:
        self.cfg = cfg
        self.rng_choice, self.rng_turns = generators(child(ss, PREFIX_STREAM), 2)
        self.kind = cfg.prefix
        self.block_size = cfg.prefix_block_size
        if self.kind == "system-prompt":
            self.system_blocks = cfg.system_prompt_len // self.block_size
            self.next_id = cfg.num_system_prompts * self.system_blocks  # ids below: system prompts
        else:
            self.next_id = 0
        # multi-turn: per slot, the conversation's chain, exchange length (tokens), turns left
        self.slots: list[tuple[list[int], int, int]] = [([], 0, 0)] * cfg.num_conversations
        if self.kind == "trace":
            trace = cfg.read_trace()
            if trace.block_hash_offsets is None or trace.block_hash_values is None:
                raise fail("prefix", "trace", f"a trace with hash chains: {trace.source} has none (Mooncake traces have hash_ids)")
            self.trace = trace
            self.block_size = trace.block_hash_size
            self.cursor = trace_start(cfg, ss, len(trace))  # the rows the length stream serves
            self.id_span = int(trace.block_hash_values.max(initial=0)) + 1  # fresh ids for each replay

    def _fresh(self, n: int) -> list[int]:
        start = self.next_id
        self.next_id += n
        return list(range(start, start + n))

    def draw(self, prompt: np.ndarray, output: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(prompt lengths, chain offsets, chain values) for the next ``len(prompt)`` requests."""
        n = len(prompt)
        B = self.block_size
        prompts = prompt.tolist()
        outputs = output.tolist()
        chains: list[list[int]] = []
        if self.kind == "system-prompt":
            choice = np.floor(self.rng_choice.random(n) * self.cfg.num_system_prompts).astype(np.int64).tolist()
            for p, o, s in zip(prompts, outputs, choice):
                shared = min(self.system_blocks, p // B)
                head = list(range(s * self.system_blocks, s * self.system_blocks + shared))
                chains.append(head + self._fresh((p + o) // B - shared))
        elif self.kind == "multi-turn":
            slot_draws = np.floor(self.rng_choice.random(n) * self.cfg.num_conversations).astype(np.int64).tolist()
            turn_draws = self.rng_turns.geometric(1.0 / self.cfg.turns_mean, n).tolist()
            cap = self.cfg.max_prompt_len
            for i, (p, o, k) in enumerate(zip(prompts, outputs, slot_draws)):
                chain, exchange, left = self.slots[k]
                if left <= 0 or (cap is not None and exchange + p > cap):
                    chain, exchange, left = [], 0, int(turn_draws[i])
                p = exchange + p  # the conversation so far, then the new tokens
                prompts[i] = p
                chain = chain + self._fresh((p + o) // B - len(chain))
                self.slots[k] = (chain, p + o, left - 1)
                chains.append(chain)
        else:  # trace
            trace = self.trace
            offsets, values = trace.block_hash_offsets, trace.block_hash_values
            assert offsets is not None and values is not None
            rows = len(trace)
            for j in range(n):
                replay, row = divmod(self.cursor + j, rows)
                ids = values[offsets[row] : offsets[row + 1]]
                full = min(len(ids), int(trace.prompt_len[row]) // B)
                chains.append((ids[:full] + replay * self.id_span).tolist())
            self.cursor += n
        offsets_out = np.zeros(n + 1, dtype=np.int64)
        offsets_out[1:] = np.cumsum([len(c) for c in chains])
        flat = np.fromiter((h for c in chains for h in c), dtype=np.int64, count=int(offsets_out[-1]))
        return np.asarray(prompts, dtype=np.int64), offsets_out, flat
