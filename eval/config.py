"""The evaluation config: which policies to compare, on which grid, and what to write.

One typed, validated dataclass (:class:`EvalConfig`) fed alike by the built-in default, YAML files
(``configs/eval/*.yaml``) and command-line flags (``eval/cli.py``). Every bad value raises
:class:`~llmsched_env.sim.validation.ConfigError` naming the field, the value and what is allowed.

The grid is policies x workloads x (loads or rates) x hardware x systems x seeds. Every policy is
run with the same simulation config and seed in each cell, so all policies serve exactly the same
requests with the same predictions (common random numbers, see ``llmsched_env.sim.api``).

YAML layout (every key optional; unknown keys are errors)::

    name: default                 # names the output folder eval_out/<name>
    policies: [all-baselines, bundled-agents, "trail:C=0.5", models/my_agent.zip]
    reference: fcfs               # ratios are taken against this policy
    workloads: [sharegpt, traces/AzureLLMInferenceTrace_conv.csv,
                {name: short, lengths: lognormal, prompt_mean: 20, output_mean: 270}]
    loads: [0.5, 0.8, 0.95]       # or rates: [1.0, 1.5] (requests/s); not both
    seeds: 3                      # 3 means seeds 0, 1, 2; or a list [0, 7, 9]
    hardware: [llama2-7b/a100]    # default: sim.engine.hardware
    systems: [vllm, sarathi]      # engine presets of baselines.systems; default: sim.engine as is
    sim: {workload: {num_requests: 2000}, predictor: {kind: lognormal, sigma: 0.5}, slo_ttft_s: 2.0}
    capacity: {criterion: stable} # or null (no capacity search)
    jobs: 0                       # worker processes; 0 = all cores
    backend: local                # local (worker processes) or ray (Ray tasks, eval/ray_runner.py)
    ray_address: null             # ray: the cluster to join (auto: the one `ray start` runs here); null: a local Ray
    out: null                     # output folder; null = eval_out/<name>
"""

from __future__ import annotations

import dataclasses
import functools
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from llmsched_env.sim import SimConfig, WorkloadConfig, available_hardware, available_length_presets
from llmsched_env.sim.config import dataclass_from_dict, from_dict
from llmsched_env.sim.validation import (
    ConfigError,
    check_choice,
    check_fraction,
    check_known_keys,
    check_nonnegative,
    check_number,
    check_positive,
    fail,
)
from llmsched_env.sim.workload import LENGTH_KINDS

from .policies import ALL_BASELINES, ALL_ROUTERS, BUNDLED_AGENTS

DEFAULT_POLICIES = (ALL_BASELINES, BUNDLED_AGENTS)  # a cluster grid's default is ALL_ROUTERS
BACKENDS = ("local", "ray")  # where the runs execute (eval/runner.py, eval/ray_runner.py)

DEFAULT_SIM = SimConfig(
    # 3,000 requests per run: the default grid (9 baselines and the bundled agent x 3 loads x 3
    # seeds = 90 runs) takes about 60 s on two cores, 75 s with start-up, plots and TensorBoard
    # (measured; the agent's runs are most of it), and the stability verdict is mostly clear at
    # load 0.95 (with 2,000 it is often "inconclusive" there).
    workload=WorkloadConfig(lengths="sharegpt", num_requests=3000),
    # Interactive-chat targets (a choice, not a published figure): first token within 2 s,
    # then at least 10 tokens/s (100 ms per token, faster than reading speed).
    slo_ttft_s=2.0,
    slo_tpot_s=0.1,
)


@dataclass(frozen=True)
class CapacityConfig:
    """Capacity search: for each policy, the highest load (or rate) that passes, by bisection.

    Attributes:
        criterion: ``stable``: every seed's stability verdict is "stable" ("inconclusive" counts
            as not stable, so the estimate is conservative); ``slo``: the mean SLO attainment over
            seeds is at least ``slo_attainment``.
        slo_attainment: fraction of requests that must meet the SLO (criterion ``slo``).
        low, high: the search bracket in the grid's unit (load, or requests/s with ``rates``);
            None: loads 0.1 and 1.5, or 0.1 and 1.5 x the engine's sustainable rate.
        tolerance: stop when ``high - low <= tolerance * high``.
        num_requests: requests per probe run (the stability verdict needs long runs).
    """

    criterion: str = "stable"
    slo_attainment: float = 0.9
    low: float | None = None
    high: float | None = None
    tolerance: float = 0.02
    num_requests: int = 4000

    def __post_init__(self) -> None:
        check_choice("capacity.criterion", self.criterion, ("stable", "slo"))
        check_fraction("capacity.slo_attainment", self.slo_attainment, low_open=True)
        for name in ("low", "high"):
            if getattr(self, name) is not None:
                check_positive(f"capacity.{name}", getattr(self, name))
        if self.low is not None and self.high is not None and self.low >= self.high:
            raise fail("capacity.high", self.high, f"a bound above capacity.low={self.low!r}")
        check_number("capacity.tolerance", self.tolerance, low=0, high=1, low_open=True, high_open=True)
        object.__setattr__(self, "num_requests", check_positive("capacity.num_requests", self.num_requests, integer=True))


@dataclass(frozen=True)
class Workload:
    """One workload of the grid: its label in reports and its :class:`WorkloadConfig`."""

    label: str
    config: WorkloadConfig


WORKLOAD_GRID_LOADS = (0.5, 0.8, 0.95)  # the loads of a grid of workloads when none are given


@dataclass(frozen=True)
class GridScenario:
    """One setting of the grid (before load and seed): its label and base simulation."""

    label: str
    hardware: str
    system: str | None
    sim: SimConfig
    # a cluster scenario's replicas, workload and load (llmsched_env.sim.cluster); its policies are routers
    cluster: Any = None


@dataclass(frozen=True)
class EvalConfig:
    """An evaluation: policies x settings x loads (or rates) x seeds, where the settings are
    named scenarios (``scenarios``) or workloads x hardware x systems.

    Attributes:
        name: names the default output folder ``eval_out/<name>``.
        policies: baseline specs (``"fcfs"``, ``"trail:C=0.5"``), trained models by path (SB3
            ``.zip``), and the keywords ``all-baselines`` (every registered baseline with default
            parameters) and ``bundled-agents`` (every ``models/*.zip`` shipped with the project).
        reference: the policy the others are compared with (ratios); a label or spec in ``policies``.
        workloads: length presets (``sharegpt``...), trace files (path; timed traces replay their
            arrival pattern scaled to the load, length-only ones use ``sim.workload.arrival``), or
            mappings of :class:`WorkloadConfig` fields with a ``name``, each over ``sim.workload``.
        loads: arrival rates as fractions of each engine's sustainable rate; or
        rates: arrival rates in requests/s (exactly one of loads and rates).
        seeds: the seeds; every policy runs every seed (common random numbers).
        hardware: model/GPU presets (empty: ``sim.engine.hardware`` only).
        systems: engine presets of ``baselines.systems`` (``vllm``, ``orca``, ``sarathi``,
            ``fastertransformer``); a system fixes the engine's batching rule and limits while
            ``policies`` still says who schedules (empty: ``sim.engine`` as given).
        sim: the base simulation: engine, workload defaults, predictor, SLO targets, time limit.
        scenarios: named scenarios (``llmsched_env.scenarios``; ``all`` for every single-engine one,
            ``leaderboard`` for the scheduling-sensitive ones, ``clusters`` for the cluster
            scenarios) run each with its own simulation. A grid of cluster scenarios compares
            routers (``baselines.routing``; ``all-routers``; every replica schedules FCFS) and
            cannot mix with single-engine scenarios;
            ``workloads``, ``hardware``, ``systems`` and ``sim`` are then unused. Without ``loads``
            and ``rates`` each scenario runs at its own load.
        num_requests: requests per scenario run (None: each scenario's own).
        capacity: the capacity search, or None to skip it.
        jobs: worker processes (0: all cores); on the ``ray`` backend the CPUs of the local Ray it
            starts, or with ``ray_address`` the most runs in flight at once (0: all the cluster's CPUs).
        backend: ``local`` (a pool of worker processes) or ``ray`` (every run a Ray task,
            ``eval/ray_runner.py``); the same seeds give the same results on both.
        ray_address: the Ray cluster of the ``ray`` backend (``auto``: the one ``ray start`` runs on
            this machine; None: a local Ray is started).
        out: output folder (None: ``eval_out/<name>``).
        plots, tensorboard: write PNG plots / TensorBoard logs.
        save_requests: keep every run's per-request records in ``runs/<n>.npz``.
    """

    name: str = "default"
    policies: tuple[str, ...] = DEFAULT_POLICIES
    reference: str = "fcfs"
    workloads: tuple[Any, ...] = ("sharegpt",)
    loads: tuple[float, ...] | None = None
    rates: tuple[float, ...] | None = None
    seeds: tuple[int, ...] = (0, 1, 2, 3, 4)
    scenarios: tuple[str, ...] = ("leaderboard",)
    num_requests: int | None = None
    hardware: tuple[str, ...] = ()
    systems: tuple[str, ...] = ()
    sim: SimConfig = DEFAULT_SIM
    capacity: CapacityConfig | None = None
    jobs: int = 0
    backend: str = "local"
    ray_address: str | None = None
    out: str | None = None
    plots: bool = True
    tensorboard: bool = True
    save_requests: bool = True

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name or "/" in self.name:
            raise fail("name", self.name, "a non-empty name without '/'")
        set_ = functools.partial(object.__setattr__, self)  # normalise fields of the frozen dataclass
        set_("policies", _strings("policies", self.policies))
        if not self.policies:
            raise fail("policies", list(self.policies), "at least one policy")
        if not isinstance(self.reference, str) or not self.reference:
            raise fail("reference", self.reference, "a policy name such as 'fcfs'")
        set_("workloads", _sequence("workloads", self.workloads))
        if not self.workloads:
            raise fail("workloads", [], "at least one workload")
        set_("scenarios", _strings("scenarios", self.scenarios))
        set_("scenarios", tuple(expand_scenarios(self.scenarios)))
        if self.is_cluster_grid:
            singles = [n for n in self.scenarios if not _is_cluster(n)]
            if singles:
                raise ConfigError(
                    f"scenarios={list(self.scenarios)!r}: cluster scenarios compare routers and single-engine ones "
                    f"scheduling policies; evaluate them in separate grids (single-engine here: {', '.join(singles)})"
                )
            if self.policies == DEFAULT_POLICIES:
                set_("policies", (ALL_ROUTERS,))
            if self.reference == "fcfs":
                set_("reference", "round-robin")
            if self.capacity is not None:
                raise ConfigError("capacity: the capacity search runs single engines; a grid of cluster scenarios cannot use it")
        if self.num_requests is not None:
            object.__setattr__(self, "num_requests", check_positive("num_requests", self.num_requests, integer=True))
        if self.loads is not None and self.rates is not None:
            raise ConfigError(
                f"loads={self.loads!r} and rates={self.rates!r}: expected at most one of them "
                "(loads: fractions of capacity; rates: requests/s)"
            )
        if self.loads is None and self.rates is None and not self.scenarios:
            raise ConfigError("loads=None and rates=None: expected loads (fractions of capacity) or rates (requests/s) for a grid of workloads")
        for name in ("loads", "rates"):
            values = getattr(self, name)
            if values is not None:
                values = _sequence(name, values)
                if not values:
                    raise fail(name, [], "at least one value")
                set_(name, tuple(float(check_positive(f"{name}[{i}]", v)) for i, v in enumerate(values)))
        set_("seeds", _seeds(self.seeds))
        set_("hardware", _strings("hardware", self.hardware))
        for i, name in enumerate(self.hardware):
            check_choice(f"hardware[{i}]", name, available_hardware())
        set_("systems", _strings("systems", self.systems))
        if self.systems:
            known = system_names()
            for i, name in enumerate(self.systems):
                check_choice(f"systems[{i}]", name, known)
        if not isinstance(self.sim, SimConfig):
            raise fail("sim", self.sim, "a SimConfig")
        if self.capacity is not None and not isinstance(self.capacity, CapacityConfig):
            raise fail("capacity", self.capacity, "a CapacityConfig or None")
        if self.capacity is not None and self.capacity.criterion == "slo":
            if self.sim.slo_ttft_s is None and self.sim.slo_tpot_s is None:
                raise ConfigError(
                    "capacity.criterion='slo' needs an SLO: set sim.slo_ttft_s and/or sim.slo_tpot_s"
                )
        object.__setattr__(self, "jobs", check_nonnegative("jobs", self.jobs, integer=True))
        check_choice("backend", self.backend, BACKENDS)
        if self.ray_address is not None:
            if not isinstance(self.ray_address, str) or not self.ray_address:
                raise fail("ray_address", self.ray_address, "a Ray cluster address (host:port or auto) or None")
            if self.backend != "ray":
                raise ConfigError(f"ray_address={self.ray_address!r} needs backend='ray', not backend={self.backend!r}")
        if self.out is not None and (not isinstance(self.out, str) or not self.out):
            raise fail("out", self.out, "a folder path or None")
        for name in ("plots", "tensorboard", "save_requests"):
            if not isinstance(getattr(self, name), bool):
                raise fail(name, getattr(self, name), "true or false")
        self.workload_list()  # validates every workload now (and reads trace files once)

    # -- derived --------------------------------------------------------------------------------
    @property
    def is_cluster_grid(self) -> bool:
        """Whether the grid's scenarios are cluster scenarios (its policies are then routers)."""
        return bool(self.scenarios) and any(_is_cluster(n) for n in self.scenarios)

    @property
    def axis(self) -> str:
        """The grid's x axis: "load" or "rate"."""
        return "rate" if self.rates is not None else "load"

    @property
    def xs(self) -> tuple[float, ...]:
        """The grid's loads or rates (empty: each scenario at its own load)."""
        if self.loads is not None:
            return self.loads
        return self.rates if self.rates is not None else ()

    def settings(self) -> list[GridScenario]:
        """The grid's settings: each scenario, or each workload x hardware x system."""
        from llmsched_env import scenarios

        if self.scenarios:
            overrides = self.scenario_overrides()
            out = []
            for name in self.scenarios:
                scenario = scenarios.get(name)
                sim = scenarios.sim_config(scenario, **overrides)
                if scenario.cluster is None:
                    out.append(GridScenario(name, sim.engine.hardware, None, sim))
                    continue
                cluster = scenarios.cluster_config(scenario, **overrides)
                out.append(GridScenario(name, replicas_label(cluster.replicas), None, sim, cluster))
            return out
        out = []
        for workload in self.workload_list():
            for hardware in self.hardware_list:
                for system in self.system_list:
                    sim = self.sim.replace(workload=workload.config, engine=dataclasses.replace(self.sim.engine, hardware=hardware))
                    if system is not None:
                        from baselines.systems import system_config

                        sim, _ = system_config(system, sim)  # the system's engine; the grid's policies schedule
                    out.append(GridScenario(workload.label, hardware, system, sim))
        return out

    def scenario_overrides(self) -> dict[str, Any]:
        """What a scenario grid takes from ``sim`` and the flags: every engine and predictor field,
        SLO target and time limit set away from the built-in default applies to every scenario; the
        workload is the scenario's (only its length, ``num_requests``, may change)."""
        overrides: dict[str, Any] = {"num_requests": self.num_requests} if self.num_requests else {}
        for group, key in (("engine", "engine_kwargs"), ("predictor", "predictor_kwargs")):
            mine, default = dataclasses.asdict(getattr(self.sim, group)), dataclasses.asdict(getattr(DEFAULT_SIM, group))
            changed = {k: v for k, v in mine.items() if v != default[k]}
            if changed:
                overrides[key] = changed
        for name in ("slo_ttft_s", "slo_tpot_s", "max_time_s", "decision_interval"):
            if getattr(self.sim, name) != getattr(DEFAULT_SIM, name):
                overrides[name] = getattr(self.sim, name)
        workload = {k: v for k, v in dataclasses.asdict(self.sim.workload).items() if k != "num_requests"}
        default_workload = {k: v for k, v in dataclasses.asdict(DEFAULT_SIM.workload).items() if k != "num_requests"}
        if workload != default_workload:
            changed = sorted(k for k in workload if workload[k] != default_workload[k])
            raise ConfigError(
                f"sim.workload.{changed[0]}={workload[changed[0]]!r} is invalid with scenarios: a scenario brings its "
                "own workload; expected workloads: [...] (a grid of workloads) or a scenario YAML of your own"
            )
        if self.sim.workload.num_requests != DEFAULT_SIM.workload.num_requests and not self.num_requests:
            overrides["num_requests"] = self.sim.workload.num_requests
        return overrides

    def grid_xs(self, setting: GridScenario) -> tuple[float, ...]:
        """The loads (or rates) a setting runs at: the grid's, else the scenario's own load."""
        if self.xs:
            return self.xs
        if setting.sim.load is None:
            raise ConfigError(f"scenario {setting.label!r} has no load of its own (it sets a rate): give loads or rates")
        return (setting.sim.load,)

    @property
    def out_dir(self) -> Path:
        return Path(self.out) if self.out is not None else Path("eval_out") / self.name

    @property
    def hardware_list(self) -> tuple[str, ...]:
        return self.hardware or (self.sim.engine.hardware,)

    @property
    def system_list(self) -> tuple[str | None, ...]:
        return self.systems or (None,)

    @property
    def workers(self) -> int:
        if self.jobs:
            return self.jobs
        return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1

    def workload_list(self) -> list[Workload]:
        """The workloads as labelled :class:`WorkloadConfig` objects over ``sim.workload``."""
        out = [_workload(f"workloads[{i}]", entry, self.sim.workload) for i, entry in enumerate(self.workloads)]
        labels = [w.label for w in out]
        duplicated = sorted({label for label in labels if labels.count(label) > 1})
        if duplicated:
            raise fail("workloads", labels, f"distinct labels; {duplicated} appear twice (give each a name)")
        return out

    # -- dict / YAML ----------------------------------------------------------------------------
    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: str = "eval config") -> "EvalConfig":
        """Build from plain data (as loaded from YAML), rejecting unknown keys."""
        if not isinstance(data, Mapping):
            raise ConfigError(f"{where}: expected a mapping of settings, got {type(data).__name__}")
        check_known_keys(where, data.keys(), [f.name for f in dataclasses.fields(cls)])
        kwargs = dict(data)
        if "sim" in kwargs:
            sim = kwargs["sim"] if kwargs["sim"] is not None else {}
            if isinstance(sim, Mapping):
                for key in ("load", "rate", "seed"):
                    if key in sim:
                        raise ConfigError(
                            f"{where}: sim.{key} is set by the grid: give top-level loads/rates/seeds instead"
                        )
                sim = _merge(DEFAULT_SIM.to_dict(), sim)
            kwargs["sim"] = sim
        if any(key in kwargs for key in ("workloads", "hardware", "systems")) and "scenarios" not in kwargs:
            kwargs["scenarios"] = ()  # a grid of workloads x hardware x systems, not of scenarios
        if not kwargs.get("scenarios", cls.scenarios) and kwargs.get("loads") is None and kwargs.get("rates") is None:
            kwargs["loads"] = WORKLOAD_GRID_LOADS
        try:
            return from_dict(cls, kwargs, where)  # the project's one reader: sim and capacity are built by it
        except ConfigError as err:
            raise (err if str(err).startswith(where) else ConfigError(f"{where}: {err}")) from None

    def to_dict(self) -> dict[str, Any]:
        """Plain data that :meth:`from_dict` reads back (lists, dicts and scalars only)."""

        def plain(value: Any) -> Any:
            if isinstance(value, Mapping):
                return {k: plain(v) for k, v in value.items()}
            if isinstance(value, (list, tuple)):
                return [plain(v) for v in value]
            return value

        data = plain(dataclasses.asdict(self))
        for key in ("load", "rate", "seed"):  # set by the grid
            del data["sim"][key]
        return data


def load_eval_config(path: str | Path) -> EvalConfig:
    """Read an :class:`EvalConfig` from a YAML file (missing keys keep the built-in default)."""
    from llmsched_env.sim.config import load_yaml

    return EvalConfig.from_dict(load_yaml(path), where=str(path))


def _is_cluster(name: str) -> bool:
    from llmsched_env import scenarios

    return scenarios.get(name).cluster is not None


def replicas_label(replicas: Any) -> str:
    """``"2x llama2-7b/a100 + 2x llama2-7b/h100"``: a cluster's hardware in a table cell."""
    counts: dict[str, int] = {}
    for engine in replicas:
        counts[engine.hardware] = counts.get(engine.hardware, 0) + 1
    return " + ".join(f"{n}x {hardware}" for hardware, n in counts.items())


def expand_scenarios(names: tuple[str, ...]) -> list[str]:
    """Scenario names with ``all`` (every single-engine scenario), ``leaderboard`` and ``clusters``
    expanded, each checked, in order."""
    from llmsched_env import scenarios

    out: list[str] = []
    for i, name in enumerate(names):
        if name == "all":
            clusters = set(scenarios.cluster_names())
            chosen = [n for n in scenarios.names() if n not in clusters]
        elif name == "clusters":
            chosen = scenarios.cluster_names()
        elif name == "leaderboard":
            chosen = scenarios.leaderboard()
        else:
            try:
                scenarios.get(name)
            except ConfigError as err:
                raise ConfigError(f"scenarios[{i}]: {err}") from None
            chosen = [name]
        out += [c for c in chosen if c not in out]
    return out


def system_names() -> list[str]:
    """Engine presets of ``baselines.systems`` (a clear error when the package is missing)."""
    try:
        from baselines.systems import SYSTEMS
    except ImportError:
        raise ConfigError("systems need the baselines package (baselines.systems), which is not installed") from None
    return sorted(SYSTEMS)


# -- helpers ----------------------------------------------------------------------------------------


def _merge(base: dict[str, Any], changes: Mapping[str, Any]) -> dict[str, Any]:
    """``base`` with ``changes`` applied, recursing into nested mappings."""
    out = dict(base)
    for key, value in changes.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def _sequence(name: str, values: Any) -> tuple:
    if isinstance(values, (str, bytes, Mapping)) or not hasattr(values, "__iter__"):
        raise fail(name, values, "a list")
    return tuple(values)


def _strings(name: str, values: Any) -> tuple[str, ...]:
    values = _sequence(name, values)
    for i, value in enumerate(values):
        if not isinstance(value, str) or not value:
            raise fail(f"{name}[{i}]", value, "a non-empty string")
    return values


def _seeds(seeds: Any) -> tuple[int, ...]:
    """A count N (seeds 0..N-1) or a list of distinct integers >= 0."""
    if isinstance(seeds, int) and not isinstance(seeds, bool):
        seeds = check_positive("seeds", seeds, integer=True)
        return tuple(range(seeds))
    values = _sequence("seeds", seeds)
    if not values:
        raise fail("seeds", [], "a count >= 1 or a non-empty list of integers >= 0")
    for i, s in enumerate(values):
        check_nonnegative(f"seeds[{i}]", s, integer=True)
    values = tuple(int(s) for s in values)
    if len(set(values)) != len(values):
        raise fail("seeds", list(values), "distinct seeds")
    return values


def _workload(where: str, entry: Any, base: WorkloadConfig) -> Workload:
    """A preset or length kind name, a trace file path, or a mapping of fields with a name."""
    if isinstance(entry, Mapping):
        fields = dict(entry)
        label = fields.pop("name", None)
        if not isinstance(label, str) or not label:
            raise fail(f"{where}.name", label, "a label for this workload (a mapping needs a name)")
        merged = {**dataclasses.asdict(base), **fields}
        config = dataclass_from_dict(WorkloadConfig, merged, where)
    elif isinstance(entry, str) and entry in tuple(available_length_presets()) + LENGTH_KINDS and entry != "trace":
        label = entry
        config = dataclasses.replace(base, lengths=entry, trace_path=None)
    elif isinstance(entry, str) and entry and (os.sep in entry or "." in entry or Path(entry).exists()):
        label = Path(entry).name.split(".")[0] or entry
        config = dataclasses.replace(base, lengths="trace", arrival="trace", trace_path=entry)
    else:
        raise fail(
            where,
            entry,
            "a length preset (" + ", ".join(available_length_presets()) + "), a length kind ("
            + ", ".join(k for k in LENGTH_KINDS if k != "trace") + "), a trace file path, or a mapping with a name",
        )
    if config.lengths == "trace" or config.arrival == "trace":
        try:
            trace = config.read_trace()  # unreadable traces fail here, before any run
        except ConfigError as err:
            raise ConfigError(f"{where}: {err}") from None
        if config.arrival == "trace" and trace.arrival_time is None and not isinstance(entry, Mapping):
            # a length-only trace: keep its lengths, take the arrival process of sim.workload
            config = dataclasses.replace(config, arrival=base.arrival if base.arrival != "trace" else "poisson")
    return Workload(label=label, config=config)
