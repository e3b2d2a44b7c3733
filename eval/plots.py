"""PNG plots of an evaluation (matplotlib, Agg backend), one set per scenario:

* ``<scenario>-latency_vs_load.png``: mean and p99 end-to-end latency, mean and p99 TTFT, mean
  TPOT and mean normalized latency against load (or rate), one line per policy, shaded 95 %
  intervals over seeds (clipped to the metric's range, and at the bottom of a log axis);
* ``<scenario>-tail_vs_load.png``: the worst-served request (max e2e latency and TTFT, where
  starvation shows), SLO attainment (its band within [0, 100] %) and preemptions. Throughput is
  not plotted: arrivals are open loop, so every policy that keeps up serves the arrival rate and
  the lines would coincide (the tables have it);
* with a single load (or rate) the same panels as a point chart: a row per policy, its mean with
  the 95 % interval as a bar, instead of one lone dot per line;
* ``<scenario>-cdf.png``: per load (up to four: the lowest, highest and two between), the CDFs of
  end-to-end latency and TTFT and their tails as complementary CDFs (1 - F on a log scale, down to
  one request in the pooled sample), requests of all seeds pooled;
* ``capacity.png``: the capacity of each policy per scenario, with the bracket of the bisection.

Every policy keeps one colour, marker and line style in every plot (10 distinct combinations
before colours repeat with other markers); the legend sits outside the panels. Policies with
identical per-seed results at every point of a scenario are drawn once, labelled ``a = b``.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from .aggregate import METRICS, Cell, identical_everywhere, interval
from .capacity import CapacitySearch
from .report import scenario_label, short_labels

LATENCY_PANELS = ("e2e_mean_s", "e2e_p99_s", "ttft_mean_s", "ttft_p99_s", "tpot_mean_s", "normalized_latency_mean_s_per_token")
TAIL_PANELS = ("e2e_max_s", "ttft_max_s", "slo_attainment", "preemptions")
MAX_CDF_ROWS = 4
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*", "<", ">")
LINESTYLES = ("-", "--", "-.", ":")


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def styles(policies: list[str]) -> dict[str, dict]:
    """A fixed colour, marker and line style per policy, the same in every plot."""
    plt = _pyplot()
    cmap = plt.get_cmap("tab10" if len(policies) <= 10 else "tab20")
    return {
        p: {"color": cmap(i % cmap.N), "marker": MARKERS[i % len(MARKERS)], "linestyle": LINESTYLES[i % len(LINESTYLES)]}
        for i, p in enumerate(policies)
    }


def merged_policies(cells: list[Cell]) -> tuple[list[str], dict[str, str]]:
    """The policies to draw (one of each group identical at every grid point) and their labels."""
    labels = {p: p for p in dict.fromkeys(c.policy for c in cells)}
    for group in identical_everywhere(cells):
        labels[group[0]] = " = ".join(group)
        for twin in group[1:]:
            labels.pop(twin, None)
    return list(labels), labels


def _x_label(axis: str) -> str:
    return "load (fraction of the engine's capacity)" if axis == "load" else "arrival rate (requests/s)"


def _panel_label(key: str) -> str:
    m = METRICS[key]
    return f"{m.label} ({m.unit})" if m.unit else m.label


def _legend(fig, handles, labels) -> None:
    fig.legend(handles, labels, loc="outside right upper", fontsize=8, frameon=False)


def metric_vs_load(cells: list[Cell], keys: tuple[str, ...], axis: str, title: str, path: Path, style: dict) -> None:
    """One panel per metric: mean over seeds against load, a shaded 95 % interval per policy; with
    a single load, a point chart with interval bars instead."""
    plt = _pyplot()
    policies, labels = merged_policies(cells)
    if len({c.x for c in cells}) == 1:
        return _metric_at_one_load(cells, keys, axis, title, path, style, policies, labels)
    cols = 2 if len(keys) == 4 else min(3, len(keys))
    rows = math.ceil(len(keys) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols + 2.2, 3.2 * rows), squeeze=False, layout="constrained")
    for ax, key in zip(axes.flat, keys):
        m = METRICS[key]
        series = []
        for policy in policies:
            mine = sorted((c for c in cells if c.policy == policy), key=lambda c: c.x)
            mean = np.array([c.mean.get(key, math.nan) for c in mine])
            hw = np.nan_to_num(np.array([c.ci.get(key, math.nan) for c in mine]))
            lo, hi = np.array([interval(m, a, b) for a, b in zip(mean, hw)]).T if mine else (mean, mean)
            series.append((policy, np.array([c.x for c in mine]), mean * m.scale, lo * m.scale, hi * m.scale))
        positive = [v for _, _, mean, _, _ in series for v in mean if math.isfinite(v) and v > 0]
        log = bool(positive) and max(positive) / min(positive) > 20  # unstable policies would squash the others
        floor = min(positive) / 2 if log else m.low * m.scale  # bands stop at the bottom of the axis
        for policy, x, mean, lo, hi in series:
            s = style[policy]
            ax.plot(x, mean, ms=4, label=labels[policy], **s)
            ax.fill_between(x, np.maximum(lo, floor), hi, color=s["color"], alpha=0.3 / math.sqrt(len(series)), linewidth=0)
        if log:
            ax.set_yscale("log")
            ax.set_ylim(floor, 2 * max(positive))
        elif positive:
            top = 1.6 * max(positive) if math.isinf(m.high) else m.high * m.scale * 1.02
            ax.set_ylim(m.low * m.scale, top)  # wide intervals (few seeds) are cut at the top
        ax.set_title(_panel_label(key), fontsize=10)
        ax.set_xlabel(_x_label(axis), fontsize=8)
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(keys) :]:
        ax.axis("off")
    _legend(fig, *axes.flat[0].get_legend_handles_labels())
    fig.suptitle(title, fontsize=11)
    fig.savefig(path, dpi=80)
    plt.close(fig)


def _metric_at_one_load(cells, keys, axis, title, path, style, policies, labels) -> None:
    """Point chart: a row per policy, its mean and 95 % interval, one panel per metric."""
    plt = _pyplot()
    x = cells[0].x
    cols = 2 if len(keys) == 4 else min(3, len(keys))
    rows = math.ceil(len(keys) / cols)
    height = max(2.6, 0.28 * len(policies) + 1.2)
    fig, axes = plt.subplots(rows, cols, figsize=(3.6 * cols + 2.0, height * rows), squeeze=False, layout="constrained")
    by_policy = {c.policy: c for c in cells}
    y = np.arange(len(policies))[::-1]
    for ax, key in zip(axes.flat, keys):
        m = METRICS[key]
        for row, policy in zip(y, policies):
            c = by_policy[policy]
            mean = c.mean.get(key, math.nan)
            lo, hi = interval(m, mean, c.ci.get(key, math.nan)) if math.isfinite(c.ci.get(key, math.nan)) else (mean, mean)
            err = [[(mean - lo) * m.scale], [(hi - mean) * m.scale]]
            ax.errorbar(mean * m.scale, row, xerr=err, fmt=style[policy]["marker"], color=style[policy]["color"], capsize=3, ms=5)
        ax.set_yticks(y, [labels[p] for p in policies], fontsize=8)
        ax.set_title(_panel_label(key), fontsize=10)
        ax.grid(axis="x", alpha=0.3)
    for ax in list(axes.flat)[len(keys) :]:
        ax.axis("off")
    fig.suptitle(f"{title}, {'load' if axis == 'load' else 'rate'} {x:g} (mean and 95 % interval over seeds)", fontsize=11)
    fig.savefig(path, dpi=80)
    plt.close(fig)


def cdfs(
    latencies: dict[tuple, dict[str, np.ndarray]],
    xs: list[float],
    policies: list[str],
    axis: str,
    title: str,
    path: Path,
    style: dict,
    labels: dict[str, str] | None = None,
) -> None:
    """Per load (rows): CDFs of e2e and TTFT and their complementary CDFs on log-log axes (the
    tail), a line per policy; ``latencies[(x, policy)]``."""
    plt = _pyplot()
    labels = labels or {p: p for p in policies}
    if len(xs) > MAX_CDF_ROWS:
        picks = np.linspace(0, len(xs) - 1, MAX_CDF_ROWS).round().astype(int)
        xs = [xs[i] for i in sorted(set(picks))]
    fig, axes = plt.subplots(len(xs), 4, figsize=(16, 2.9 * len(xs)), squeeze=False, layout="constrained")
    where = "load" if axis == "load" else "rate"
    for row, x in zip(axes, xs):
        for j, name in enumerate(("e2e", "ttft", "e2e", "ttft")):
            ax, tail = row[j], j >= 2
            for policy in policies:
                values = np.sort(latencies.get((x, policy), {}).get(name, np.zeros(0)))
                values = values[values > 0]  # log axis
                if not values.size:
                    continue
                s = style[policy]
                fraction = np.arange(1, values.size + 1) / values.size
                if tail:  # P(latency > v): down to the last request (1 / n)
                    ax.step(values[:-1], 1.0 - fraction[:-1], where="post", color=s["color"], linestyle=s["linestyle"], label=labels[policy])
                else:
                    ax.step(values, fraction, where="post", color=s["color"], linestyle=s["linestyle"], label=labels[policy])
            what = "end-to-end latency" if name == "e2e" else "TTFT"
            ax.set_xscale("log")
            if tail:
                ax.set_yscale("log")
                ax.set_title(f"{what} tail: 1 - CDF, {where} {x:g}", fontsize=10)
                ax.set_ylabel("fraction of requests slower", fontsize=8)
            else:
                ax.set_title(f"{what} (s), {where} {x:g}", fontsize=10)
                ax.set_ylabel("fraction of requests", fontsize=8)
            ax.set_xlabel(f"{what} (s)", fontsize=8)
            ax.grid(alpha=0.3)
    _legend(fig, *axes[0][0].get_legend_handles_labels())
    fig.suptitle(title, fontsize=11)
    fig.savefig(path, dpi=80)
    plt.close(fig)


def capacity_bars(searches: list[CapacitySearch], axis: str, path: Path, style: dict) -> None:
    """Bars of capacity per policy, grouped by scenario; whiskers reach the failing end."""
    plt = _pyplot()
    scenarios = list(dict.fromkeys(s.scenario for s in searches))
    policies = list(dict.fromkeys(s.policy for s in searches))
    width = 0.8 / len(policies)
    fig, ax = plt.subplots(figsize=(max(5.0, 1.2 + 1.4 * len(scenarios) * len(policies) * width * 2) + 2.0, 3.6), layout="constrained")
    for j, policy in enumerate(policies):
        mine = {s.scenario: s for s in searches if s.policy == policy}
        x = np.arange(len(scenarios)) + (j - (len(policies) - 1) / 2) * width
        value = np.array([mine[sc].capacity if sc in mine else math.nan for sc in scenarios])
        upper = np.array([mine[sc].high - mine[sc].capacity if sc in mine and not mine[sc].note else 0.0 for sc in scenarios])
        ax.bar(x, np.nan_to_num(value), width, color=style[policy]["color"], label=policy)
        ax.errorbar(x, np.nan_to_num(value), yerr=[np.zeros_like(upper), np.nan_to_num(upper)], fmt="none", ecolor="black", capsize=2)
    ax.set_xticks(np.arange(len(scenarios)), list(short_labels(scenarios).values()), fontsize=8)
    ax.set_ylabel("capacity (load)" if axis == "load" else "capacity (requests/s)")
    ax.grid(axis="y", alpha=0.3)
    _legend(fig, *ax.get_legend_handles_labels())
    fig.savefig(path, dpi=80)
    plt.close(fig)


def write_plots(
    cells: list[Cell],
    latencies: dict[tuple, dict[str, np.ndarray]],
    searches: list[CapacitySearch],
    axis: str,
    slugs: dict[tuple, str],
    out_dir: Path,
) -> list[Path]:
    """Every plot of the evaluation; ``latencies[(scenario, x, policy)]``. Returns the files."""
    out_dir.mkdir(parents=True, exist_ok=True)
    policies = list(dict.fromkeys([c.policy for c in cells] + [s.policy for s in searches]))
    style = styles(policies)
    written = []
    for scenario, slug in slugs.items():
        mine = [c for c in cells if c.scenario == scenario]
        if not mine:
            continue
        title = scenario_label(scenario)
        for name, keys in (("latency_vs_load", LATENCY_PANELS), ("tail_vs_load", TAIL_PANELS)):
            path = out_dir / f"{slug}-{name}.png"
            metric_vs_load(mine, keys, axis, title, path, style)
            written.append(path)
        xs = sorted({c.x for c in mine})
        per_point = {(x, p): v for (sc, x, p), v in latencies.items() if sc == scenario}
        drawn, labels = merged_policies(mine)
        path = out_dir / f"{slug}-cdf.png"
        cdfs(per_point, xs, drawn, axis, title, path, style, labels)
        written.append(path)
    if searches:
        path = out_dir / "capacity.png"
        capacity_bars(searches, axis, path, style)
        written.append(path)
    return written
