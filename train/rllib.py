"""RLlib (Ray's RL library) as a second training backend: PPO on ``llmsched/Serve-v2`` with many env runners.

    pip install -e ".[ray]"
    llmsched-train --backend rllib -c configs/train/rllib_ppo.yaml            # a local Ray
    llmsched-train --backend rllib --ray-address auto --num-env-runners 32    # a running cluster
    llmsched-eval --policies fcfs rllib:runs/<run>/checkpoint                 # evaluate the checkpoint

What this module adds to RLlib (its new API stack: RLModule, env runners, connectors):

* :func:`register_envs`: the Gymnasium registry of ``import llmsched_env`` does not reach Ray's
  worker processes, so every env id is registered with ``ray.tune.register_env`` under its own
  name; the creator imports the package (registering it there) and builds the env from plain
  data (the scenario as a mapping), with the optional reference-relative reward
  (``train.rewards.ReferenceReward``) of the SB3 backend.
* :class:`SetRankModule`: the ``Dict`` observation read as a set, by the SB3 policy's own torch
  pieces (``train.networks``: :class:`SetEncoder` with the padding mask, :class:`SetHeads`,
  :class:`SlotScores`), as a ``TorchRLModule`` with the ``ValueFunctionAPI`` that PPO needs.
  RLlib's default encoders refuse ``Dict`` observations; this module takes them as they are.
  Rank mode (``Box(K,)``): the Gaussian mean of slot i is ``tanh(w . h_i)``, one learned log-std
  shared by the slots (a per-slot one would break the slots' symmetry).
* :class:`MaskedDiagGaussian`: the action distribution whose log-probability, entropy and KL sum
  over the *occupied* slots only, as :class:`train.networks.SetRankPolicy` does (the env ignores
  the scores of empty slots); the module passes the mask inside the distribution inputs.
* :class:`RLlibConfig` (``configs/train/rllib_ppo.yaml``) and :func:`train`: build the PPO
  algorithm, run its iterations, save an RLlib checkpoint (``Algorithm.save_to_path``) with
  ``llmsched_info.json`` beside it: what the agent was trained on, as the SB3 backend records
  in its zip.
* :func:`load_policy`: a checkpoint as an ``llmsched-eval`` policy (spec ``rllib:PATH``): the
  RLModule restored from the checkpoint, acting deterministically (the mean scores) in its env.

Only rank mode without preemption control (``action_mode: rank``, ``preemption_control: false``)
is supported here; admit mode needs an action-masking module, left to the SB3 backend.
This module imports Ray at import time: import it only when the ``ray`` extra is installed.
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import gymnasium as gym
import numpy as np
import torch
from ray.rllib.core.columns import Columns
from ray.rllib.core.distribution.torch.torch_distribution import TorchDiagGaussian
from ray.rllib.core.rl_module.apis import ValueFunctionAPI
from ray.rllib.core.rl_module.torch import TorchRLModule
from torch import nn

from llmsched_env.scenarios import Scenario
from llmsched_env.sim.api import SimResult
from llmsched_env.sim.config import SimConfig
from llmsched_env.sim.validation import ConfigError, check_known_keys, check_nonnegative, check_positive, fail

from .config import check_reward_reference, read_scenario
from .networks import SetEncoder, SetHeads, SlotScores
from .ray_session import init

ENVS = ("llmsched/Serve-v2",)  # the envs this backend trains on
INFO_FILE = "llmsched_info.json"  # beside the RLlib checkpoint: what the agent was trained on
ALGO = "rllib-ppo"
MODULE_PATH = ("learner_group", "learner", "rl_module", "default_policy")  # the RLModule inside a checkpoint
MODEL_KEYS = ("embed_dim", "num_heads", "num_layers", "ff_dim", "value_dim", "log_std_init", "critic_globals")
# PPOConfig settings that the rest of the config (or the backend) sets
SET_BY_CONFIG = ("self", "kwargs", "model", "learner_class", "learner_connector", "lr_schedule", "vf_share_layers")


# -- environments ---------------------------------------------------------------------------------


def make_env(env_config: Mapping[str, Any]) -> gym.Env:
    """The env of ``env_config`` (``{"env": id, "scenario": mapping, "reward_reference": name or
    None}``), built in whichever process asks: the creator :func:`register_envs` gives Ray."""
    import llmsched_env  # noqa: F401  (registers the environments in this process)

    scenario = read_scenario(dict(env_config["scenario"]), {}, "env_config.scenario")
    env = gym.make(env_config["env"], scenario=scenario)
    reference = env_config.get("reward_reference")
    if reference is not None:
        from .rewards import ReferenceReward

        env = ReferenceReward(env, reference=reference)
    return env


def register_envs() -> None:
    """Register every env of :data:`ENVS` with Ray Tune (RLlib looks env names up there)."""
    from ray.tune.registry import register_env

    for env_id in ENVS:
        register_env(env_id, lambda config, env_id=env_id: make_env({**config, "env": env_id}))


# -- the RLModule -----------------------------------------------------------------------------------


class MaskedDiagGaussian(TorchDiagGaussian):
    """A diagonal Gaussian over the slot scores whose log-probability, entropy and KL count the
    occupied slots only. Its inputs are ``[mean (K) | log_std (K) | occupied (K, 0 or 1)]``."""

    def __init__(self, loc: torch.Tensor, scale: torch.Tensor, weight: torch.Tensor | None = None) -> None:
        super().__init__(loc=loc, scale=scale)
        self.weight = torch.ones_like(loc) if weight is None else weight

    def logp(self, value: torch.Tensor) -> torch.Tensor:
        return (self._dist.log_prob(value) * self.weight).sum(-1)

    def entropy(self) -> torch.Tensor:
        return (self._dist.entropy() * self.weight).sum(-1)

    def kl(self, other: Any) -> torch.Tensor:
        return (torch.distributions.kl.kl_divergence(self._dist, other._dist) * self.weight).sum(-1)

    @staticmethod
    def required_input_dim(space: gym.Space, **kwargs: Any) -> int:
        return int(np.prod(space.shape)) * 3

    @classmethod
    def from_logits(cls, logits: torch.Tensor, **kwargs: Any) -> "MaskedDiagGaussian":
        loc, log_std, weight = logits.chunk(3, dim=-1)
        return cls(loc=loc, scale=log_std.exp(), weight=weight)


class SetRankModule(TorchRLModule, ValueFunctionAPI):
    """PPO's RLModule for rank mode: the set encoder over the slots (see the module docstring).

    ``model_config``: ``embed_dim``, ``num_heads``, ``num_layers``, ``ff_dim``, ``critic_globals``
    (the set encoder's), ``value_dim`` (the critic's hidden width) and ``log_std_init``.
    """

    def setup(self) -> None:
        config = dict(self.model_config or {})
        space = self.action_space
        num_slots = self.observation_space["requests"].shape[0]
        if not isinstance(space, gym.spaces.Box) or space.shape != (num_slots,):
            raise ConfigError(
                f"the RLlib backend trains rank mode without preemption control: action space {space} is not Box({num_slots},); "
                "expected action_mode='rank', preemption_control=false (admit mode: the SB3 backend)"
            )
        encoder_kwargs = {k: config[k] for k in ("embed_dim", "num_heads", "num_layers", "ff_dim", "critic_globals") if k in config}
        self.encoder = SetEncoder(self.observation_space, **encoder_kwargs)
        self.heads = SetHeads(self.encoder.critic_dim, self.encoder.embed_dim, num_slots, config.get("value_dim", 64))
        self.scores = SlotScores(self.encoder.embed_dim, num_slots, space)
        self.value_net = nn.Linear(self.heads.latent_dim_vf, 1)
        self.log_std = nn.Parameter(torch.tensor(float(config.get("log_std_init", -3.0))))
        self.action_dist_cls = MaskedDiagGaussian

    def mean_scores(self, obs: dict[str, torch.Tensor]) -> torch.Tensor:
        """The deterministic action: the mean score of each slot, (B, K)."""
        return self.scores(self.heads.forward_actor(self.encoder(obs)))

    def _dist_inputs(self, obs: dict[str, torch.Tensor], features: torch.Tensor) -> torch.Tensor:
        mean = self.scores(self.heads.forward_actor(features))
        log_std = self.log_std.expand_as(mean)
        occupied = (obs["mask"] > 0.5).to(mean.dtype)
        return torch.cat([mean, log_std, occupied], dim=-1)

    def _forward(self, batch: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        obs = batch[Columns.OBS]
        return {Columns.ACTION_DIST_INPUTS: self._dist_inputs(obs, self.encoder(obs))}

    def _forward_train(self, batch: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        obs = batch[Columns.OBS]
        features = self.encoder(obs)
        return {Columns.ACTION_DIST_INPUTS: self._dist_inputs(obs, features), Columns.EMBEDDINGS: features}

    def compute_values(self, batch: dict[str, Any], embeddings: Any = None) -> torch.Tensor:
        features = self.encoder(batch[Columns.OBS]) if embeddings is None else embeddings
        return self.value_net(self.heads.forward_critic(features)).squeeze(-1)


# -- configuration --------------------------------------------------------------------------------

DEFAULT_HYPERPARAMS: dict[str, Any] = {
    "lr": 3.0e-4,
    "gamma": 0.99,
    "lambda_": 0.95,
    "clip_param": 0.2,
    "entropy_coeff": 0.0,
    "vf_loss_coeff": 0.5,
    "grad_clip": 0.5,
    "train_batch_size_per_learner": 2048,
    "minibatch_size": 256,
    "num_epochs": 5,
}
DEFAULT_MODEL: dict[str, Any] = {"embed_dim": 64, "num_heads": 4, "num_layers": 2, "log_std_init": -3.0}


@dataclass(frozen=True)
class RLlibConfig:
    """One RLlib PPO run (``configs/train/rllib_ppo.yaml`` writes out the defaults).

    Attributes:
        env: the env id (``llmsched/Serve-v2``).
        scenario: the scenario (name, file or mapping; ``env_kwargs`` overrides applied when read).
        iterations: PPO iterations (``Algorithm.train()`` calls), each one sampling
            ``hyperparams.train_batch_size_per_learner`` env steps and updating on them.
        num_env_runners: Ray actors that step envs in parallel (0: sample in the driver).
        num_envs_per_env_runner: envs each runner steps (a Gymnasium vector env).
        seed: RLlib's seed (the env runners' envs and torch).
        hyperparams: ``PPOConfig.training`` arguments (``lr``, ``gamma``, ``lambda_``, ``clip_param``,
            ``train_batch_size_per_learner``, ``minibatch_size``, ``num_epochs``, ...).
        model: the RLModule's ``model_config`` (:class:`SetRankModule`).
        reward_reference: learn the improvement over this baseline on the same workload
            (``train.rewards``); null: the env's reward.
        checkpoint_freq: iterations between checkpoints (0: only the final one).
    """

    env: str = "llmsched/Serve-v2"
    scenario: Scenario = field(default_factory=lambda: read_scenario("chat-a100-40gb", {}, "scenario"))
    iterations: int = 20
    num_env_runners: int = 2
    num_envs_per_env_runner: int = 1
    seed: int = 0
    hyperparams: dict[str, Any] = field(default_factory=lambda: dict(DEFAULT_HYPERPARAMS))
    model: dict[str, Any] = field(default_factory=lambda: dict(DEFAULT_MODEL))
    reward_reference: str | None = "fcfs"
    checkpoint_freq: int = 0

    def __post_init__(self) -> None:
        if self.env.removeprefix("llmsched_env:") not in ENVS:
            raise fail("env", self.env, "one of " + ", ".join(ENVS))
        if getattr(self.scenario, "cluster", None) is not None:
            raise ConfigError(
                f"scenario {self.scenario.name!r} is a cluster scenario: its agent is a router, trained by the SB3 backend "
                "(llmsched-train --scenario NAME); the RLlib backend trains one engine's scheduler"
            )
        options = self.scenario.env
        if options.action_mode != "rank" or options.preemption_control:
            raise ConfigError(
                f"scenario {self.scenario.name!r}: action_mode={options.action_mode!r}, preemption_control={options.preemption_control}: "
                "the RLlib backend trains action_mode='rank' without preemption control (admit mode: the SB3 backend)"
            )
        check_nonnegative("iterations", self.iterations, integer=True)
        check_nonnegative("num_env_runners", self.num_env_runners, integer=True)
        check_positive("num_envs_per_env_runner", self.num_envs_per_env_runner, integer=True)
        check_nonnegative("seed", self.seed, integer=True)
        check_nonnegative("checkpoint_freq", self.checkpoint_freq, integer=True)
        if not isinstance(self.hyperparams, Mapping):
            raise fail("hyperparams", self.hyperparams, "a mapping of PPOConfig.training arguments")
        check_known_keys("hyperparams (PPOConfig.training)", self.hyperparams, hyperparam_names())
        if not isinstance(self.model, Mapping):
            raise fail("model", self.model, "a mapping of " + ", ".join(MODEL_KEYS))
        check_known_keys("model", self.model, MODEL_KEYS)
        check_reward_reference(self.reward_reference, options.reward, teacher=False)  # no cloning here: no teacher

    @property
    def env_config(self) -> dict[str, Any]:
        """What the env runners build their envs from (plain data: it travels to Ray workers)."""
        return {"scenario": self.scenario.to_dict(), "reward_reference": self.reward_reference}

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["scenario"] = self.scenario.to_dict()
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: str = "config") -> "RLlibConfig":
        """Build from plain data (YAML), rejecting unknown keys; missing keys keep the defaults."""
        if not isinstance(data, Mapping):
            raise ConfigError(f"{where}: expected a mapping of settings, got {type(data).__name__}")
        check_known_keys(where, data.keys(), [f.name for f in dataclasses.fields(cls)] + ["env_kwargs"])
        kwargs = dict(data)
        overrides = kwargs.pop("env_kwargs", None) or {}
        if not isinstance(overrides, Mapping):
            raise fail("env_kwargs", overrides, "a mapping of gym.make keywords (overrides of the scenario)")
        kwargs["scenario"] = read_scenario(kwargs.get("scenario", "chat-a100-40gb"), overrides, f"{where}: scenario")
        for name, defaults in (("hyperparams", DEFAULT_HYPERPARAMS), ("model", DEFAULT_MODEL)):
            if isinstance(kwargs.get(name), Mapping):
                kwargs[name] = {**defaults, **kwargs[name]}
        return cls(**kwargs)


def hyperparam_names() -> list[str]:
    """The keyword arguments of ``PPOConfig.training`` (and of the base ``AlgorithmConfig.training``)."""
    from ray.rllib.algorithms.algorithm_config import AlgorithmConfig
    from ray.rllib.algorithms.ppo import PPOConfig

    names = [*inspect.signature(PPOConfig.training).parameters, *inspect.signature(AlgorithmConfig.training).parameters]
    return sorted({n for n in names if n not in SET_BY_CONFIG})


def ppo_config(config: RLlibConfig) -> Any:
    """The ``PPOConfig`` of a run: the registered env, the env runners, the set-encoder RLModule."""
    from ray.rllib.algorithms.ppo import PPOConfig
    from ray.rllib.core.rl_module.rl_module import RLModuleSpec

    return (
        PPOConfig()
        .environment(config.env.removeprefix("llmsched_env:"), env_config=config.env_config)
        .env_runners(num_env_runners=config.num_env_runners, num_envs_per_env_runner=config.num_envs_per_env_runner)
        .rl_module(rl_module_spec=RLModuleSpec(module_class=SetRankModule, model_config=dict(config.model)))
        .training(**config.hyperparams)
        .debugging(seed=config.seed)
    )


# -- training -------------------------------------------------------------------------------------


def training_info(config: RLlibConfig) -> dict[str, Any]:
    """What ``llmsched_info.json`` records: the algorithm, env, scenario and the agent's options."""
    from .agents import scenario_info

    return scenario_info(ALGO, config.env, config.scenario)


def save_checkpoint(algo: Any, config: RLlibConfig, path: Path) -> Path:
    """An RLlib checkpoint of ``algo`` at ``path`` with ``llmsched_info.json`` beside it."""
    algo.save_to_path(str(path.resolve()))
    (path / INFO_FILE).write_text(json.dumps(training_info(config), indent=1) + "\n")
    return path


def train(config: RLlibConfig, out: Path, address: str | None = None, say: Any = print) -> tuple[Path, list[dict[str, float]]]:
    """Train PPO for ``config.iterations`` iterations; returns the final checkpoint's path and
    one line of figures per iteration (also in ``out/progress.jsonl``)."""
    import yaml  # type: ignore[import-untyped]
    from ray.rllib.utils.metrics import ENV_RUNNER_RESULTS, EPISODE_RETURN_MEAN, NUM_ENV_STEPS_SAMPLED_LIFETIME

    out.mkdir(parents=True, exist_ok=True)
    (out / "config.yaml").write_text(yaml.safe_dump(config.to_dict(), sort_keys=False))
    init(address, None)
    register_envs()
    algo = ppo_config(config).build_algo()
    history: list[dict[str, float]] = []
    try:
        start = time.perf_counter()
        with (out / "progress.jsonl").open("w") as log:
            for iteration in range(1, config.iterations + 1):
                result = algo.train()
                runners = result.get(ENV_RUNNER_RESULTS, {})
                row = {
                    "iteration": iteration,
                    "env_steps": int(result.get(NUM_ENV_STEPS_SAMPLED_LIFETIME, runners.get(NUM_ENV_STEPS_SAMPLED_LIFETIME, 0))),
                    "episode_return_mean": float(runners.get(EPISODE_RETURN_MEAN, math.nan)),
                    "wall_s": time.perf_counter() - start,
                }
                history.append(row)
                log.write(json.dumps({k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in row.items()}) + "\n")
                log.flush()
                returns = row["episode_return_mean"]
                ended = f"episode return mean {returns:.3f}" if math.isfinite(returns) else "no episode ended yet"
                say(f"llmsched-train: iteration {iteration}/{config.iterations}: {row['env_steps']:,} env steps, {ended}, {row['wall_s']:.0f} s")
                if config.checkpoint_freq and iteration % config.checkpoint_freq == 0 and iteration < config.iterations:
                    save_checkpoint(algo, config, out / "checkpoints" / f"iteration_{iteration:05d}")
        checkpoint = save_checkpoint(algo, config, out / "checkpoint")
    finally:
        algo.stop()
    return checkpoint, history


# -- evaluation -----------------------------------------------------------------------------------


def read_info(path: str | Path) -> dict[str, Any]:
    """The ``llmsched_info.json`` of a checkpoint saved by :func:`save_checkpoint`."""
    file = Path(path) / INFO_FILE
    try:
        info = json.loads(file.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise ConfigError(f"checkpoint {str(path)!r} was not saved by llmsched-train --backend rllib (no readable {INFO_FILE}: {err})") from None
    if not isinstance(info, dict) or info.get("algo") != ALGO:
        raise ConfigError(f"checkpoint {str(path)!r}: {INFO_FILE} does not describe an {ALGO} agent")
    return info


def load_module(path: str | Path) -> SetRankModule:
    """The trained RLModule of a checkpoint (no Ray session needed)."""
    import logging

    from ray.rllib.core.rl_module.rl_module import RLModule

    logging.disable(logging.WARNING)  # RLlib warns that its own RLModuleConfig is deprecated, at every restore
    try:
        module = RLModule.from_checkpoint(str(Path(path).resolve().joinpath(*MODULE_PATH)))
    finally:
        logging.disable(logging.NOTSET)
    module.eval()
    return module  # type: ignore[return-value]


@dataclass
class RLlibAgent:
    """An RLlib checkpoint as an ``llmsched-eval`` policy: it runs its own env over any SimConfig."""

    name: str
    module: SetRankModule
    options: dict[str, Any]  # the env options it was trained with (train.agents.AGENT_OPTIONS)

    def act(self, observation: dict[str, np.ndarray], env: gym.Env) -> np.ndarray:
        """The deterministic action: the mean scores of the occupied slots (which come first;
        the set encoder ignores the empty ones), clipped to the action space."""
        space = env.action_space
        n = max(int(observation["mask"].sum()), 1)
        with torch.inference_mode():
            obs = {key: torch.as_tensor(value[:n] if key != "globals" else value).unsqueeze(0) for key, value in observation.items()}
            mean = self.module.mean_scores(obs)[0].numpy()
        action = np.zeros(space.shape, dtype=np.float32)
        action[:n] = mean
        return np.clip(action, space.low, space.high)

    def simulate(self, config: SimConfig, seed: int) -> SimResult:
        """Run ``config``'s workload of ``seed`` with the agent acting (what ``simulate`` gives)."""
        from llmsched_env.envs.serve import ServeEnv

        from .agents import episode_result, play_episode

        env = ServeEnv.from_config(config, **self.options)
        info = play_episode(env, seed, lambda observation: self.act(observation, env))
        return episode_result(env, info, self.name, seed)


def load_policy(path: str | Path, name: str | None = None) -> RLlibAgent:
    """A checkpoint saved by ``llmsched-train --backend rllib`` as an ``llmsched-eval`` policy
    (named ``name``, by default after its folder)."""
    torch.set_num_threads(1)  # small networks; evaluations run one process per core
    info = read_info(path)
    return RLlibAgent(name=name or Path(path).name, module=load_module(path), options=dict(info["agent_options"]))


def main_note(checkpoint: Path, history: list[dict[str, float]]) -> str:
    """The closing line of a run."""
    last = history[-1] if history else {"env_steps": 0, "wall_s": 0.0}
    returns = [row["episode_return_mean"] for row in history if math.isfinite(row["episode_return_mean"])]
    ended = f"last episode return mean {returns[-1]:.3f}" if returns else "no episode ended"
    return (
        f"llmsched-train: done: {len(history)} PPO iterations, {int(last['env_steps']):,} env steps in {last['wall_s']:.0f} s; "
        f"{ended}; checkpoint {checkpoint} (evaluate: llmsched-eval --policies fcfs rllib:{checkpoint})"
    )
