"""The training configuration: one typed, validated dataclass fed by YAML files and CLI flags.

``configs/train/default.yaml`` writes out the built-in default (:class:`TrainConfig` as is);
``configs/train/*.yaml`` hold other recipes. Every key is optional, unknown keys are errors, and
every bad value raises :class:`~llmsched_env.sim.validation.ConfigError` naming the field, the
value and what is allowed. Layout::

    env: llmsched/Serve-v2            # the env (the one whose observations the policies read)
    scenario: chat-a100-40gb          # a scenario name or file (llmsched_env.scenarios); or
    # scenarios: [{scenario: chat-bursty, weight: 2}, {scenario: reasoning, weight: 1}]  # a mixture
    env_kwargs: {num_slots: 64}       # overrides of the scenario (gym.make keywords), applied when read
    algo: ppo                         # ppo (rank mode), ppo_mask (MaskablePPO, admit mode) or ppo_portfolio
                                      # (PPO picking a heuristic of `portfolio` per epoch, train.portfolio)
    n_timesteps: 300000               # PPO env steps (after the optional behaviour cloning)
    n_envs: 8                         # parallel envs
    vec_env: vector                   # vector (train.vec_env.ServeVecEnv, one process, batched), subproc or dummy
    seed: 0                           # seeds numpy, torch, python and the envs
    device: auto                      # auto (CUDA when present), cpu, cuda, cuda:N
    hyperparams: {learning_rate: 3.0e-5, n_steps: 256, ..., policy_kwargs: {...}}
    reward_reference: fcfs            # learn from the improvement over this baseline (teacher: the BC
                                      # teacher's; null: the env's reward)
    eval_freq: 25000                  # env steps between evaluations (0: only at the start)
    eval_episodes: 10                 # validation workloads: sim seeds eval_seed, eval_seed + 1, ...
    eval_seed: 10000
    eval_baselines: [fcfs, trail, srpt]
    bc: {teacher: sjf, episodes: 20, epochs: 30, batch_size: 256, learning_rate: 1.0e-3, dagger_rounds: 0}  # or null
    save_freq: 0                      # env steps between checkpoints (0: none)
    progress_bar: true
    portfolio: [trail, mlfq, sjf, fcfs]  # ppo_portfolio only: the heuristics it picks from (this default)
    minibatches: random               # or by-occupancy: PPO minibatches of similar slot occupancy (train.buffers)

``hyperparams`` are the keyword arguments of the SB3 algorithm (``policy``, ``env``, ``seed``,
``device``, ``tensorboard_log`` and ``verbose`` come from the rest of the config). As in rl-zoo3,
``learning_rate`` and ``clip_range`` may be ``lin_<value>`` for a linear decay to 0.
"""

from __future__ import annotations

import dataclasses
import inspect
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

from llmsched_env.scenarios import Scenario
from llmsched_env.sim.validation import (
    ConfigError,
    check_choice,
    check_known_keys,
    check_nonnegative,
    check_number,
    check_positive,
    fail,
)

#: algorithm name (rl-zoo3's) -> (module, class, the action mode it handles)
ALGOS: dict[str, tuple[str, str, str]] = {
    "ppo": ("stable_baselines3", "PPO", "rank"),
    "ppo_mask": ("sb3_contrib", "MaskablePPO", "admit"),
    "ppo_portfolio": ("stable_baselines3", "PPO", "portfolio"),  # picks a heuristic per epoch (train.portfolio)
}
#: the env action mode each algorithm's agent acts through (a portfolio agent's picks become rank scores)
ENV_ACTION_MODE = {"rank": "rank", "admit": "admit", "portfolio": "rank"}
VEC_ENVS = ("vector", "subproc", "dummy")  # train.vec_env.vec_env_class
MINIBATCHES = ("random", "by-occupancy")  # PPO's minibatches (train.buffers)
SET_BY_CONFIG = ("policy", "env", "seed", "device", "tensorboard_log", "verbose", "_init_setup_model")
SCHEDULED = ("learning_rate", "clip_range")  # may be "lin_<value>"
#: bounds of the numeric PPO arguments (SB3 checks few of them and fails deep inside training)
HYPERPARAM_BOUNDS: dict[str, dict[str, Any]] = {
    "learning_rate": {"low": 0, "low_open": True},
    "clip_range": {"low": 0, "low_open": True},
    "clip_range_vf": {"low": 0, "low_open": True},
    "n_steps": {"low": 1, "integer": True},
    "batch_size": {"low": 1, "integer": True},
    "n_epochs": {"low": 1, "integer": True},
    "gamma": {"low": 0, "high": 1},
    "gae_lambda": {"low": 0, "high": 1},
    "ent_coef": {"low": 0},
    "vf_coef": {"low": 0},
    "max_grad_norm": {"low": 0, "low_open": True},
    "target_kl": {"low": 0, "low_open": True},
}


def algo_class(algo: str) -> Any:
    """The SB3 class of ``algo`` (imported on demand)."""
    import importlib

    check_choice("algo", algo, ALGOS)
    module, name, _ = ALGOS[algo]
    return getattr(importlib.import_module(module), name)


def policy_class(algo: str) -> Any:
    """The set-encoder policy for ``algo``'s action mode."""
    from .networks import SetAdmitPolicy, SetPortfolioPolicy, SetRankPolicy

    return {"rank": SetRankPolicy, "admit": SetAdmitPolicy, "portfolio": SetPortfolioPolicy}[ALGOS[algo][2]]


ENVS = ("llmsched/Serve-v2", "llmsched/Serve-v1", "llmsched/Serve-v0")  # the envs whose observations the set-encoder policies read


@dataclass(frozen=True)
class TrainScenario:
    """One scenario of the training mix: the scenario itself (its simulation and env options,
    overrides applied) and its weight (the share of training episodes drawn from it)."""

    scenario: Scenario
    weight: float = 1.0

    def __post_init__(self) -> None:
        if not isinstance(self.scenario, Scenario):
            raise fail("scenarios.scenario", self.scenario, "a scenario (name, file or mapping)")
        check_positive("scenarios.weight", self.weight)


def _legacy_scenario(env_id: str) -> Scenario:
    """The defaults of ``llmsched/Serve-v1`` (and v0, with admission preemption) as a scenario."""
    from llmsched_env.envs.serve import LEGACY_V1

    if env_id.removeprefix("llmsched_env:") == "llmsched/Serve-v0":
        engine = dataclasses.replace(LEGACY_V1.sim.engine, admission_preemption=True)
        return dataclasses.replace(LEGACY_V1, name="serve-v0", sim=LEGACY_V1.sim.replace(engine=engine))
    return LEGACY_V1


def read_scenario(value: Any, overrides: Mapping[str, Any], where: str) -> Scenario:
    """A scenario from its name, file path, mapping or object, with ``overrides`` (gym.make
    keywords) applied by :func:`llmsched_env.scenarios.resolve`."""
    from llmsched_env import scenarios
    from llmsched_env.sim.config import from_dict

    if isinstance(value, Scenario):
        base = value
    elif isinstance(value, Mapping):
        base = from_dict(Scenario, value, where)
    else:
        base = scenarios.get(value)
    if not overrides:
        return base
    sim, env = scenarios.resolve(base, where=where, **overrides)
    return dataclasses.replace(base, sim=sim, env=env)


def _lin_value(text: str) -> float:
    """The number of ``lin_<number>``, NaN if ``text`` is not of that form."""
    try:
        return float(text.removeprefix("lin_")) if text.startswith("lin_") else float("nan")
    except ValueError:
        return float("nan")


def linear_schedule(initial: float) -> Callable[[float], float]:
    """rl-zoo3's ``lin_<value>``: from ``initial`` at the start down to 0 at the end."""

    def schedule(progress_remaining: float) -> float:
        return progress_remaining * initial

    return schedule


@dataclass(frozen=True)
class BCConfig:
    """Behaviour cloning from a heuristic before PPO (see ``train/bc.py``).

    Attributes:
        teacher: a baseline spec (``baselines.parse``), e.g. ``sjf`` or ``trail:C=0.5``; ``auto``:
            the strongest heuristic of the (first) scenario, the non-oracle baseline with the
            lowest mean latency on a few of the behaviour-cloning workloads (``train/bc.py``).
        episodes: teacher episodes to record (on the training env, sim seeds from the run's seed).
        epochs: passes over the recorded pairs.
        batch_size: pairs per gradient step.
        learning_rate: Adam's step size.
        dagger_rounds: rounds of DAgger after the first fit: ``episodes`` more episodes with the
            policy acting and the teacher labelling, then ``epochs`` more passes over all pairs.
    """

    teacher: str = "auto"
    episodes: int = 20
    epochs: int = 30
    batch_size: int = 256
    learning_rate: float = 1.0e-3
    dagger_rounds: int = 0

    def __post_init__(self) -> None:
        import baselines

        if self.teacher != "auto":
            try:
                baselines.parse(self.teacher)
            except ConfigError as err:
                raise ConfigError(f"teacher: {err}") from None
        object.__setattr__(self, "episodes", check_positive("episodes", self.episodes, integer=True))
        object.__setattr__(self, "epochs", check_positive("epochs", self.epochs, integer=True))
        object.__setattr__(self, "batch_size", check_positive("batch_size", self.batch_size, integer=True))
        check_positive("learning_rate", self.learning_rate)
        object.__setattr__(self, "dagger_rounds", check_nonnegative("dagger_rounds", self.dagger_rounds, integer=True))


DEFAULT_HYPERPARAMS: dict[str, Any] = {
    "learning_rate": 3.0e-5,
    "n_steps": 256,
    "batch_size": 256,
    "n_epochs": 5,
    "gamma": 0.99,
    "gae_lambda": 0.95,
    "clip_range": 0.1,
    "ent_coef": 0.0,
    "vf_coef": 0.5,
    "max_grad_norm": 0.5,
    "target_kl": 0.05,
    "policy_kwargs": {
        "log_std_init": -3.0,
        "features_extractor_kwargs": {"embed_dim": 64, "num_heads": 4, "num_layers": 2},
    },
}


@dataclass(frozen=True)
class TrainConfig:
    """One training run (see the module docstring for the meaning of each field)."""

    env: str = "llmsched/Serve-v2"
    scenarios: tuple[TrainScenario, ...] = field(default_factory=lambda: (TrainScenario(read_scenario("chat-a100-40gb", {}, "scenario")),))
    algo: str = "ppo"
    n_timesteps: int = 300_000
    n_envs: int = 8
    vec_env: str = "vector"
    seed: int = 0
    device: str = "auto"
    hyperparams: dict[str, Any] = field(default_factory=lambda: dict(DEFAULT_HYPERPARAMS))
    reward_reference: str | None = "fcfs"
    eval_freq: int = 25_000
    eval_episodes: int = 10
    eval_seed: int = 10_000
    eval_baselines: tuple[str, ...] = ("fcfs", "trail", "srpt")
    bc: BCConfig | None = field(default_factory=BCConfig)
    save_freq: int = 0
    progress_bar: bool = True
    portfolio: tuple[str, ...] | None = None  # algo ppo_portfolio: the heuristics it picks from (None: train.portfolio.DEFAULT_PORTFOLIO)
    minibatches: str = "random"  # PPO's minibatches: random (SB3's) or by-occupancy (train.buffers)

    def __post_init__(self) -> None:
        if self.env.removeprefix("llmsched_env:") not in ENVS:
            raise fail("env", self.env, "one of " + ", ".join(ENVS))
        if not isinstance(self.scenarios, tuple) or not self.scenarios or not all(isinstance(s, TrainScenario) for s in self.scenarios):
            raise fail("scenarios", self.scenarios, "at least one scenario")
        first = self.scenarios[0].scenario.env
        for ts in self.scenarios[1:]:
            env = ts.scenario.env
            if (env.num_slots, env.action_mode, env.preemption_control) != (first.num_slots, first.action_mode, first.preemption_control):
                raise ConfigError(
                    f"scenarios: {ts.scenario.name!r} has num_slots={env.num_slots}, action_mode={env.action_mode!r}, "
                    f"preemption_control={env.preemption_control}: expected the same as {self.scenarios[0].scenario.name!r} "
                    "(one policy acts in every scenario of a mixture)"
                )
        check_choice("algo", self.algo, ALGOS)
        mode = first.action_mode
        handled = ENV_ACTION_MODE[ALGOS[self.algo][2]]
        if mode != handled:
            other = next(a for a, spec in ALGOS.items() if spec[2] == mode) if mode in ("rank", "admit") else None
            hint = f"use algo={other} for action_mode={mode!r}, or " if other else ""
            raise ConfigError(
                f"algo={self.algo!r} cannot handle action_mode={mode!r}: {hint}set action_mode={handled!r}"
            )
        object.__setattr__(self, "n_timesteps", check_nonnegative("n_timesteps", self.n_timesteps, integer=True))
        object.__setattr__(self, "n_envs", check_positive("n_envs", self.n_envs, integer=True))
        check_choice("vec_env", self.vec_env, VEC_ENVS)
        object.__setattr__(self, "seed", check_nonnegative("seed", self.seed, integer=True))
        if not isinstance(self.device, str) or not (
            self.device in ("auto", "cpu", "cuda") or (self.device.startswith("cuda:") and self.device[5:].isdigit())
        ):
            raise fail("device", self.device, "auto, cpu, cuda or cuda:N")
        self._check_hyperparams()
        object.__setattr__(self, "eval_freq", check_nonnegative("eval_freq", self.eval_freq, integer=True))
        object.__setattr__(self, "eval_episodes", check_positive("eval_episodes", self.eval_episodes, integer=True))
        object.__setattr__(self, "eval_seed", check_nonnegative("eval_seed", self.eval_seed, integer=True))
        import baselines

        for spec in self.eval_baselines:
            try:
                baselines.parse(spec)
            except ConfigError as err:
                raise ConfigError(f"eval_baselines: {err}") from None
        if self.reward_reference == "teacher" and self.bc is None:
            raise ConfigError("reward_reference='teacher' needs behaviour cloning (bc): name a baseline or null instead")
        check_reward_reference(self.reward_reference, first.reward, teacher=True)
        if self.bc is not None and not isinstance(self.bc, BCConfig):
            raise fail("bc", self.bc, "a mapping of behaviour-cloning settings or null")
        object.__setattr__(self, "save_freq", check_nonnegative("save_freq", self.save_freq, integer=True))
        from .portfolio import DEFAULT_PORTFOLIO, check_portfolio

        if not self.is_portfolio:
            if self.portfolio is not None:
                raise ConfigError(f"portfolio={self.portfolio!r} is for algo=ppo_portfolio only (algo={self.algo!r}): remove it or set algo: ppo_portfolio")
        else:
            chosen = DEFAULT_PORTFOLIO if self.portfolio is None else self.portfolio
            object.__setattr__(self, "portfolio", check_portfolio(chosen))
            if "distribution" in (self.hyperparams.get("policy_kwargs") or {}):
                raise ConfigError(
                    f"hyperparams.policy_kwargs.distribution={self.hyperparams['policy_kwargs']['distribution']!r} is invalid for "
                    "algo=ppo_portfolio: its policy is a categorical over the portfolio; expected no distribution"
                )
            if self.bc is not None and self.bc.dagger_rounds:
                raise ConfigError(
                    f"bc.dagger_rounds={self.bc.dagger_rounds} is invalid for algo=ppo_portfolio: the teacher's label is its own "
                    "index in every state, so DAgger adds nothing; expected 0"
                )
        if self.is_portfolio and self.bc is not None and self.bc.teacher != "auto":
            import baselines

            if baselines.parse(self.bc.teacher) not in [baselines.parse(n) for n in self.portfolio]:
                raise ConfigError(f"bc.teacher={self.bc.teacher!r} is not in the portfolio {list(self.portfolio)}: a portfolio agent clones one of its heuristics")
        check_choice("minibatches", self.minibatches, MINIBATCHES)
        if self.minibatches != "random" and ALGOS[self.algo][2] == "admit":
            raise ConfigError(f"minibatches={self.minibatches!r} is for algo ppo and ppo_portfolio (algo={self.algo!r}): expected random")
        if not isinstance(self.progress_bar, bool):
            raise fail("progress_bar", self.progress_bar, "true or false")

    def _check_hyperparams(self) -> None:
        object.__setattr__(self, "hyperparams", check_hyperparams(self.algo, self.hyperparams))

    @property
    def is_portfolio(self) -> bool:
        """Whether the agent picks a heuristic of ``portfolio`` at each epoch (algo ppo_portfolio)."""
        return ALGOS[self.algo][2] == "portfolio"

    @property
    def env_id(self) -> str:
        """The id with its module prefix, so that subprocesses import (register) the env."""
        return self.env if ":" in self.env else f"llmsched_env:{self.env}"

    def algo_kwargs(self) -> dict[str, Any]:
        """``hyperparams`` ready for the SB3 constructor (``lin_`` schedules resolved; the rollout
        buffer of ``minibatches``)."""
        kwargs = algo_kwargs(self.hyperparams)
        if self.minibatches == "by-occupancy":
            from .buffers import OccupancyRolloutBuffer

            kwargs["rollout_buffer_class"] = OccupancyRolloutBuffer
        return kwargs

    @property
    def scenario(self) -> Scenario:
        """The first (or only) scenario: validation runs on it."""
        return self.scenarios[0].scenario

    def env_kwargs_of(self, index: int = 0) -> dict[str, Any]:
        """``gym.make`` keywords of scenario ``index``."""
        return {"scenario": self.scenarios[index].scenario}

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["eval_baselines"] = list(self.eval_baselines)
        data["portfolio"] = None if self.portfolio is None else list(self.portfolio)
        data["scenarios"] = [{"scenario": ts.scenario.to_dict(), "weight": ts.weight} for ts in self.scenarios]
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: str = "config") -> "TrainConfig":
        """Build from plain data (YAML), rejecting unknown keys; missing keys keep the defaults."""
        if not isinstance(data, Mapping):
            raise ConfigError(f"{where}: expected a mapping of settings, got {type(data).__name__}")
        check_known_keys(where, data.keys(), [f.name for f in dataclasses.fields(cls)] + ["scenario", "env_kwargs"])
        kwargs = dict(data)
        overrides = kwargs.pop("env_kwargs", None) or {}
        if not isinstance(overrides, Mapping):
            raise fail("env_kwargs", overrides, "a mapping of gym.make keywords (overrides of the scenario)")
        if "scenario" in kwargs and "scenarios" in kwargs:
            raise ConfigError(f"{where}: give scenario (one) or scenarios (a weighted mixture), not both")
        entries = [{"scenario": kwargs.pop("scenario")}] if "scenario" in kwargs else kwargs.pop("scenarios", None)
        if entries is None:
            # no scenario: Serve-v2's default, or an older env's own defaults (configs of earlier runs)
            legacy = str(kwargs.get("env", cls.env)).removeprefix("llmsched_env:") in ("llmsched/Serve-v1", "llmsched/Serve-v0")
            entries = [{"scenario": _legacy_scenario(str(kwargs["env"])) if legacy else "chat-a100-40gb"}]
        if not isinstance(entries, (list, tuple)) or not entries:
            raise fail("scenarios", entries, "a non-empty list of {scenario: NAME, weight: W}")
        mix = []
        for i, entry in enumerate(entries):
            entry = {"scenario": entry} if isinstance(entry, (str, Scenario)) else entry
            if not isinstance(entry, Mapping) or "scenario" not in entry or set(entry) - {"scenario", "weight"}:
                raise fail(f"scenarios[{i}]", entry, "a scenario name or {scenario: NAME, weight: W}")
            scenario = read_scenario(entry["scenario"], overrides, f"{where}: scenarios[{i}]")
            mix.append(TrainScenario(scenario, entry.get("weight", 1.0)))
        kwargs["scenarios"] = tuple(mix)
        if "bc" in kwargs and kwargs["bc"] is not None and not isinstance(kwargs["bc"], (Mapping, BCConfig)):
            raise fail("bc", kwargs["bc"], "a mapping of behaviour-cloning settings or null")
        if "eval_baselines" in kwargs:
            value = kwargs["eval_baselines"]
            if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
                raise fail("eval_baselines", value, "a list of baseline specs")
        from llmsched_env.sim.config import from_dict

        return from_dict(cls, kwargs, where)  # the project's one reader: bc is built by it


def check_reward_reference(reference: str | None, reward: str, *, teacher: bool) -> None:
    """``reward_reference`` must be null or a baseline spec (or ``teacher`` where behaviour cloning
    names one), and needs the env's ``latency`` reward (``train.rewards.ReferenceReward``)."""
    if reference is None:
        return
    if not (teacher and reference == "teacher"):
        import baselines

        try:
            baselines.parse(reference)
        except ConfigError as err:
            raise ConfigError(f"reward_reference: {err}") from None
    if reward != "latency":
        raise ConfigError(f"reward_reference={reference!r} needs the env's latency reward, not reward={reward!r}: set reward_reference: null")


def read_yaml(path: str | Path) -> dict[str, Any]:
    """The mapping in a YAML config file (the project's one reader)."""
    from llmsched_env.sim.config import load_yaml

    return load_yaml(path)


def resolve_device(device: str) -> str:
    """``auto`` -> ``cuda`` when available, else ``cpu``; an unavailable CUDA device is an error."""
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ConfigError(f"device={device!r} is unavailable: this machine has no CUDA device; expected auto or cpu")
        index = int(device[5:]) if ":" in device else 0
        if index >= torch.cuda.device_count():
            raise ConfigError(
                f"device={device!r} is unavailable: {torch.cuda.device_count()} CUDA device(s); expected cuda:0 to "
                f"cuda:{torch.cuda.device_count() - 1}, auto or cpu"
            )
    return device


def check_hyperparams(algo: str, hyperparams: Any) -> dict[str, Any]:
    """``hyperparams`` of ``algo`` checked: known keys, ``lin_`` schedules, the numeric bounds of
    ``HYPERPARAM_BOUNDS``; returns them with whole numbers stored as ints."""
    if not isinstance(hyperparams, Mapping):
        raise fail("hyperparams", hyperparams, "a mapping of algorithm arguments")
    allowed = [p for p in inspect.signature(algo_class(algo).__init__).parameters if p not in ("self", *SET_BY_CONFIG)]
    check_known_keys(f"hyperparams ({algo})", hyperparams, allowed)
    kwargs = hyperparams.get("policy_kwargs", {})
    if not isinstance(kwargs, Mapping):
        raise fail("hyperparams.policy_kwargs", kwargs, "a mapping of policy arguments")
    for name in SCHEDULED:
        value = hyperparams.get(name)
        if isinstance(value, str) and not _lin_value(value) > 0:
            raise fail(f"hyperparams.{name}", value, "a positive number or lin_<number> (a linear decay from it)")
    checked = dict(hyperparams)
    for name, bounds in HYPERPARAM_BOUNDS.items():
        value = checked.get(name)
        if value is None or isinstance(value, str) and name in SCHEDULED or callable(value):
            continue  # unset, a lin_ schedule (checked above) or a schedule function
        checked[name] = check_number(f"hyperparams.{name}", value, **bounds)
    return checked


def algo_kwargs(hyperparams: Mapping[str, Any]) -> dict[str, Any]:
    """Checked ``hyperparams`` ready for the SB3 constructor (``lin_`` schedules resolved)."""
    kwargs = dict(hyperparams)
    for name in SCHEDULED:
        if isinstance(kwargs.get(name), str):
            kwargs[name] = linear_schedule(_lin_value(kwargs[name]))
    kwargs["policy_kwargs"] = dict(kwargs.get("policy_kwargs", {}))
    return kwargs
