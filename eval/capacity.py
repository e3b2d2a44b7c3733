"""Capacity search: for each policy, the highest load (or rate) it sustains, by bisection.

A probe runs every seed of the evaluation at one load with ``capacity.num_requests`` requests and
*passes* when

* criterion ``stable``: every seed's stability verdict (``llmsched_env.sim.metrics``) is
  "stable"; "inconclusive" counts as not stable, so the capacity found is conservative;
* criterion ``slo``: the mean SLO attainment over seeds is at least ``capacity.slo_attainment``.

The search first probes both ends of the bracket: if the low end fails the capacity is below the
range (reported as NaN), if the high end passes it is at least the high end (reported as the high
end). Otherwise it halves the bracket ``[passing, failing)`` until it is narrower than
``tolerance x high`` and reports its passing end. Bisection assumes passing is monotone in load.
All searches advance together, one round of probes at a time, so every round runs in parallel.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any, Callable

from llmsched_env.sim import SimConfig, sustainable_rate

from .config import CapacityConfig, EvalConfig
from .policies import PolicyEntry
from .runner import Run, RunResult, run_all, with_x

DEFAULT_LOAD_RANGE = (0.1, 1.5)  # also the default rate range, as multiples of the sustainable rate


@dataclass
class Probe:
    """One tested load (or rate) of a search."""

    x: float
    passed: bool
    verdicts: list[str]  # per seed
    slo_attainment: float  # mean over seeds


@dataclass(eq=False)  # compared and hashed by identity
class CapacitySearch:
    """The search of one policy on one scenario; ``capacity`` is set when it is done."""

    scenario: tuple[str, str, str | None]
    policy: str
    low: float  # passing end (or the range's low end before it is probed)
    high: float  # failing end (or the range's high end before it is probed)
    probes: list[Probe] = field(default_factory=list)
    done: bool = False
    capacity: float = math.nan
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["workload"], data["hardware"], data["system"] = data.pop("scenario")
        return data


def probe_passes(summaries: list[dict[str, Any]], capacity: CapacityConfig) -> bool:
    """Whether a probe's runs (one summary per seed) pass the criterion."""
    if capacity.criterion == "stable":
        return all(s["stability"] == "stable" for s in summaries)
    attainment = [s["slo_attainment"] for s in summaries]
    return sum(attainment) / len(attainment) >= capacity.slo_attainment


def next_probes(search: CapacitySearch, tolerance: float) -> list[float]:
    """The loads to probe next (none when the search is done); updates ``done`` and ``capacity``."""
    tested = {p.x: p.passed for p in search.probes}
    if search.low not in tested or search.high not in tested:
        return [x for x in (search.low, search.high) if x not in tested]
    if not tested[search.low]:
        search.done, search.note = True, "fails at the low end of the range"
    elif tested[search.high]:
        search.done, search.capacity, search.note = True, search.high, "passes at the high end of the range"
    elif search.high - search.low <= tolerance * search.high:
        search.done, search.capacity = True, search.low
    return [] if search.done else [(search.low + search.high) / 2.0]


def record_probe(search: CapacitySearch, probe: Probe) -> None:
    """Add a probe's outcome and narrow the bracket (ends stay until both were probed)."""
    search.probes.append(probe)
    ends_known = {p.x for p in search.probes} >= {search.low, search.high}
    if ends_known and search.low < probe.x < search.high:
        if probe.passed:
            search.low = probe.x
        else:
            search.high = probe.x


def search_capacity(
    config: EvalConfig,
    policies: list[PolicyEntry],
    jobs: int,
    on_round: Callable[[list[CapacitySearch]], None] = lambda searches: None,
    backend: str = "local",
) -> tuple[list[CapacitySearch], bool]:
    """Run every policy's search on every scenario; returns (searches, completed).

    ``on_round`` is called after each round (to write partial results); ``backend`` runs the
    probes as :func:`eval.runner.run_all` does.
    """
    assert config.capacity is not None
    cap = config.capacity
    scenarios = []
    for setting in config.settings():
        probe = setting.sim.replace(workload=dataclasses.replace(setting.sim.workload, num_requests=cap.num_requests))
        scenarios.append(((setting.label, setting.hardware, setting.system), probe))
    searches: list[tuple[CapacitySearch, SimConfig, PolicyEntry]] = []
    for scenario, base in scenarios:
        low, high = cap.low, cap.high
        if config.axis == "rate" and (low is None or high is None):
            rate = sustainable_rate(base.engine, base.workload)
            low = low if low is not None else DEFAULT_LOAD_RANGE[0] * rate
            high = high if high is not None else DEFAULT_LOAD_RANGE[1] * rate
        low = low if low is not None else DEFAULT_LOAD_RANGE[0]
        high = high if high is not None else DEFAULT_LOAD_RANGE[1]
        for policy in policies:
            searches.append((CapacitySearch(scenario, policy.label, low, high), base, policy))

    round_number = 0
    while True:
        runs: list[Run] = []
        owner: list[tuple[CapacitySearch, float]] = []  # per run: its search and probed load
        for search, base, policy in searches:
            for x in next_probes(search, cap.tolerance):
                for seed in config.seeds:
                    sim = with_x(base, config.axis, x, seed)
                    runs.append(Run(len(runs), policy, *search.scenario, config.axis, x, seed, sim))
                    owner.append((search, x))
        if not runs:
            return [s for s, _, _ in searches], True
        round_number += 1
        summaries: dict[tuple[CapacitySearch, float], list[dict[str, Any]]] = {}

        def collect(run: Run, result: RunResult) -> None:
            summaries.setdefault(owner[run.index], []).append(result.record)

        if not run_all(runs, jobs, collect, progress=f"capacity round {round_number}", backend=backend):
            for search, _, _ in searches:
                if not search.done:
                    search.note = "interrupted"
            return [s for s, _, _ in searches], False
        for search, x in dict.fromkeys(owner):  # each probe once, in order
            runs_of_probe = sorted(summaries[(search, x)], key=lambda rec: rec["seed"])
            attainment = sum(r["slo_attainment"] for r in runs_of_probe) / len(runs_of_probe)
            verdicts = [r["stability"] for r in runs_of_probe]
            record_probe(search, Probe(x, probe_passes(runs_of_probe, cap), verdicts, attainment))
        on_round([s for s, _, _ in searches])
