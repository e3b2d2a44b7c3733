"""The comparison tables: one per grid point (policies x headline metrics), one for capacity and,
for a suite of scenarios, the leaderboards; printed to the console with rich in a compact form
that fits 100 columns and written in full as Markdown (``summary.md``).

Cells read ``mean ±half-width`` (95 % t interval over seeds), or ``mean [low, high]`` where the
interval is clipped to the metric's range (a fraction in [0, 1], counts and times at or above 0);
the ratio columns read ``ratio [low, high]`` against the reference policy. Rows: the reference
first, then by mean latency (by the geometric mean over scenarios in a leaderboard). The winner of
each column is marked ★ when it is significantly better than the runner-up and ☆ when it is best
but within noise of it; nothing is marked where every value is equal or within noise (see
``aggregate.py``). Policies with identical per-seed results at a grid point are named under its
table. Stability counts the seeds' verdicts: ``stable 5/5``, ``stable 3 · inconclusive 2``; an
inconclusive run (too short to tell) is not an unstable one.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from baselines import ORACLES  # baselines that read the true output lengths

from .aggregate import (
    COMPACT_KEYS,
    HEADLINE,
    METRICS,
    RATIO_KEYS,
    TABLE_KEYS,
    Cell,
    Metric,
    identical_everywhere,
    identical_groups,
    interval,
    points,
    winner,
)
from .capacity import CapacitySearch

SIGNIFICANT, WITHIN_NOISE = "★", "☆"
CONSOLE_WIDTH = 100


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


def fmt_ci(metric: Metric, mean: float, half_width: float) -> str:
    """``mean ±half-width``, or ``mean [low, high]`` where the interval leaves the metric's range."""
    if not math.isfinite(mean):
        return "–"
    text = fmt(mean * metric.scale)
    if not math.isfinite(half_width):
        return text
    decimals = len(text.split(".")[1]) if "." in text else 0
    low, high = interval(metric, mean, half_width)
    if (low, high) == (mean - half_width, mean + half_width):
        return text + f" ±{half_width * metric.scale:,.{decimals}f}"
    return text + f" [{low * metric.scale:,.{decimals}f}, {high * metric.scale:,.{decimals}f}]"


def fmt_ratio(ratio: tuple[float, float, float], bracket: bool = True) -> str:
    r, lo, hi = ratio
    if not math.isfinite(r):
        return "–"
    return f"{r:.2f}" + (f" [{lo:.2f}, {hi:.2f}]" if bracket and math.isfinite(lo) else "")


STABILITY_SHORT = {"stable": "stable", "inconclusive": "incon.", "unstable": "unst.", "livelock": "livel."}


def stability_text(cell: Cell, short: bool = False) -> str:
    """The seeds' stability verdicts: ``stable 5/5``, ``inconclusive 2/2``, ``stable 3 · unstable 2``
    (``short``: ``stable 3·unst. 2``)."""
    verdicts = ("stable", "inconclusive", "unstable", "livelock")
    present = [(verdict, cell.count(verdict)) for verdict in verdicts if cell.count(verdict)]
    if short and len(present) > 1:
        present = [(STABILITY_SHORT[verdict], n) for verdict, n in present]
    if len(present) == 1:
        return f"{present[0][0]} {present[0][1]}/{len(cell.seeds)}"
    return ("·" if short else " · ").join(f"{verdict} {n}" for verdict, n in present)


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


def _ordered(group: list[Cell], reference: str) -> list[Cell]:
    """The reference first, then by mean latency."""
    def key(c: Cell) -> tuple[bool, float]:
        value = c.mean.get("e2e_mean_s", math.nan)
        return c.policy != reference, value if math.isfinite(value) else math.inf

    return sorted(group, key=key)


def identical_note(groups: list[list[str]]) -> str:
    return "identical results on every seed (drawn as one line in the plots): " + "; ".join(" = ".join(g) for g in groups)


def grid_tables(cells: list[Cell], reference: str, axis: str, compact: bool = False) -> list[TableData]:
    """One table per grid point: a row per policy, a column per headline metric (``compact``: the
    latency columns only, means without their intervals, to fit a 100-column console)."""
    tables = []
    metrics = [METRICS[key] for key in (COMPACT_KEYS if compact else TABLE_KEYS)]
    columns = ["policy"]
    for m in metrics:
        columns.append(m.label.replace(" ", "\n") if compact else f"{m.label} ({m.unit})" if m.unit else m.label)
        if m.key in RATIO_KEYS:
            columns.append(f"×{reference}")
    columns.append("stable")
    for (scenario, x), group in points(cells).items():
        winners = {m.key: winner(group, m) for m in metrics}
        rows, marks = [], []
        for cell in _ordered(group, reference):
            row, mark = [policy_label(cell.policy)], [""]
            for m in metrics:
                mean = cell.mean.get(m.key, math.nan)
                row.append(fmt(mean * m.scale) if compact else fmt_ci(m, mean, cell.ci.get(m.key, math.nan)))
                w = winners[m.key]
                mark.append("" if w is None or w[0] != cell.policy else SIGNIFICANT if w[1] else WITHIN_NOISE)
                if m.key in RATIO_KEYS:
                    ratio = cell.ratio.get(m.key, (math.nan,) * 3)
                    row.append("ref" if cell.policy == reference else fmt_ratio(ratio, bracket=not compact))
                    mark.append("")
            row.append(stability_text(cell, short=compact))
            mark.append("")
            rows.append(row)
            marks.append(mark)
        seeds = max(len(c.seeds) for c in group)
        unit = "" if not compact else " (s)"
        title = f"{scenario_label(scenario)} · {axis_label(axis, x)} · {seeds} seed{'s' * (seeds != 1)}{unit}"
        caption = [_headline(group, winners, reference)]
        if groups := identical_groups(group):
            caption.append(identical_note(groups))
        tables.append(TableData(title, columns, rows, marks, "\n".join(c for c in caption if c)))
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


def capacity_table(searches: list[CapacitySearch], axis: str, criterion: str, num_requests: int = 0) -> TableData:
    """Capacity per policy (rows) and scenario (columns); the best per column marked ★."""
    from .capacity import short_run_warnings

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
        row, mark = [policy_label(policy)], [""]
        for scenario in scenarios:
            s = by_key.get((scenario, policy))
            if s is None:
                row.append("")
                mark.append("")
                continue
            text = fmt(s.capacity)
            if s.done and not s.note:
                if s.outcome_at(s.high) == "inconclusive":
                    fails = s.lowest_failure()
                    text += f" (inconclusive {fmt(s.high)}" + (f"; fails {fmt(fails)})" if math.isfinite(fails) else ")")
                else:
                    text += f" (fails {fmt(s.high)})"
            elif s.note:
                text += f" ({s.note})"
            row.append(text)
            mark.append(SIGNIFICANT if best[scenario] is not None and s.capacity == best[scenario] else "")
        rows.append(row)
        marks.append(mark)
    what = "every seed stable" if criterion == "stable" else "mean SLO attainment at the target"
    caption = "bisection; (fails x): the lowest probed value that failed (a seed unstable or the SLO missed)"
    if criterion == "stable":
        caption += "; (inconclusive x): the lowest probed value that did not pass had no unstable seed, only runs too short to decide"
    warnings = short_run_warnings(searches, num_requests)
    return TableData(
        f"capacity: highest {unit} with {what}",
        ["policy"] + list(short_labels(scenarios).values()),
        rows,
        marks,
        "\n".join([caption] + warnings),
    )


LEADERBOARD_METRICS = (("e2e_mean_s", "mean latency"), ("e2e_p99_s", "p99 latency"), ("ttft_mean_s", "mean TTFT"))


def policy_label(policy: str) -> str:
    """A policy's name, with oracles marked (they see the true lengths no real scheduler has)."""
    return policy + " (oracle)" if policy.split(":")[0] in ORACLES else policy


def wrap_header(text: str, width: int = 6) -> str:
    """A column header broken after its dashes into lines of at most ``width`` characters (where
    the parts allow), so a scenario name takes a narrow column on the console."""
    lines: list[str] = []
    for part in re.findall(r"[^-]+-?", text) or [text]:
        if lines and len(lines[-1]) + len(part) <= width:
            lines[-1] += part
        else:
            lines.append(part)
    return "\n".join(lines)


def leaderboard_tables(cells: list[Cell], reference: str, compact: bool = False) -> list[TableData]:
    """The suite's leaderboard: per metric, a row per policy and a column per scenario (and load)
    with the ratio to the reference and its 95 % interval (``compact``: the ratio alone, headers
    wrapped), and the geometric mean over the scenarios; rows: the reference, then by that mean.
    The best per column is marked where it is significantly better than the reference (its
    interval lies below 1): ★ when its interval also lies below the runner-up's ratio, ☆ otherwise."""
    groups = points(cells)
    columns = [(scenario, x) for scenario, x in groups]
    loads = {x for _, x in columns}
    labels = short_labels([scenario for scenario, _ in columns])
    headers = [labels[scenario] + (f" @{x:g}" if len(loads) > 1 else "") for scenario, x in columns]
    if compact:
        headers = [wrap_header(h) for h in headers]
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
            # a mark only where the best is significantly better than the reference (not all equal within noise)
            if ranked and ranked[0][0] < 1.0 - 1e-9 and math.isfinite(ranked[0][2]) and ranked[0][2] < 1.0:
                winner_policy = next(p for p in policies if ratios[p][j] == ranked[0])
                runner_up = ranked[1][0] if len(ranked) > 1 else 1.0
                best_marks[j] = (winner_policy, SIGNIFICANT if ranked[0][2] < runner_up and ranked[0][0] < runner_up else WITHIN_NOISE)
        rows, marks = [], []
        for policy in order:
            row, mark = [policy_label(policy)], [""]
            for j, (r, lo, hi) in enumerate(ratios[policy]):
                if policy == reference:
                    row.append("1")
                elif not math.isfinite(r):
                    row.append("–")
                else:
                    row.append(f"{r:.2f}" + (f"±{(hi - lo) / 2:.2f}" if math.isfinite(lo) and not compact else ""))
                mark.append(best_marks[j][1] if j in best_marks and best_marks[j][0] == policy else "")
            row.append("1" if policy == reference else ("–" if not math.isfinite(geomean[policy]) else f"{geomean[policy]:.3f}"))
            mark.append("")
            rows.append(row)
            marks.append(mark)
        seeds = max(len(c.seeds) for c in cells)
        caption = (
            f"ratio of {what} to {reference}'s on the same requests, geometric mean over seeds"
            + ("" if compact else " ±half the 95 % interval")
            + "; geomean: over the scenarios; below 1 is better; rows: the reference, then by geomean"
        )
        if same := identical_everywhere(cells):
            caption += "\n" + identical_note(same).replace("results on every seed", "results on every seed and scenario")
        tables.append(TableData(f"leaderboard: {what} × {reference} ({seeds} seeds)", ["policy"] + headers + ["geomean"], rows, marks, caption))
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
    "±: 95 % Student-t interval over seeds ([low, high] where it is clipped to the metric's range: fractions "
    "in [0, 1], counts and times >= 0). ×{ref}: geometric mean of per-seed ratios to {ref} "
    "(paired by common random numbers) [95 % interval]; below 1 is better for latencies. "
    f"{SIGNIFICANT}: best in its column and significantly better than the runner-up (paired t, 95 %); "
    f"{WITHIN_NOISE}: best but within noise of the runner-up; no mark where every value is equal within noise. "
    "max: the worst-served request (mean over seeds). stable: the seeds' stability verdicts (inconclusive: "
    "too short to tell, not unstable; livelock: stopped with no request finishing)."
)


BOARD_LEGEND = (
    "Each cell: the geometric mean over seeds of the ratio to {ref} on the same requests (below 1 is better). "
    "★: best and significantly better than the runner-up; ☆: best, better than {ref} but within noise of the runner-up."
)


def print_console(tables: list[TableData], header: list[str], reference: str, footer: str = "") -> None:
    """The tables on the console: a terminal's width, 100 columns when the output is not a terminal."""
    from rich import box
    from rich.console import Console
    from rich.measure import Measurement
    from rich.table import Table
    from rich.text import Text

    console = Console(width=None if Console().is_terminal else CONSOLE_WIDTH)

    def build(data: TableData, columns: list[int], title: str | None) -> Table:
        table = Table(
            title=Text(title) if title else None, box=box.SIMPLE_HEAD, title_style="bold", title_justify="left", pad_edge=False,
            collapse_padding=True,
        )  # fmt: skip
        for i in columns:
            table.add_column(Text(data.columns[i]), justify="left" if i == 0 else "right", no_wrap=True)
        for row, marks in zip(data.rows, data.marks):
            table.add_row(*(Text(f"{row[i]} {marks[i]}", style="bold green") if marks[i] else Text(row[i]) for i in columns))
        return table

    def width(table: Table) -> int:
        return Measurement.get(console, console.options.update_width(10_000), table).maximum

    for line in header:
        console.print(line, highlight=False, markup=False)
    for data in tables:
        # a table wider than the console is split into parts, each with the first column
        parts: list[list[int]] = [[0]]
        for i in range(1, len(data.columns)):
            if len(parts[-1]) > 1 and width(build(data, parts[-1] + [i], None)) > console.width:
                parts.append([0])
            parts[-1].append(i)
        for n, columns in enumerate(parts):
            title = data.title + (f" ({n + 1}/{len(parts)})" if len(parts) > 1 else "")
            console.print(build(data, columns, title))
        if data.caption:  # the console's width, not the table's
            console.print(data.caption, highlight=False, markup=False)
    console.print(footer or LEGEND.format(ref=reference), highlight=False, markup=False)


def markdown(tables: list[TableData], header: list[str], reference: str) -> str:
    """The same tables as GitHub Markdown (winners in bold with their mark)."""
    lines = [f"# {header[0]}", ""] + [f"{line}  " for line in header[1:]] + [""]
    for data in tables:
        lines += [f"### {data.title}", "", "| " + " | ".join(data.columns) + " |"]
        lines.append("|" + "|".join(":--" if i == 0 else "--:" for i in range(len(data.columns))) + "|")
        for row, marks in zip(data.rows, data.marks):
            lines.append("| " + " | ".join(f"**{t} {m}**" if m else t for t, m in zip(row, marks)) + " |")
        lines += ["", data.caption.replace("\n", "  \n"), ""] if data.caption else [""]
    lines.append(LEGEND.format(ref=reference))
    return "\n".join(lines) + "\n"
