"""PNG plots of an evaluation (matplotlib, Agg backend), one set per scenario:

* ``<scenario>-latency_vs_load.png``: mean and p99 end-to-end latency, mean and p99 TTFT, mean
  TPOT and mean normalized latency against load (or rate), one line per policy, shaded 95 %
  intervals over seeds;
* ``<scenario>-throughput_vs_load.png``: output tokens/s, requests/s and SLO attainment;
* ``<scenario>-cdf.png``: CDFs of end-to-end latency and TTFT at each load (up to four loads: the
  lowest, highest and two between), requests of all seeds pooled;
* ``capacity.png``: the capacity of each policy per scenario, with the bracket of the bisection.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from .aggregate import METRICS, Cell
from .capacity import CapacitySearch
from .report import scenario_label, short_labels

LATENCY_PANELS = ("e2e_mean_s", "e2e_p99_s", "ttft_mean_s", "ttft_p99_s", "tpot_mean_s", "normalized_latency_mean_s_per_token")
THROUGHPUT_PANELS = ("output_tokens_per_s", "requests_per_s", "slo_attainment")
MAX_CDF_ROWS = 4


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def colors(policies: list[str]) -> dict[str, tuple]:
    """A fixed color per policy, the same in every plot."""
    plt = _pyplot()
    cmap = plt.get_cmap("tab10" if len(policies) <= 10 else "tab20")
    return {p: cmap(i % cmap.N) for i, p in enumerate(policies)}


def _x_label(axis: str) -> str:
    return "load (fraction of the engine's capacity)" if axis == "load" else "arrival rate (requests/s)"


def _panel_label(key: str) -> str:
    m = METRICS[key]
    return f"{m.label} ({m.unit})" if m.unit else m.label


def metric_vs_load(cells: list[Cell], keys: tuple[str, ...], axis: str, title: str, path: Path, palette: dict) -> None:
    """One panel per metric: mean over seeds against load, a shaded 95 % interval per policy."""
    plt = _pyplot()
    cols = min(3, len(keys))
    rows = math.ceil(len(keys) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.2 * rows), squeeze=False)
    policies = list(dict.fromkeys(c.policy for c in cells))
    for ax, key in zip(axes.flat, keys):
        scale = METRICS[key].scale
        series = []
        for policy in policies:
            mine = sorted((c for c in cells if c.policy == policy), key=lambda c: c.x)
            mean = np.array([c.mean.get(key, math.nan) for c in mine]) * scale
            hw = np.nan_to_num(np.array([c.ci.get(key, math.nan) for c in mine]) * scale)
            series.append((policy, np.array([c.x for c in mine]), mean, hw))
        positive = [v for _, _, mean, _ in series for v in mean if math.isfinite(v) and v > 0]
        log = bool(positive) and max(positive) / min(positive) > 20  # unstable policies would squash the others
        floor = min(positive) / 2 if log else 0.0  # every metric here is >= 0: bands stop at the floor
        for policy, x, mean, hw in series:
            ax.plot(x, mean, marker="o", ms=3, color=palette[policy], label=policy)
            ax.fill_between(x, np.maximum(mean - hw, floor), mean + hw, color=palette[policy], alpha=0.15, linewidth=0)
        if log:
            ax.set_yscale("log")
            ax.set_ylim(floor, 2 * max(positive))
        elif positive:
            ax.set_ylim(0, 1.6 * max(positive))  # wide intervals (few seeds) are cut at the top
        ax.set_title(_panel_label(key), fontsize=10)
        ax.set_xlabel(_x_label(axis), fontsize=8)
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(keys) :]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=8)
    fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def cdfs(
    latencies: dict[tuple, dict[str, np.ndarray]],
    xs: list[float],
    policies: list[str],
    axis: str,
    title: str,
    path: Path,
    palette: dict,
) -> None:
    """CDFs of e2e and TTFT per load (rows) and policy (lines); ``latencies[(x, policy)]``."""
    plt = _pyplot()
    if len(xs) > MAX_CDF_ROWS:
        picks = np.linspace(0, len(xs) - 1, MAX_CDF_ROWS).round().astype(int)
        xs = [xs[i] for i in sorted(set(picks))]
    fig, axes = plt.subplots(len(xs), 2, figsize=(9, 2.8 * len(xs)), squeeze=False)
    for row, x in zip(axes, xs):
        for ax, name in zip(row, ("e2e", "ttft")):
            for policy in policies:
                values = np.sort(latencies.get((x, policy), {}).get(name, np.zeros(0)))
                values = values[values > 0]  # log axis
                if values.size:
                    ax.step(values, np.arange(1, values.size + 1) / values.size, where="post", color=palette[policy], label=policy)
            ax.set_xscale("log")
            ax.set_title(f"{'end-to-end latency' if name == 'e2e' else 'TTFT'} (s), {'load' if axis == 'load' else 'rate'} {x:g}", fontsize=10)
            ax.set_ylabel("fraction of requests", fontsize=8)
            ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=8)
    fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def capacity_bars(searches: list[CapacitySearch], axis: str, path: Path, palette: dict) -> None:
    """Bars of capacity per policy, grouped by scenario; whiskers reach the failing end."""
    plt = _pyplot()
    scenarios = list(dict.fromkeys(s.scenario for s in searches))
    policies = list(dict.fromkeys(s.policy for s in searches))
    width = 0.8 / len(policies)
    fig, ax = plt.subplots(figsize=(max(5.0, 1.2 + 1.4 * len(scenarios) * len(policies) * width * 2), 3.6))
    for j, policy in enumerate(policies):
        mine = {s.scenario: s for s in searches if s.policy == policy}
        x = np.arange(len(scenarios)) + (j - (len(policies) - 1) / 2) * width
        value = np.array([mine[sc].capacity if sc in mine else math.nan for sc in scenarios])
        upper = np.array([mine[sc].high - mine[sc].capacity if sc in mine and not mine[sc].note else 0.0 for sc in scenarios])
        ax.bar(x, np.nan_to_num(value), width, color=palette[policy], label=policy)
        ax.errorbar(x, np.nan_to_num(value), yerr=[np.zeros_like(upper), np.nan_to_num(upper)], fmt="none", ecolor="black", capsize=2)
    ax.set_xticks(np.arange(len(scenarios)), list(short_labels(scenarios).values()), fontsize=8)
    ax.set_ylabel("capacity (load)" if axis == "load" else "capacity (requests/s)")
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8, ncol=min(len(policies), 3))
    fig.tight_layout()
    fig.savefig(path, dpi=90)
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
    palette = colors(policies)
    written = []
    for scenario, slug in slugs.items():
        mine = [c for c in cells if c.scenario == scenario]
        if not mine:
            continue
        title = scenario_label(scenario)
        for name, keys in (("latency_vs_load", LATENCY_PANELS), ("throughput_vs_load", THROUGHPUT_PANELS)):
            path = out_dir / f"{slug}-{name}.png"
            metric_vs_load(mine, keys, axis, title, path, palette)
            written.append(path)
        xs = sorted({c.x for c in mine})
        per_point = {(x, p): v for (sc, x, p), v in latencies.items() if sc == scenario}
        path = out_dir / f"{slug}-cdf.png"
        cdfs(per_point, xs, [p for p in policies if any(c.policy == p for c in mine)], axis, title, path, palette)
        written.append(path)
    if searches:
        path = out_dir / "capacity.png"
        capacity_bars(searches, axis, path, palette)
        written.append(path)
    return written
