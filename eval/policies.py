"""Policy specs of an evaluation: heuristic baselines by name, trained agents by path.

* A baseline spec is a registered name with optional parameters, ``"trail"`` or
  ``"trail:C=0.5"``, parsed by ``baselines.parse``; its label in reports is the policy's ``name``.
* A trained agent is an SB3 ``.zip`` file (or any path), loaded by ``train.agents.load_policy``
  (built by the training package); its label is the file name without ``.zip``. It runs through
  its Gymnasium environment: the loaded object's ``simulate(config, seed)`` replaces the engine's.
* An RLlib agent is ``rllib:PATH``, a checkpoint folder saved by ``llmsched-train --backend rllib``
  (the ``ray`` extra), loaded by ``train.rllib.load_policy``; its label is the folder's name (the
  run's for ``<run>/checkpoint``). It runs through its environment as a trained agent does.
* ``all-baselines`` expands to every registered baseline with default parameters and
  ``bundled-agents`` to every ``models/*.zip`` shipped with the project (``models/README.md``).
* A router (``baselines.routing``: ``"least-outstanding"``, ``"prefix-affinity:cache_threshold=0.3"``)
  is the policy of a cluster scenario; ``all-routers`` expands to every one.

Policies are built afresh for every run (a policy may keep per-run state), in the worker process
that runs it; :func:`expand` builds each once up front so that mistakes fail before any run.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path

from llmsched_env.sim import Policy
from llmsched_env.sim.validation import ConfigError

ALL_BASELINES = "all-baselines"
ALL_ROUTERS = "all-routers"
BUNDLED_AGENTS = "bundled-agents"
RLLIB_PREFIX = "rllib:"  # an RLlib checkpoint folder
MODELS_DIR = Path(__file__).resolve().parents[1] / "models"  # the project's shipped agents


@dataclass(frozen=True)
class PolicyEntry:
    """One policy of the grid."""

    label: str  # its name in reports, files and TensorBoard runs
    spec: str  # the baseline or router spec, or the model path
    kind: str  # "baseline", "router" (a cluster's) or "model"
    # a bundled agent of a scenario grid runs on the scenario it was trained on only (None: everywhere)
    home: str | None = None


def _baselines():
    """The baselines registry, or a clear error when it is missing."""
    try:
        module = importlib.import_module("baselines")
    except ImportError:
        module = None
    if module is None or not hasattr(module, "parse"):
        raise ConfigError("baseline policies need the baselines package, which is not installed")
    return module


def available_baselines() -> list[str]:
    return list(_baselines().available())


def is_model_path(spec: str) -> bool:
    """Trained agents are given by path: a ``.zip`` file, an ``rllib:`` checkpoint or anything with a path separator."""
    return spec.endswith(".zip") or spec.startswith(RLLIB_PREFIX) or "/" in spec or "\\" in spec


def model_label(spec: str) -> str:
    """A trained agent's name in reports: its file's name without ``.zip``, or an RLlib checkpoint's."""
    if spec.startswith(RLLIB_PREFIX):
        folder = Path(spec.removeprefix(RLLIB_PREFIX)).resolve()
        return folder.parent.name if folder.name == "checkpoint" else folder.name
    return Path(spec).name.removesuffix(".zip")


def load_model(path: str) -> Policy:
    """A trained agent from its file, through ``train.agents.load_policy`` (``train.rllib.load_policy``
    for an ``rllib:`` checkpoint)."""
    if path.startswith(RLLIB_PREFIX):
        return _load_rllib(path.removeprefix(RLLIB_PREFIX))
    if not Path(path).is_file():
        raise ConfigError(f"policy {path!r}: model file does not exist")
    try:
        agents = importlib.import_module("train.agents")
    except ImportError:
        agents = None
    if agents is None or not hasattr(agents, "load_policy"):
        raise ConfigError(
            f"policy {path!r} is a trained model, but loading models needs train.agents.load_policy "
            "(the training package), which is not installed"
        )
    try:
        is_router = getattr(agents, "is_router_model", None)
        if is_router is not None and is_router(agents.read_info(path)):  # a routing agent (llmsched-train on a cluster scenario)
            return importlib.import_module("train.router").load_policy(path)
        return agents.load_policy(path)
    except ConfigError:
        raise
    except Exception as err:  # a corrupt or foreign file: report it as the user's input
        raise ConfigError(f"policy {path!r}: cannot load the model ({type(err).__name__}: {err})") from None


def _load_rllib(path: str) -> Policy:
    spec = RLLIB_PREFIX + path
    if not Path(path).is_dir():
        raise ConfigError(f"policy {spec!r}: checkpoint folder does not exist")
    try:
        rllib = importlib.import_module("train.rllib")
    except ImportError as err:
        raise ConfigError(f"policy {spec!r} is an RLlib checkpoint, but loading it needs Ray's RLlib ({err}): "
                          'install the extra, pip install -e ".[ray]"') from None
    try:
        return rllib.load_policy(path, name=model_label(spec))
    except ConfigError as err:
        raise ConfigError(f"policy {spec!r}: {err}") from None
    except Exception as err:  # a corrupt or foreign checkpoint: report it as the user's input
        raise ConfigError(f"policy {spec!r}: cannot load the checkpoint ({type(err).__name__}: {err})") from None


def build(entry: PolicyEntry) -> Policy:
    """A fresh policy (or router) object for one run."""
    if entry.kind == "router":
        return load_model(entry.spec) if is_model_path(entry.spec) else _routing().parse_router(entry.spec)
    return load_model(entry.spec) if entry.kind == "model" else _baselines().parse(entry.spec)


def _routing():
    _baselines()  # the same clear error when the package is missing
    return importlib.import_module("baselines.routing")


def is_router_spec(spec: str) -> bool:
    return spec.split(":", 1)[0] in _routing().available_routers()


def parse_router(spec: str):
    """``baselines.routing.parse_router`` with errors naming the policy."""
    try:
        return _routing().parse_router(spec)
    except ConfigError as err:
        raise ConfigError(f"policy {spec!r}: {err}") from None


def parse_baseline(spec: str) -> Policy:
    """``baselines.parse`` with unknown names reported with the list of available ones."""
    registry = _baselines()
    name = spec.split(":", 1)[0]
    if name not in registry.available():
        raise ConfigError(
            f"policy {spec!r}: unknown policy {name!r}; available baselines are "
            + ", ".join(registry.available())
            + f" (or {ALL_BASELINES}, {BUNDLED_AGENTS}, a trained model's .zip path, or for cluster scenarios "
            + f"a router: {', '.join(_routing().available_routers())}, {ALL_ROUTERS})"
        )
    try:
        return registry.parse(spec)
    except ConfigError as err:
        raise ConfigError(f"policy {spec!r}: {err}") from None


def expand(specs: tuple[str, ...]) -> list[PolicyEntry]:
    """The policies named by ``specs``, keywords expanded, each built once to check it.

    A policy listed twice (e.g. ``fcfs`` and ``all-baselines``) is kept once; two different
    policies with the same label are an error.
    """
    entries: list[PolicyEntry] = []
    for spec in specs:
        if spec == ALL_BASELINES:
            found = [PolicyEntry(parse_baseline(n).name, n, "baseline") for n in available_baselines()]
        elif spec == ALL_ROUTERS:
            found = [PolicyEntry(parse_router(n).name, n, "router") for n in _routing().available_routers()]
        elif is_router_spec(spec):
            found = [PolicyEntry(parse_router(spec).name, spec, "router")]
        elif spec == BUNDLED_AGENTS:
            found = [PolicyEntry(p.name[: -len(".zip")], str(p), "model", home_scenario(p)) for p in sorted(MODELS_DIR.glob("*.zip"))]
            for entry in found:
                load_model(entry.spec)
        elif is_model_path(spec):
            loaded = load_model(spec)
            kind = "router" if hasattr(loaded, "route") else "model"  # a routing agent (llmsched-train on a cluster scenario)
            found = [PolicyEntry(model_label(spec), spec, kind)]
        else:
            found = [PolicyEntry(parse_baseline(spec).name, spec, "baseline")]
        for entry in found:
            same = [e for e in entries if e.label == entry.label]
            if not same:
                entries.append(entry)
            elif same[0].kind != entry.kind or (entry.kind == "model" and Path(same[0].spec) != Path(entry.spec)):
                raise ConfigError(
                    f"policies: {same[0].spec!r} and {entry.spec!r} have the same label {entry.label!r}; "
                    "rename one model file"
                )
    return entries


def home_scenario(path: Path) -> str:
    """The scenario a shipped agent was trained on (``default`` for agents of the older envs)."""
    agents = importlib.import_module("train.agents")
    return str(agents.read_info(path).get("scenario", "default"))


def find_reference(reference: str, entries: list[PolicyEntry]) -> str:
    """The label of the reference policy (given as a label or a spec of one of ``entries``)."""
    labels = [e.label for e in entries]
    if reference in labels:
        return reference
    for e in entries:
        if e.spec == reference:
            return e.label
    if not is_model_path(reference):
        name = parse_baseline(reference).name
        if name in labels:
            return name
    raise ConfigError(f"reference={reference!r} is invalid: expected one of the evaluated policies: {', '.join(labels)}")
