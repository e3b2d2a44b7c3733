"""Routing agents: MaskablePPO on ``llmsched/Cluster-v0``, trained by ``llmsched-train`` on a
cluster scenario and evaluated by ``llmsched-eval`` beside the routing baselines.

    llmsched-train --scenario cluster-chat-multiturn -n 80000     # about 3 min on 2 cores
    llmsched-eval --scenarios cluster-chat-multiturn --policies all-routers runs/<run>/best_model.zip

A cluster scenario trains a router, not a scheduler: each replica schedules FCFS and the agent
picks the replica of each arriving request (``Discrete(N)`` with the env's action masks). There is
no behaviour cloning (the routers act on the simulator's state, not through the env) and the reward
is the env's own (minus the requests in the system). Training episodes are the scenario's
``env.episode_requests`` long; every ``eval_freq`` steps the agent plays the validation workloads
(sim seeds ``eval_seed + k``, ``eval_requests`` each, never trained on) deterministically, and
TensorBoard gets ``eval/<metric>`` for the agent and, in sibling runs ``baseline-<router>``, the
same tags for the routers on the same workloads (overlaid); the best model so far is ``best_model.zip``.

:class:`TrainedRouter` is a saved model as a :class:`~llmsched_env.sim.cluster.Router`: it builds
the env's observation from the cluster itself (``observe_cluster``), so ``Cluster(config).run(it)``
is exactly the env episode with the model acting.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from llmsched_env import scenarios
from llmsched_env.envs.cluster import observe_cluster, route_mask
from llmsched_env.sim.cluster import Cluster, ClusterConfig
from llmsched_env.sim.validation import ConfigError, check_nonnegative, check_positive

EXIT_INTERRUPTED = 130
ENV_ID = "llmsched/Cluster-v0"
ALGO = "ppo_mask"
DEFAULT_HYPERPARAMS = {"n_steps": 1024, "batch_size": 256, "learning_rate": 3e-4, "gamma": 0.95, "ent_coef": 0.01}
METRICS = {"e2e_mean": "e2e_mean_s", "e2e_p99": "e2e_p99_s", "ttft_mean": "ttft_mean_s", "prefix_hit_rate": "prefix_hit_rate_tokens"}
#: flags of llmsched-train that only mean something for a scheduling agent on Serve
SERVE_ONLY_FLAGS = ("env", "vec_env", "minibatches", "bc_teacher", "bc_episodes", "bc_epochs", "reward_reference", "trained_agent", "save_freq")


@dataclass(frozen=True)
class RouterTrainConfig:
    """Training a routing agent.

    Attributes:
        scenario: a cluster scenario of ``llmsched_env.scenarios`` (``cluster:`` section).
        n_timesteps: env steps (one routed request each).
        n_envs: environments stepped together (SB3's DummyVecEnv).
        seed: seeds python, numpy, torch and env ``i`` with ``seed + i``.
        device: torch device (auto: CUDA when present).
        episode_requests: requests per training episode (None: the scenario's ``env.episode_requests``).
        eval_requests: requests per validation workload (None: the scenario's evaluation length).
        eval_episodes: validation workloads, sim seeds ``eval_seed``, ``eval_seed + 1``, ...
        eval_seed: the first validation sim seed (training episodes draw theirs from the env's RNG).
        eval_freq: env steps between evaluations (0: only at the start and the end).
        eval_baselines: routers the agent is compared with on the validation workloads.
        hyperparams: keyword arguments of ``sb3_contrib.MaskablePPO``.
    """

    scenario: str = "cluster-chat-multiturn"
    n_timesteps: int = 80_000
    n_envs: int = 1
    seed: int = 0
    device: str = "auto"
    episode_requests: int | None = None
    eval_requests: int | None = 1000
    eval_episodes: int = 5
    eval_seed: int = 10_000
    eval_freq: int = 20_000
    eval_baselines: tuple[str, ...] = ("round-robin", "least-outstanding", "prefix-affinity", "weighted")
    hyperparams: dict[str, Any] = field(default_factory=lambda: dict(DEFAULT_HYPERPARAMS))

    def __post_init__(self) -> None:
        if scenarios.get(self.scenario).cluster is None:
            raise ConfigError(f"scenario={self.scenario!r} is not a cluster scenario: expected one of {', '.join(scenarios.cluster_names())}")
        store = lambda name, value: object.__setattr__(self, name, value)  # noqa: E731  (frozen dataclass)
        for name in ("n_timesteps", "n_envs", "eval_episodes"):
            store(name, check_positive(name, getattr(self, name), integer=True))
        for name in ("episode_requests", "eval_requests"):
            if getattr(self, name) is not None:
                store(name, check_positive(name, getattr(self, name), integer=True))
        for name in ("seed", "eval_seed", "eval_freq"):
            store(name, check_nonnegative(name, getattr(self, name), integer=True))
        from baselines.routing import parse_router

        for spec in self.eval_baselines:
            try:
                parse_router(spec)
            except ConfigError as err:
                raise ConfigError(f"eval_baselines: {err}") from None
        from .config import check_hyperparams

        object.__setattr__(self, "hyperparams", check_hyperparams(ALGO, self.hyperparams))

    def cluster(self, num_requests: int | None) -> ClusterConfig:
        return scenarios.cluster_config(self.scenario, num_requests=num_requests)

    @property
    def train_requests(self) -> int:
        return self.episode_requests or scenarios.get(self.scenario).env.episode_requests


def is_cluster_scenario(name: str) -> bool:
    """Whether ``name`` is a cluster scenario (errors for unknown names come later, with the list)."""
    try:
        return scenarios.get(name).cluster is not None
    except ConfigError:
        return False


def config_from_args(args: argparse.Namespace, pairs: Any) -> RouterTrainConfig:
    """The router config from ``llmsched-train``'s flags; the flags of scheduling agents are errors."""
    if args.config:
        raise ConfigError(f"--config {args.config!r}: a routing agent is configured by flags only (--scenario, -n, --hyperparams, ...)")
    given = [f"--{flag.replace('_', '-')}" for flag in SERVE_ONLY_FLAGS if getattr(args, flag, None) not in (None, False)]
    if args.no_bc:
        given.append("--no-bc")
    if args.algo not in (None, ALGO):
        given.append(f"--algo {args.algo}")
    if given:
        raise ConfigError(f"{', '.join(given)}: not for a routing agent (cluster scenario {args.scenario[0]!r}); it trains MaskablePPO on {ENV_ID}")
    if len(args.scenario) != 1:
        raise ConfigError(f"--scenario {' '.join(args.scenario)}: a routing agent trains on one cluster scenario")
    data: dict[str, Any] = {"scenario": args.scenario[0]}
    for flag in ("n_timesteps", "n_envs", "seed", "device", "eval_freq", "eval_episodes"):
        if getattr(args, flag) is not None:
            data[flag] = getattr(args, flag)
    if args.env_kwargs:
        extra = pairs("--env-kwargs", args.env_kwargs)
        unknown = sorted(set(extra) - {"episode_requests", "eval_requests"})
        if unknown:
            raise ConfigError(f"--env-kwargs {', '.join(unknown)}: a routing agent takes episode_requests and eval_requests")
        data.update(extra)
    if args.hyperparams:
        data["hyperparams"] = {**DEFAULT_HYPERPARAMS, **pairs("--hyperparams", args.hyperparams)}
    return RouterTrainConfig(**data)


@dataclass
class TrainedRouter:
    """A saved routing model as a :class:`~llmsched_env.sim.cluster.Router` (deterministic)."""

    name: str
    model: Any

    def reset(self, seed: int) -> None:
        """Nothing to reset: the model acts deterministically on the cluster's state."""

    def route(self, request: Any, cluster: Cluster) -> int:
        obs = observe_cluster(cluster, request, cluster.config.workload.num_requests)
        action, _ = self.model.predict(obs, deterministic=True, action_masks=route_mask(cluster, request))
        return int(action)


def validation(config: ClusterConfig, router: Any, seeds: Sequence[int]) -> dict[str, float]:
    """Mean over the validation workloads of ``seeds`` of each ``METRICS`` figure, ``router`` routing."""
    from .agents import mean_metrics

    return mean_metrics([Cluster(config, seed=s).run(router).summary for s in seeds], METRICS)


def train_router(config: RouterTrainConfig, out: Path, tb_dir: Path, quiet: bool, progress: bool, num_threads: int | None) -> int:
    """Train, evaluate on held-out workloads, save ``final_model.zip`` and ``best_model.zip``."""
    import gymnasium as gym
    import torch
    import yaml  # type: ignore[import-untyped]
    from sb3_contrib import MaskablePPO
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.logger import configure
    from stable_baselines3.common.monitor import Monitor
    from stable_baselines3.common.utils import set_random_seed
    from stable_baselines3.common.vec_env import DummyVecEnv

    from baselines.routing import parse_router

    from .agents import attach_info
    from .callbacks import tag_name, tensorboard_writer
    from .config import algo_kwargs, resolve_device

    device = resolve_device(config.device)
    torch.set_num_threads(num_threads or 1)
    say = (lambda *a: None) if quiet else print
    out.mkdir(parents=True, exist_ok=True)
    data = {**config.__dict__, "eval_baselines": list(config.eval_baselines)}
    (out / "config.yaml").write_text(yaml.safe_dump({"router": data}, sort_keys=False))
    set_random_seed(config.seed)
    seeds = [config.eval_seed + k for k in range(config.eval_episodes)]
    eval_cluster = config.cluster(config.eval_requests)
    baselines = {spec: validation(eval_cluster, parse_router(spec), seeds) for spec in config.eval_baselines}

    def make_env(rank: int) -> Any:
        def thunk() -> Any:
            env = Monitor(gym.make(ENV_ID, scenario=config.scenario, num_requests=config.train_requests))
            env.reset(seed=config.seed + rank)
            return env

        return thunk

    venv = DummyVecEnv([make_env(i) for i in range(config.n_envs)])
    model = MaskablePPO("MultiInputPolicy", venv, seed=config.seed, device=device, verbose=0, **algo_kwargs(config.hyperparams))
    attach_info(model, ALGO, ENV_ID, scenarios.get(config.scenario))
    model.set_logger(configure(str(tb_dir), ["tensorboard"]))
    best = {"e2e_mean": float("inf")}

    class Evaluate(BaseCallback):
        """The agent and the routers on the validation workloads, every ``eval_freq`` steps."""

        last = 0

        def evaluate(self) -> dict[str, float]:
            self.last = self.num_timesteps
            mine = validation(eval_cluster, TrainedRouter("agent", self.model), seeds)
            for metric, value in mine.items():
                self.logger.record(f"eval/{metric}", value)
            for spec, writer in self.writers.items():  # one run per router beside the agent's: overlaid charts
                for metric, value in baselines[spec].items():
                    writer.add_scalar(f"eval/{metric}", value, self.num_timesteps)
                writer.flush()
            if mine["e2e_mean"] < best["e2e_mean"]:
                best.update(mine)
                self.model.save(out / "best_model.zip")
            self.logger.dump(self.num_timesteps)
            say(f"eval @ {self.num_timesteps:,} steps: e2e mean {mine['e2e_mean']:.3f} s (best {best['e2e_mean']:.3f}; "
                + ", ".join(f"{s} {r['e2e_mean']:.3f}" for s, r in baselines.items()) + ")")
            return mine

        writers: dict[str, Any] = {}

        def _on_training_start(self) -> None:
            writer = tensorboard_writer(self.logger)
            if writer is not None:
                from torch.utils.tensorboard import SummaryWriter

                self.writers = {s: SummaryWriter(str(Path(writer.log_dir) / f"baseline-{tag_name(s)}")) for s in baselines}
            self.evaluate()

        def close(self) -> None:
            for writer in self.writers.values():
                writer.close()

        def _on_step(self) -> bool:
            if config.eval_freq and self.num_timesteps - self.last >= config.eval_freq:
                self.evaluate()
            return True

    callback = Evaluate()
    say(f"llmsched-train: {ALGO} router on {ENV_ID}, scenario {config.scenario} ({eval_cluster.num_replicas} replicas), "
        f"{config.n_envs} envs, device {device}, run {out}")
    start = time.perf_counter()
    interrupted = False
    try:
        model.learn(config.n_timesteps, callback=callback, progress_bar=progress and not quiet)
        callback.evaluate()
    except KeyboardInterrupt:
        interrupted = True
    finally:
        venv.close()
        callback.close()
    model.save(out / "final_model.zip")
    elapsed = time.perf_counter() - start
    print(
        f"llmsched-train: {'interrupted' if interrupted else 'done'}: {model.num_timesteps:,} steps in {elapsed:.0f} s; "
        f"best validation e2e mean {best['e2e_mean']:.3f} s ("
        + ", ".join(f"{s} {r['e2e_mean']:.3f}" for s, r in baselines.items())
        + f"; {len(seeds)} workloads of {eval_cluster.workload.num_requests} requests); models in {out}",
        file=sys.stdout,
    )
    return EXIT_INTERRUPTED if interrupted else 0


def load_policy(path: str | Path, device: str = "cpu") -> TrainedRouter:
    """A routing model saved by ``llmsched-train`` as a router for ``llmsched-eval`` (named after its file)."""
    import torch

    from .agents import load_model

    torch.set_num_threads(1)
    return TrainedRouter(name=Path(path).name.removesuffix(".zip"), model=load_model(path, device=device))
