"""What every validation case shares: its result record, the verdict words, confidence intervals,
a parallel map, the token backlog of an engine, growth slopes and plotting.

A case is a function ``run(quick, out, workers) -> CaseResult`` (see ``benchmarks/validation/__init__.py``).
Confidence intervals reuse ``ci`` of ``benchmarks/bench_baselines.py`` (Student t over seeds), so
the suite and the baselines benchmark state uncertainty the same way.
"""

from __future__ import annotations

import math
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import numpy as np

from benchmarks.bench_baselines import ci
from llmsched_env.sim import Engine, Policy, SimConfig, build_engine

VERDICTS = ("pass", "partial", "fail", "pending")
NO_MEMORY_LIMIT = 10**9  # KV blocks: more than any run here can fill


@dataclass
class CaseResult:
    """One case of the report: what was published, what we measured, and the verdict.

    ``published`` and ``ours`` are one-line figures for the summary table; ``details`` is the
    case's markdown section body (setting, tables, reasons); ``plots`` are PNG names in the
    output folder.
    """

    key: str
    title: str
    source: str
    setting: str
    published: str
    ours: str
    verdict: str
    rule: str
    details: str = ""
    plots: list[str] = field(default_factory=list)
    runtime_s: float = 0.0

    def __post_init__(self) -> None:
        if self.verdict not in VERDICTS:
            raise ValueError(f"verdict={self.verdict!r} is invalid: expected one of {', '.join(VERDICTS)}")


def mean_ci(values: Sequence[float]) -> tuple[float, float]:
    """Mean over seeds and the half-width of its 95 % confidence interval (NaN for one seed)."""
    return ci(list(values))


def fmt_ci(values: Sequence[float], digits: int = 3) -> str:
    mean, half = mean_ci(values)
    return f"{mean:.{digits}g}" + ("" if math.isnan(half) else f" ± {half:.2g}")


def pmap(fn: Callable[[Any], Any], jobs: Iterable[Any], workers: int) -> list[Any]:
    """``[fn(job) for job in jobs]``, over ``workers`` processes when more than one."""
    jobs = list(jobs)
    if workers <= 1 or len(jobs) <= 1:
        return [fn(job) for job in jobs]
    with ProcessPoolExecutor(max_workers=min(workers, len(jobs))) as pool:
        return list(pool.map(fn, jobs, chunksize=1))


def token_backlog(engine: Engine) -> int:
    """Tokens of work still owed to the requests in the system.

    A request owes the rest of its prefill (``prefill_target - kv_tokens``; the prompt plus any
    tokens to recompute) and one decode iteration per output token not yet produced, except the
    token its prefill will emit: ``prompt + output - 1`` for a new request, Li–Dai–Peng's
    ``m_p + m_d`` with ``m_d`` decode iterations.
    """
    engine.sync()
    owed = 0
    for r in engine.live:
        prefill_left = max(r.prefill_target - r.kv_tokens, 0)
        owed += prefill_left + r.output_len - r.generated - (1 if prefill_left > 0 else 0)
    return owed


def sample_backlog(config: SimConfig, policy: Policy, seed: int, times: np.ndarray) -> np.ndarray:
    """Run ``config`` and return rows ``(time, tokens owed, requests in system, requests arrived)``
    taken at the first iteration boundary at or after each of ``times`` (increasing)."""
    engine, _, _ = build_engine(config, policy, seed=seed)
    rows = []
    for t in times:
        while engine.now < t and engine.advance(horizon=float(t)):
            pass
        rows.append((engine.now, token_backlog(engine), len(engine.live), engine.arrived))
    return np.asarray(rows, dtype=np.float64)


def slope(times: np.ndarray, values: np.ndarray, start: float) -> float:
    """Least-squares slope of ``values`` over ``times >= start`` (units of values per second)."""
    keep = times >= start
    return float(np.polyfit(times[keep], values[keep], 1)[0])


# ------------------------------------------------------------------------------------------------
# Plots


def figure(title: str, xlabel: str, ylabel: str, size: tuple[float, float] = (6.4, 4.0)) -> tuple[Any, Any]:
    """A new matplotlib figure and axes (Agg backend: no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=size)
    ax.set_title(title, fontsize=10)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    return fig, ax


def save(fig: Any, out: Path, name: str) -> str:
    """Write ``fig`` as ``out/name`` and return the name."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    fig.savefig(out / name, dpi=110)
    plt.close(fig)
    return name


def table(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """A markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)
