"""The comparison tables: one per grid point (policies x headline metrics) and one for capacity,
printed to the console with rich and written as Markdown (``summary.md``) from the same content.

Cells read ``mean ±half-width`` (95 % t interval over seeds); the ratio columns read
``ratio [low, high]`` against the reference policy; the winner of each column is marked ★ when it
is significantly better than the runner-up and ☆ when it is best but within noise (see
``aggregate.py``).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from .aggregate import HEADLINE, METRICS, RATIO_KEYS, TABLE_KEYS, Cell, points, winner
from .capacity import CapacitySearch

SIGNIFICANT, WITHIN_NOISE = "★", "☆"


@dataclass
class TableData:
    """A table independent of how it is rendered."""

    title: str
    columns: list[str]
    rows: list[list[str]]
    marks: list[list[str]]  # per cell: "", SIGNIFICANT or WITHIN_NOISE
    caption: str = ""


def fmt(value: float, digits: int = 3) -> str:
    """``digits`` significant figures (at least), no exponent for ordinary magnitudes."""
    if value is None or not math.isfinite(value):
        return "–"
    if value == 0:
        return "0"
    decimals = max(0, digits - 1 - math.floor(math.log10(abs(value))))
    return f"{value:,.{decimals}f}"


def fmt_ci(mean: float, half_width: float, scale: float = 1.0) -> str:
    if not math.isfinite(mean):
        return "–"
    text = fmt(mean * scale)
    if math.isfinite(half_width):
        decimals = len(text.split(".")[1]) if "." in text else 0
        text += f" ±{half_width * scale:,.{decimals}f}"
    return text


def fmt_ratio(ratio: tuple[float, float, float]) -> str:
    r, lo, hi = ratio
    if not math.isfinite(r):
        return "–"
    return f"{r:.2f}" + (f" [{lo:.2f}, {hi:.2f}]" if math.isfinite(lo) else "")


def axis_label(axis: str, x: float) -> str:
    return f"load {x:g}" if axis == "load" else f"rate {x:g} req/s"


def scenario_label(scenario: tuple[str, str, str | None]) -> str:
    workload, hardware, system = scenario
    return f"{workload} · {hardware}" + (f" · {system}" if system else "")


def short_labels(scenarios: list[tuple[str, str, str | None]]) -> dict[tuple, str]:
    """Scenario names with only what tells them apart: the workload, plus the hardware where it
    varies and the system where one is set."""
    # the hardware tells settings apart only where one workload runs on several
    vary_hardware = any(len({h for w2, h, _ in scenarios if w2 == w}) > 1 for w, _, _ in scenarios)
    return {
        (w, h, s): " · ".join([w] + ([h] if vary_hardware else []) + ([s] if s else [])) for w, h, s in scenarios
    }


def scenario_slugs(scenarios: list[tuple[str, str, str | None]]) -> dict[tuple, str]:
    """:func:`short_labels` usable in file names and TensorBoard tags."""
    return {key: re.sub(r"[^A-Za-z0-9_.-]+", "-", label.replace(" · ", "_")) for key, label in short_labels(scenarios).items()}


def grid_tables(cells: list[Cell], reference: str, axis: str) -> list[TableData]:
    """One table per grid point: a row per policy, a column per headline metric."""
    tables = []
    metrics = [METRICS[key] for key in TABLE_KEYS]
    columns = ["policy"]
    for m in metrics:
        columns.append(f"{m.label} ({m.unit})" if m.unit else m.label)
        if m.key in RATIO_KEYS:
            columns.append(f"×{reference}")
    columns.append("stable")
    for (scenario, x), group in points(cells).items():
        winners = {m.key: winner(group, m) for m in metrics}
        rows, marks = [], []
        for cell in group:
            row, mark = [cell.policy], [""]
            for m in metrics:
                row.append(fmt_ci(cell.mean.get(m.key, math.nan), cell.ci.get(m.key, math.nan), m.scale))
                w = winners[m.key]
                mark.append("" if w is None or w[0] != cell.policy else SIGNIFICANT if w[1] else WITHIN_NOISE)
                if m.key in RATIO_KEYS:
                    row.append("ref" if cell.policy == reference else fmt_ratio(cell.ratio.get(m.key, (math.nan,) * 3)))
                    mark.append("")
            unstable, livelocks = cell.count("unstable"), cell.count("livelock")
            row.append(
                f"{cell.count('stable')}/{len(cell.seeds)}" + (f" {unstable}u" if unstable else "") + (f" {livelocks}L" if livelocks else "")
            )
            mark.append("")
            rows.append(row)
            marks.append(mark)
        seeds = max(len(c.seeds) for c in group)
        title = f"{scenario_label(scenario)} · {axis_label(axis, x)} · {seeds} seed{'s' * (seeds != 1)}"
        tables.append(TableData(title, columns, rows, marks, _headline(group, winners, reference)))
    return tables


def _headline(group: list[Cell], winners: dict, reference: str) -> str:
    """One sentence per ratio metric: who is best and by how much against the reference."""
    parts = []
    for key in RATIO_KEYS:
        w = winners[key]
        if w is None:
            continue
        best = next(c for c in group if c.policy == w[0])
        mark = SIGNIFICANT if w[1] else WITHIN_NOISE
        if best.policy == reference:
            parts.append(f"best {METRICS[key].label}: {best.policy} (the reference) {mark}")
        else:
            parts.append(f"best {METRICS[key].label}: {best.policy}, {fmt_ratio(best.ratio.get(key, (math.nan,) * 3))} × {reference} {mark}")
    return "; ".join(parts)


def capacity_table(searches: list[CapacitySearch], axis: str, criterion: str) -> TableData:
    """Capacity per policy (rows) and scenario (columns); the best per column marked ★."""
    scenarios = list(dict.fromkeys(s.scenario for s in searches))
    policies = list(dict.fromkeys(s.policy for s in searches))
    by_key = {(s.scenario, s.policy): s for s in searches}
    unit = "load" if axis == "load" else "req/s"
    rows, marks = [], []
    best = {}
    for scenario in scenarios:
        values = [by_key[(scenario, p)].capacity for p in policies if (scenario, p) in by_key]
        finite = [v for v in values if math.isfinite(v)]
        best[scenario] = max(finite) if finite and finite.count(max(finite)) < len(finite) else None
    for policy in policies:
        row, mark = [policy], [""]
        for scenario in scenarios:
            s = by_key.get((scenario, policy))
            if s is None:
                row.append("")
                mark.append("")
                continue
            text = fmt(s.capacity)
            if s.done and not s.note:
                text += f" (fails {fmt(s.high)})"
            elif s.note:
                text += f" ({s.note})"
            row.append(text)
            mark.append(SIGNIFICANT if best[scenario] is not None and s.capacity == best[scenario] else "")
        rows.append(row)
        marks.append(mark)
    what = "every seed stable" if criterion == "stable" else "mean SLO attainment at the target"
    return TableData(
        f"capacity: highest {unit} with {what}",
        ["policy"] + list(short_labels(scenarios).values()),
        rows,
        marks,
        "bisection; (fails x): the lowest probed value that failed",
    )


ORACLES = ("srpt",)  # baselines that read the true output lengths
LEADERBOARD_METRICS = (("e2e_mean_s", "mean latency"), ("e2e_p99_s", "p99 latency"), ("ttft_mean_s", "mean TTFT"))


def policy_label(policy: str) -> str:
    """A policy's name, with oracles marked (they see the true lengths no real scheduler has)."""
    return policy + " (oracle)" if policy.split(":")[0] in ORACLES else policy


def leaderboard_tables(cells: list[Cell], reference: str) -> list[TableData]:
    """The suite's leaderboard: per metric, a row per policy and a column per scenario (and load)
    with the ratio to the reference and its 95 % interval, and the geometric mean over the
    scenarios; rows sorted by that mean, the best per column marked where it is significant
    (its interval excludes the runner-up's ratio) or within noise."""
    groups = points(cells)
    columns = [(scenario, x) for scenario, x in groups]
    loads = {x for _, x in columns}
    labels = short_labels([scenario for scenario, _ in columns])
    headers = [labels[scenario] + (f" @{x:g}" if len(loads) > 1 else "") for scenario, x in columns]
    policies = list(dict.fromkeys(c.policy for c in cells))
    by_key = {(c.scenario, c.x, c.policy): c for c in cells}
    tables = []
    for key, what in LEADERBOARD_METRICS:
        ratios: dict[str, list[tuple[float, float, float]]] = {}
        for policy in policies:
            ratios[policy] = [
                by_key[(s, x, policy)].ratio.get(key, (math.nan,) * 3) if (s, x, policy) in by_key else (math.nan,) * 3
                for s, x in columns
            ]
        geomean = {}
        for policy, values in ratios.items():
            finite = [r for r, _, _ in values if math.isfinite(r) and r > 0]
            geomean[policy] = math.exp(sum(math.log(r) for r in finite) / len(finite)) if len(finite) == len(values) and finite else math.nan
        order = sorted(policies, key=lambda p: (p != reference, geomean[p] if math.isfinite(geomean[p]) else math.inf))
        best_marks: dict[int, tuple[str, str]] = {}
        for j in range(len(columns)):
            ranked = sorted((ratios[p][j] for p in policies if p != reference and math.isfinite(ratios[p][j][0])), key=lambda r: r[0])
            if len(ranked) >= 1 and ranked[0][0] < 1.0 - 1e-9:
                winner_policy = next(p for p in policies if ratios[p][j] == ranked[0])
                runner_up = ranked[1][0] if len(ranked) > 1 else 1.0
                best_marks[j] = (winner_policy, SIGNIFICANT if ranked[0][2] < runner_up and ranked[0][0] < runner_up else WITHIN_NOISE)
        rows, marks = [], []
        for policy in order:
            row, mark = [policy_label(policy)], [""]
            for j, (r, lo, hi) in enumerate(ratios[policy]):
                if policy == reference:
                    row.append("1")
                else:
                    row.append("–" if not math.isfinite(r) else f"{r:.2f}" + (f"±{(hi - lo) / 2:.2f}" if math.isfinite(lo) else ""))
                mark.append(best_marks[j][1] if j in best_marks and best_marks[j][0] == policy else "")
            row.append("1" if policy == reference else ("–" if not math.isfinite(geomean[policy]) else f"{geomean[policy]:.3f}"))
            mark.append("")
            rows.append(row)
            marks.append(mark)
        seeds = max(len(c.seeds) for c in cells)
        tables.append(
            TableData(
                f"leaderboard: {what} × {reference} ({seeds} seeds)",
                ["policy"] + headers + ["geomean"],
                rows,
                marks,
                f"ratio of {what} to {reference}'s on the same requests, geometric mean over seeds ±half the 95 % "
                "interval; geomean: over the scenarios; below 1 is better",
            )
        )
    return tables


def aggregate_csv(cells: list[Cell], axis: str) -> str:
    """One row per (scenario, x, policy): seeds, mean and CI half-width of every metric, and the
    ratio to the reference with its interval for the headline metrics."""
    import csv
    import io

    metrics = list(dict.fromkeys(k for c in cells for k in c.mean))
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    header = ["workload", "hardware", "system", axis, "policy", "seeds"]
    header += [f"{k}_{part}" for k in metrics for part in ("mean", "ci95")]
    header += [f"{m.key}_ratio{part}" for m in HEADLINE for part in ("", "_low", "_high")]
    writer.writerow(header)
    for c in cells:
        row = [*c.scenario, c.x, c.policy, len(c.seeds)]
        row += [v for k in metrics for v in (c.mean.get(k, math.nan), c.ci.get(k, math.nan))]
        row += list(v for m in HEADLINE for v in c.ratio.get(m.key, (math.nan,) * 3))
        writer.writerow(["" if isinstance(v, float) and not math.isfinite(v) else "" if v is None else v for v in row])
    return buffer.getvalue()


LEGEND = (
    "±: 95 % Student-t interval over seeds. ×{ref}: geometric mean of per-seed ratios to {ref} "
    "(paired by common random numbers) [95 % interval]; below 1 is better for latencies. "
    f"{SIGNIFICANT}: best in its column and significantly better than the runner-up (paired t, 95 %); "
    f"{WITHIN_NOISE}: best but within noise of the runner-up. stable: seeds with a stable backlog "
    "(u: unstable; L: stopped as a livelock, no request finishing; the rest inconclusive)."
)


def print_console(tables: list[TableData], header: list[str], reference: str) -> None:
    from rich import box
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    console = Console(width=None if Console().is_terminal else 200)
    for line in header:
        console.print(line, highlight=False)
    for data in tables:
        table = Table(title=data.title, caption=data.caption, box=box.SIMPLE_HEAD, title_style="bold", title_justify="left", caption_justify="left")
        for i, column in enumerate(data.columns):
            table.add_column(column, justify="left" if i == 0 else "right")
        for row, marks in zip(data.rows, data.marks):
            cells = [Text(f"{text} {mark}", style="bold green") if mark else Text(text) for text, mark in zip(row, marks)]
            table.add_row(*cells)
        console.print(table)
    console.print(LEGEND.format(ref=reference), highlight=False)


def markdown(tables: list[TableData], header: list[str], reference: str) -> str:
    """The same tables as GitHub Markdown (winners in bold with their mark)."""
    lines = [f"# {header[0]}", ""] + [f"{line}  " for line in header[1:]] + [""]
    for data in tables:
        lines += [f"### {data.title}", "", "| " + " | ".join(data.columns) + " |"]
        lines.append("|" + "|".join(":--" if i == 0 else "--:" for i in range(len(data.columns))) + "|")
        for row, marks in zip(data.rows, data.marks):
            lines.append("| " + " | ".join(f"**{t} {m}**" if m else t for t, m in zip(row, marks)) + " |")
        lines += ["", data.caption, ""] if data.caption else [""]
    lines.append(LEGEND.format(ref=reference))
    return "\n".join(lines) + "\n"
