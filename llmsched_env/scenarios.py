"""Scenarios: named, sourced settings in which the order of service changes response times.

A scenario is one complete setting: a :class:`~llmsched_env.sim.SimConfig` (deployment, batching,
workload, predictor, load) plus the :class:`EnvOptions` an agent meets it with (visible slots,
episode length in requests, reward). Each lives in one YAML file under ``configs/scenarios/``
with its sources and a paragraph on what makes it hard, and is read by the project's one config
reader (:func:`llmsched_env.sim.config.from_dict`). Every entry point takes scenario names::

    from llmsched_env import scenarios
    scenarios.names()                                   # ['agentic-multiturn', 'chat-a100-40gb', ...]
    config = scenarios.sim_config("reasoning", load=0.9) # a SimConfig for simulate()
    env = gym.make("llmsched/Serve-v2", scenario="chat-bursty", num_slots=32)
    # llmsched-eval --scenarios chat-bursty reasoning | all
    # llmsched-train --scenario chat-a100-40gb   (or a weighted mixture: see train/config.py)

YAML layout (every key but ``name`` optional; unknown keys are errors)::

    name: chat-a100-40gb
    summary: one line for tables and listings
    description: a paragraph, what makes the scenario hard
    sources: [where each figure comes from, ...]
    leaderboard: true      # part of the default evaluation (scheduling-sensitive)
    sim: {engine: {...}, workload: {...}, predictor: {...}, load: 0.95, ...}   # SimConfig fields
    env: {num_slots: 64, episode_requests: 1000, reward: latency}             # EnvOptions fields

A path to such a file works wherever a name does.

Cluster scenarios (``cluster:`` section, ``llmsched/Cluster-v0``): ``cluster: {replicas: [{...},
...]}`` lists one ``EngineConfig`` mapping per replica; ``sim`` then gives the workload, the
predictor and the load (a fraction of the replicas' summed sustainable rates), and ``sim.engine``
is only what single-engine entry points run. :func:`cluster_config` builds the
:class:`~llmsched_env.sim.cluster.ClusterConfig`; ``gym.make("llmsched/Cluster-v0",
scenario=name)`` serves it. They are not on the leaderboard (its entry points run one engine).

Overrides. :func:`resolve` applies keyword overrides to a scenario: the flat keywords of
``gym.make("llmsched/Serve-v*", ...)`` (``hardware``, ``batching``, ``max_num_seqs``,
``max_num_batched_tokens``, ``num_gpu_blocks``, ``preemption_mode``, ``admission_preemption``,
``workload`` (lengths), ``trace_path``, ``arrival``, ``num_requests`` (the episode length),
``predictor``, ``predictor_sigma``, ``load``, ``rate``, ``max_time_s``, ``slo_ttft_s``,
``slo_tpot_s``, ``decision_interval``), the dicts ``engine_kwargs`` / ``workload_kwargs`` /
``predictor_kwargs`` for any other field, and the :class:`EnvOptions` fields.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from .sim import EngineConfig, PredictorConfig, SimConfig, WorkloadConfig
from .sim.config import from_dict, load_yaml
from .sim.slots import ACTION_MODES
from .sim.validation import ConfigError, check_choice, check_nonnegative, check_positive, fail

#: the scenario files (a repository folder: the project installs in place, ``pip install -e .``)
SCENARIO_DIR = Path(__file__).resolve().parents[1] / "configs" / "scenarios"
REWARDS = ("latency", "slo_goodput", "throughput")
SLOT_LAYOUTS = ("queue", "kv-first")


@dataclass(frozen=True)
class EnvOptions:
    """How an agent meets a scenario in ``llmsched/Serve-v*`` (see ``envs/serve.py``).

    Attributes:
        num_slots: requests shown to the agent per decision (the observation's rows).
        episode_requests: requests in a training episode (queues form only in long enough ones:
            200-request episodes barely queue, 500 and more do).
        reward: ``latency`` (minus the requests in the system, integrated over time),
            ``slo_goodput`` or ``throughput``.
        reward_scale: divides the reward (None: the env's default scale).
        action_mode: ``rank`` (a score per slot) or ``admit`` (pick the next admission).
        preemption_control: the agent also evicts requests and picks preemption modes.
        slot_layout: which requests the slots show and with which features. ``queue``
            (``Serve-v2``): requests waiting for KV stay visible (``waiting_slots`` slots kept for
            the head of the queue and the shortest predicted ones), each slot with the decision
            features of ``llmsched_env.sim.observe.DECISION_FEATURES``, and the globals summarise
            the requests left out. ``kv-first`` (``Serve-v0/v1``): the requests holding KV first,
            then the oldest others, base features only.
        waiting_slots: slots kept for requests without KV in the ``queue`` layout (None:
            ``num_slots // 4``); ignored by ``kv-first``.
    """

    num_slots: int = 64
    episode_requests: int = 1000
    reward: str = "latency"
    reward_scale: float | None = None
    action_mode: str = "rank"
    preemption_control: bool = False
    slot_layout: str = "queue"
    waiting_slots: int | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "num_slots", check_positive("num_slots", self.num_slots, integer=True))
        object.__setattr__(self, "episode_requests", check_positive("episode_requests", self.episode_requests, integer=True))
        check_choice("reward", self.reward, REWARDS)
        if self.reward_scale is not None:
            check_positive("reward_scale", self.reward_scale)
        check_choice("action_mode", self.action_mode, ACTION_MODES)
        if not isinstance(self.preemption_control, bool):
            raise fail("preemption_control", self.preemption_control, "true or false")
        check_choice("slot_layout", self.slot_layout, SLOT_LAYOUTS)
        if self.waiting_slots is not None:
            object.__setattr__(self, "waiting_slots", check_nonnegative("waiting_slots", self.waiting_slots, integer=True))
            if self.waiting_slots > self.num_slots:
                raise fail("waiting_slots", self.waiting_slots, f"an integer in [0, num_slots={self.num_slots}]")

    @property
    def reserved_waiting_slots(self) -> int:
        """Slots kept for requests without KV (0 in the ``kv-first`` layout)."""
        if self.slot_layout == "kv-first":
            return 0
        return self.num_slots // 4 if self.waiting_slots is None else self.waiting_slots


@dataclass(frozen=True)
class ClusterOptions:
    """The replicas of a cluster scenario (see ``llmsched_env.sim.cluster``).

    Attributes:
        replicas: one engine per replica (hardware, limits, prefix caching...).
    """

    replicas: tuple[EngineConfig, ...] = ()

    def __post_init__(self) -> None:
        if not isinstance(self.replicas, tuple) or not self.replicas or not all(isinstance(e, EngineConfig) for e in self.replicas):
            raise fail("replicas", self.replicas, "a non-empty list of engine settings, one per replica")


@dataclass(frozen=True)
class Scenario:
    """A named setting: the simulation, the agent's options and where every figure comes from."""

    name: str
    summary: str = ""
    description: str = ""
    sources: tuple[str, ...] = ()
    leaderboard: bool = False
    sim: SimConfig = field(default_factory=SimConfig)
    env: EnvOptions = field(default_factory=EnvOptions)
    cluster: ClusterOptions | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name or "/" in self.name:
            raise fail("name", self.name, "a scenario name (no '/')")
        if not isinstance(self.sources, tuple) or not all(isinstance(s, str) for s in self.sources):
            raise fail("sources", self.sources, "a list of strings")
        if not isinstance(self.leaderboard, bool):
            raise fail("leaderboard", self.leaderboard, "true or false")

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["sources"] = list(self.sources)
        if data["cluster"] is not None:
            data["cluster"]["replicas"] = list(data["cluster"]["replicas"])
        return data


def names() -> list[str]:
    """The scenarios shipped in ``configs/scenarios/``, sorted."""
    return sorted(p.stem for p in SCENARIO_DIR.glob("*.yaml"))


def leaderboard() -> list[str]:
    """The scheduling-sensitive scenarios of the default evaluation, sorted."""
    return [name for name in names() if get(name).leaderboard]


@functools.lru_cache(maxsize=None)
def get(name: str) -> Scenario:
    """A scenario by name (``names()``) or by the path of a scenario YAML file."""
    if not isinstance(name, str) or not name:
        raise fail("scenario", name, "a scenario name (" + ", ".join(names()) + ") or a YAML file path")
    if name.endswith((".yaml", ".yml")):
        path = Path(name)
    else:
        if name not in names():
            close = difflib.get_close_matches(name, names(), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise fail("scenario", name, "one of " + ", ".join(names()) + hint + ", or a scenario YAML file")
        path = SCENARIO_DIR / f"{name}.yaml"
    data = load_yaml(path)
    scenario = from_dict(Scenario, data, where=str(path))
    if not name.endswith((".yaml", ".yml")) and scenario.name != name:
        raise ConfigError(f"{path}: name={scenario.name!r} is invalid: expected {name!r}, the file's name")
    return scenario


# -- overrides ----------------------------------------------------------------------------------

ENGINE_KEYS = {k: k for k in ("hardware", "batching", "max_num_seqs", "max_num_batched_tokens", "num_gpu_blocks",
                              "preemption_mode", "admission_preemption")}  # fmt: skip
WORKLOAD_KEYS = {"workload": "lengths", "arrival": "arrival", "trace_path": "trace_path"}
PREDICTOR_KEYS = {"predictor": "kind", "predictor_sigma": "sigma"}
SIM_KEYS = ("load", "rate", "max_time_s", "slo_ttft_s", "slo_tpot_s", "decision_interval")
DICT_KEYS = {"engine_kwargs": "engine", "workload_kwargs": "workload", "predictor_kwargs": "predictor"}
ENV_KEYS = tuple(f.name for f in dataclasses.fields(EnvOptions))


def override_keys() -> list[str]:
    """Every keyword :func:`resolve` accepts."""
    return sorted({*ENGINE_KEYS, *WORKLOAD_KEYS, *PREDICTOR_KEYS, *SIM_KEYS, *DICT_KEYS, *ENV_KEYS, "num_requests"})


def resolve(scenario: str | Scenario, where: str = "scenario", **overrides: Any) -> tuple[SimConfig, EnvOptions]:
    """The scenario's simulation and env options with ``overrides`` applied (module docstring).

    ``num_requests`` (or ``episode_requests``) sets the episode length, which is also the
    returned SimConfig's ``workload.num_requests``. Unknown keywords are errors that name the
    closest known one.
    """
    base = scenario if isinstance(scenario, Scenario) else get(scenario)
    unknown = sorted(set(overrides) - set(override_keys()))
    if unknown:
        hints = []
        for key in unknown:
            close = difflib.get_close_matches(key, override_keys(), n=1)
            hints.append(f"{key!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
        raise ConfigError(f"{where}: unknown argument(s) {', '.join(hints)}; allowed: {', '.join(override_keys())}")
    sim = base.sim
    engine = dataclasses.asdict(sim.engine)
    workload = dataclasses.asdict(sim.workload)
    predictor = dataclasses.asdict(sim.predictor)
    for flat, name in ENGINE_KEYS.items():
        if flat in overrides:
            engine[name] = overrides[flat]
    for flat, name in PREDICTOR_KEYS.items():
        if flat in overrides:
            predictor[name] = overrides[flat]
    if "workload" in overrides:
        workload.update(lengths=overrides["workload"], trace_path=None, components=(), pmf_path=None)
    if overrides.get("trace_path") is not None:
        workload.update(trace_path=overrides["trace_path"], lengths="trace", components=(), pmf_path=None)
        if "arrival" not in overrides:
            warnings.warn(
                f"trace_path={overrides['trace_path']!r} replays the trace's lengths with "
                f"arrival={workload['arrival']!r}; pass arrival='trace' to replay its timestamps too",
                stacklevel=3,
            )
    if "arrival" in overrides:
        workload["arrival"] = overrides["arrival"]
        if overrides["arrival"] != "profile":
            workload["arrival_profile"] = None
    for flat, group in DICT_KEYS.items():
        value = overrides.get(flat)
        if value is None:
            continue
        if not isinstance(value, Mapping):
            raise fail(flat, value, "a mapping of field names to values")
        {"engine": engine, "workload": workload, "predictor": predictor}[group].update(value)
    env_fields = dataclasses.asdict(base.env)
    env_fields.update({k: overrides[k] for k in ENV_KEYS if k in overrides})
    if "num_requests" in overrides:
        env_fields["episode_requests"] = overrides["num_requests"]
    elif isinstance(overrides.get("workload_kwargs"), Mapping) and "num_requests" in overrides["workload_kwargs"]:
        env_fields["episode_requests"] = overrides["workload_kwargs"]["num_requests"]  # the episode length too
    env = from_dict(EnvOptions, env_fields, where)
    workload["num_requests"] = env.episode_requests
    sim_changes: dict[str, Any] = {k: overrides[k] for k in SIM_KEYS if k in overrides}
    if "load" in sim_changes and "rate" not in sim_changes:
        sim_changes["rate"] = None
    if "rate" in sim_changes and sim_changes["rate"] is not None and "load" not in sim_changes:
        sim_changes["load"] = None
    config = sim.replace(
        engine=from_dict(EngineConfig, engine, "engine", nested=True),
        workload=from_dict(WorkloadConfig, workload, "workload", nested=True),
        predictor=from_dict(PredictorConfig, predictor, "predictor", nested=True),
        **sim_changes,
    )
    return config, env


def sim_config(name: str | Scenario, **overrides: Any) -> SimConfig:
    """The scenario's :class:`SimConfig` for :func:`llmsched_env.sim.simulate`, with overrides.

    Without ``num_requests`` the run keeps the scenario's own evaluation length (its
    ``sim.workload.num_requests``), not the episode length.
    """
    base = name if isinstance(name, Scenario) else get(name)
    bad = sorted(set(overrides) & set(ENV_KEYS))
    if bad:
        raise fail(bad[0], overrides[bad[0]], "a simulation setting: env options go to gym.make, not sim_config")
    length = overrides.pop("num_requests", base.sim.workload.num_requests)
    config, _ = resolve(base, where=f"scenario {base.name!r}", num_requests=length, **overrides)
    return config


def cluster_names() -> list[str]:
    """The cluster scenarios (those with a ``cluster`` section), sorted."""
    return [name for name in names() if get(name).cluster is not None]


def cluster_config(name: str | Scenario, *, num_requests: int | None = None, **overrides: Any):
    """The :class:`~llmsched_env.sim.cluster.ClusterConfig` of a cluster scenario: its replicas,
    and its workload, predictor and load with ``overrides`` applied as in :func:`sim_config`
    (``num_requests``: the run's length; default the scenario's evaluation length)."""
    from .sim.cluster import ClusterConfig

    base = name if isinstance(name, Scenario) else get(name)
    if base.cluster is None:
        raise fail("scenario", base.name, "a cluster scenario (" + ", ".join(cluster_names()) + ")")
    length = base.sim.workload.num_requests if num_requests is None else num_requests
    sim = sim_config(base, num_requests=length, **overrides)
    return ClusterConfig(
        replicas=base.cluster.replicas,
        workload=sim.workload,
        predictor=sim.predictor,
        load=sim.load,
        rate=sim.rate,
        max_time_s=sim.max_time_s,
        slo_ttft_s=sim.slo_ttft_s,
        slo_tpot_s=sim.slo_tpot_s,
        seed=sim.seed,
    )
