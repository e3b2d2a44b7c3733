"""Aggregates over seeds: means with Student-t confidence intervals, paired ratios to a reference
policy, and the winner of each metric with how sure we are of it.

* Mean and 95 % confidence interval of a metric over the seeds of a grid point:
  ``mean +- t(0.975, n-1) * s / sqrt(n)`` with ``s`` the sample standard deviation (no interval
  with fewer than two seeds).
* Ratio to the reference: common random numbers make the runs of two policies on the same seed a
  pair (same requests, same predictions), so the ratio is the geometric mean of the per-seed ratios,
  ``exp(mean(log(v_s / ref_s)))``, and its interval is the t interval of the log ratios mapped back
  by ``exp``. Undefined (NaN) where a value is not positive.
* Winner of a metric at a grid point: the policy with the best mean; it is *significant* when the
  paired per-seed differences to the runner-up have a 95 % t interval that excludes zero. There is
  no winner when every value is equal or within noise (the best is not significantly better than
  the worst either).
* Intervals shown (tables, plots) are clipped to the metric's range (:func:`interval`): a fraction
  stays in [0, 1], a count or a time at or above 0; the symmetric half-width is kept in the data.
* Identical policies (:func:`identical_groups`): policies whose every per-seed figure is equal at a
  grid point served every request alike there (e.g. two preemption rules without KV pressure).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Iterable

import numpy as np

CONFIDENCE = 0.95
ID_KEYS = ("run", "load", "rate", "seed", "num_requests")  # numeric record fields that are not metrics


@dataclass(frozen=True)
class Metric:
    """How a summary metric is shown and judged."""

    key: str  # the summary key
    label: str  # column header
    better: str  # "lower" or "higher"
    scale: float = 1.0  # display multiplier (s -> ms...)
    unit: str = ""
    low: float = 0.0  # the valid range of the value (before scaling): intervals are clipped to it
    high: float = math.inf


# The metrics of the plots and TensorBoard (results.* and aggregate.csv keep every metric).
HEADLINE: tuple[Metric, ...] = (
    Metric("e2e_mean_s", "e2e mean", "lower", unit="s"),
    Metric("e2e_p99_s", "e2e p99", "lower", unit="s"),
    Metric("e2e_max_s", "e2e max", "lower", unit="s"),
    Metric("ttft_mean_s", "TTFT mean", "lower", unit="s"),
    Metric("ttft_p99_s", "TTFT p99", "lower", unit="s"),
    Metric("ttft_max_s", "TTFT max", "lower", unit="s"),
    Metric("tpot_mean_s", "TPOT mean", "lower", 1000.0, "ms"),
    Metric("normalized_latency_mean_s_per_token", "norm. lat.", "lower", 1000.0, "ms/tok"),
    Metric("output_tokens_per_s", "tokens/s", "higher"),
    Metric("requests_per_s", "req/s", "higher"),
    Metric("slo_attainment", "SLO att.", "higher", 100.0, "%", high=1.0),
    Metric("preemptions", "preempt.", "lower"),
)
METRICS = {m.key: m for m in HEADLINE}
RATIO_KEYS = ("e2e_mean_s", "ttft_mean_s")  # ratio columns of the table
# The columns of the comparison table in summary.md, and of its compact console form (100 columns).
TABLE_KEYS = (
    "e2e_mean_s", "e2e_p99_s", "e2e_max_s", "ttft_mean_s", "ttft_p99_s", "ttft_max_s", "tpot_mean_s",
    "output_tokens_per_s", "slo_attainment", "preemptions",
)  # fmt: skip
COMPACT_KEYS = ("e2e_mean_s", "e2e_p99_s", "e2e_max_s", "ttft_mean_s", "ttft_max_s")


# -- statistics -------------------------------------------------------------------------------------


def _t_cdf(t: float, df: int) -> float:
    """P(T <= t) for t >= 0: Simpson's rule on the density over [0, t] (error far below 1e-9)."""
    n = 2000
    x = np.linspace(0.0, t, n + 1)
    log_c = math.lgamma((df + 1) / 2) - math.lgamma(df / 2) - 0.5 * math.log(df * math.pi)
    f = np.exp(log_c) * (1.0 + x * x / df) ** (-(df + 1) / 2)
    return 0.5 + (t / n) / 3.0 * float(f[0] + f[-1] + 4.0 * f[1:-1:2].sum() + 2.0 * f[2:-1:2].sum())


@lru_cache(maxsize=None)
def t_quantile(p: float, df: int) -> float:
    """The ``p`` quantile (p > 0.5) of Student's t with ``df`` degrees of freedom, by bisection."""
    if not 0.5 < p < 1.0 or df < 1:
        raise ValueError(f"t_quantile: need 0.5 < p < 1 and df >= 1, got p={p!r}, df={df!r}")
    hi = 2.0
    while _t_cdf(hi, df) < p:
        hi *= 2.0
    lo = 0.0
    for _ in range(60):
        mid = (lo + hi) / 2.0
        lo, hi = (mid, hi) if _t_cdf(mid, df) < p else (lo, mid)
    return (lo + hi) / 2.0


def mean_ci(values: Iterable[float]) -> tuple[float, float]:
    """(mean, half-width of the 95 % t interval) of the finite values; NaN where undefined."""
    v = np.asarray([x for x in values if x is not None and math.isfinite(x)], dtype=np.float64)
    if v.size == 0:
        return math.nan, math.nan
    if v.size < 2:
        return float(v[0]), math.nan
    t = t_quantile(0.5 + CONFIDENCE / 2, v.size - 1)
    return float(v.mean()), float(t * v.std(ddof=1) / math.sqrt(v.size))


def interval(metric: Metric, mean: float, half_width: float) -> tuple[float, float]:
    """The 95 % interval ``mean +- half_width`` clipped to the metric's valid range."""
    return max(mean - half_width, metric.low), min(mean + half_width, metric.high)


def paired_ratio(values: dict[int, float], reference: dict[int, float]) -> tuple[float, float, float]:
    """(ratio, CI low, CI high) of ``values`` to ``reference`` over their common seeds (see top)."""
    seeds = sorted(set(values) & set(reference))
    pairs = [(values[s], reference[s]) for s in seeds]
    if not pairs or any(not (math.isfinite(a) and math.isfinite(b) and a > 0 and b > 0) for a, b in pairs):
        return math.nan, math.nan, math.nan
    m, hw = mean_ci([math.log(a / b) for a, b in pairs])
    return math.exp(m), math.exp(m - hw), math.exp(m + hw)


# -- cells --------------------------------------------------------------------------------------------


@dataclass
class Cell:
    """One policy at one grid point (scenario and load or rate), over its seeds."""

    scenario: tuple[str, str, str | None]  # workload, hardware, system
    x: float
    policy: str
    values: dict[str, dict[int, float]] = field(default_factory=dict)  # metric -> seed -> value
    stability: dict[int, str] = field(default_factory=dict)  # seed -> verdict
    mean: dict[str, float] = field(default_factory=dict)
    ci: dict[str, float] = field(default_factory=dict)  # half-widths
    ratio: dict[str, tuple[float, float, float]] = field(default_factory=dict)  # vs the reference

    @property
    def seeds(self) -> list[int]:
        return sorted(self.stability)

    def count(self, verdict: str) -> int:
        return sum(v == verdict for v in self.stability.values())


def _number(value: Any) -> float:
    return math.nan if value is None else float(value)


def aggregate(records: list[dict[str, Any]], reference: str) -> list[Cell]:
    """One :class:`Cell` per (scenario, x, policy), in record order, with ratios to ``reference``."""
    cells: dict[tuple, Cell] = {}
    for rec in records:
        scenario = (rec["workload"], rec["hardware"], rec["system"])
        x = rec["load"] if rec["load"] is not None else rec["rate"]
        key = (scenario, x, rec["policy"])
        cell = cells.setdefault(key, Cell(scenario, x, rec["policy"]))
        cell.stability[rec["seed"]] = rec["stability"]
        for name, value in rec.items():
            if name not in ID_KEYS and isinstance(value, (int, float, type(None))) and not isinstance(value, bool):
                cell.values.setdefault(name, {})[rec["seed"]] = _number(value)
    for cell in cells.values():
        ref = cells.get((cell.scenario, cell.x, reference))
        for name, by_seed in cell.values.items():
            cell.mean[name], cell.ci[name] = mean_ci(by_seed.values())
            if ref is not None and name in ref.values:
                cell.ratio[name] = paired_ratio(by_seed, ref.values[name])
    return list(cells.values())


def points(cells: list[Cell]) -> dict[tuple, list[Cell]]:
    """Cells grouped by grid point (scenario, x), in order."""
    out: dict[tuple, list[Cell]] = {}
    for cell in cells:
        out.setdefault((cell.scenario, cell.x), []).append(cell)
    return out


def winner(cells: list[Cell], metric: Metric) -> tuple[str, bool] | None:
    """(best policy, significant vs the runner-up) among the cells of one grid point.

    None with fewer than two policies with a value, when the two best means are equal, or when the
    best is not significantly better than the worst (every value equal within noise).
    """
    ranked = [c for c in cells if math.isfinite(c.mean.get(metric.key, math.nan))]
    if len(ranked) < 2:
        return None
    sign = 1.0 if metric.better == "lower" else -1.0
    ranked.sort(key=lambda c: sign * c.mean[metric.key])
    best, second, worst = ranked[0], ranked[1], ranked[-1]
    if best.mean[metric.key] == second.mean[metric.key]:
        return None
    if not _better(best, worst, metric.key, sign):
        return None
    return best.policy, _better(best, second, metric.key, sign)


def _better(a: Cell, b: Cell, key: str, sign: float) -> bool:
    """Whether ``a`` is significantly better than ``b`` on ``key`` (paired t over common seeds)."""
    va, vb = a.values[key], b.values[key]
    diff, hw = mean_ci([va[s] - vb[s] for s in sorted(set(va) & set(vb))])
    return math.isfinite(hw) and sign * diff < 0 and abs(diff) > hw


IDENTITY_KEYS = ("e2e_mean_s", "e2e_max_s", "ttft_mean_s", "ttft_max_s", "preemptions", "output_tokens_per_s")


def identical_groups(cells: list[Cell]) -> list[list[str]]:
    """Policies (two or more, in cell order) whose per-seed figures are all equal, among the
    cells of one grid point: they served every request alike there."""
    groups: dict[tuple, list[str]] = {}
    for cell in cells:
        key = tuple((k, tuple((seed, None if math.isnan(v) else v) for seed, v in sorted(cell.values.get(k, {}).items()))) for k in IDENTITY_KEYS)
        groups.setdefault(key, []).append(cell.policy)
    return [g for g in groups.values() if len(g) > 1]


def identical_everywhere(cells: list[Cell]) -> list[list[str]]:
    """Groups of policies identical (per seed) at every grid point where both of a pair ran."""
    pairs: dict[tuple[str, str], int] = {}
    present: dict[tuple[str, str], int] = {}
    groups = points(cells)
    policies = list(dict.fromkeys(c.policy for c in cells))
    for point in groups:
        here = {c.policy for c in groups[point]}
        same = [set(g) for g in identical_groups(groups[point])]
        for i, a in enumerate(policies):
            for b in policies[i + 1 :]:
                if a in here and b in here:
                    present[(a, b)] = present.get((a, b), 0) + 1
                    pairs[(a, b)] = pairs.get((a, b), 0) + any({a, b} <= g for g in same)
    merged: list[list[str]] = []
    for (a, b), n in present.items():
        if pairs.get((a, b)) == n:
            group = next((g for g in merged if a in g or b in g), None)
            if group is None:
                merged.append([a, b])
            else:
                group.extend(p for p in (a, b) if p not in group)
    return merged
