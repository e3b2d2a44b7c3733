"""``llmsched-train`` / ``python -m train``: train a scheduling agent for ``llmsched/Serve-v1``.

    llmsched-train                                   # the built-in default (configs/train/default.yaml)
    llmsched-train -c configs/train/serve_admit.yaml # MaskablePPO, admit mode
    llmsched-train -n 200000 --n-envs 4 --seed 3 --env-kwargs num_slots:32 load:0.95
    llmsched-train --hyperparams learning_rate:lin_3e-4 n_steps:512 --no-bc
    llmsched-train -i runs/<run>/best_model.zip -n 500000   # resume training
    tensorboard --logdir runs                         # eval/* curves against the baselines
    llmsched-train --backend rllib -c configs/train/rllib_ppo.yaml   # RLlib PPO, Ray env runners (train.rllib)

Flags follow rl-zoo3 where they overlap (``--algo``, ``--env``, ``--env-kwargs``, ``--seed``,
``--device``, ``-tb``, ``--n-envs``, ``--eval-freq``, ``-n``, ``-i``, ``-f``, ``--hyperparams``,
``--vec-env``, ``--eval-episodes``, ``--save-freq``, ``--num-threads``, ``-P``); ``key:value`` values are read as YAML
(``64`` is a number, ``[1, 2]`` a list, ``{a: 1}`` a mapping). A flag overrides the config file.

The run directory (``--out``, default ``<log folder>/<env>__<algo>__<seed>__<unix time>``) gets
``final_model.zip``, ``best_model.zip`` (lowest validation mean e2e), ``config.yaml`` (the resolved
config: ``-c`` it to rerun), ``run.yaml`` (device, seeds, versions, command line) and ``tb/``.
Bad input (unknown algorithm, env or key, an action mode the algorithm cannot handle, CUDA asked
for but absent, ...) exits with code 2 and one line naming what is allowed.

``--backend rllib`` (the ``ray`` extra) trains with RLlib instead (``train/rllib.py``): its config
file is ``configs/train/rllib_ppo.yaml``'s layout; ``--ray-address``, ``--iterations`` and
``--num-env-runners`` are its own flags, and ``--seed``, ``--scenario`` (one), ``--env-kwargs``,
``--hyperparams`` (``PPOConfig.training`` arguments), ``--reward-reference``, ``--out``, ``-f`` and
``-q`` apply to both backends. The run directory gets ``config.yaml``, ``progress.jsonl`` (one line
per iteration) and ``checkpoint/`` (an RLlib checkpoint; ``llmsched-eval --policies rllib:<it>``).
"""

from __future__ import annotations

import argparse
import functools
import sys
import time
from pathlib import Path
from typing import Any, Sequence

from llmsched_env.cli_args import ArgumentParser
from llmsched_env.sim.config import yaml_load
from llmsched_env.sim.validation import ConfigError

from .config import ALGOS, MINIBATCHES, VEC_ENVS, TrainConfig, read_yaml

EXIT_USAGE = 2
BACKENDS = ("sb3", "rllib")
# flags that only one backend reads (argparse dest -> the backend)
SB3_ONLY = ("algo", "env", "n_timesteps", "n_envs", "vec_env", "minibatches", "device", "eval_freq", "eval_episodes", "save_freq",
            "bc_teacher", "bc_episodes", "bc_epochs", "no_bc", "trained_agent", "tensorboard_log", "num_threads", "progress")  # fmt: skip
RLLIB_ONLY = ("ray_address", "iterations", "num_env_runners")
EXIT_INTERRUPTED = 130


def parse_pairs(flag: str, items: Sequence[str]) -> dict[str, Any]:
    """``["a:1", "b:x"]`` -> ``{"a": 1, "b": "x"}`` (values read as YAML)."""
    import yaml  # type: ignore[import-untyped]

    pairs: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition(":")
        if not sep or not key:
            raise ConfigError(f"{flag} {item!r} is invalid: expected key:value")
        try:
            pairs[key] = yaml_load(value) if value.strip() else None
        except yaml.YAMLError:
            raise ConfigError(f"{flag} {item!r}: the value is not valid YAML") from None
    return pairs


def build_parser() -> argparse.ArgumentParser:
    p = ArgumentParser(
        prog="llmsched-train",
        description="Train a PyTorch scheduling agent (PPO / MaskablePPO) on llmsched/Serve-v1.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Defaults: configs/train/default.yaml. Values from flags override the config file.",
    )
    p.add_argument("-c", "--config", "-conf", "--conf-file", dest="config", help="training config YAML")
    p.add_argument("--backend", choices=BACKENDS, default="sb3",
                   help="sb3: stable-baselines3 in this process (default); rllib: RLlib PPO with Ray env runners "
                   "(the ray extra; configs/train/rllib_ppo.yaml)")
    p.add_argument("--ray-address", help="rllib: the Ray cluster to run on (auto: the one `ray start` runs here; default: a local Ray)")
    p.add_argument("--iterations", type=int, help="rllib: PPO iterations")
    p.add_argument("--num-env-runners", type=int, help="rllib: Ray actors stepping envs in parallel")
    p.add_argument("--algo", help=f"algorithm: {', '.join(ALGOS)} (ppo: rank mode; ppo_mask: MaskablePPO, admit mode; ppo_portfolio: PPO picking a heuristic per epoch)")
    p.add_argument("--env", help="env id (llmsched/Serve-v2)")
    p.add_argument("--scenario", nargs="+", metavar="NAME[:WEIGHT]",
                   help="scenario(s) to train on (llmsched_env.scenarios); several: a weighted mixture, e.g. chat-bursty:2 reasoning:1")
    p.add_argument("--env-kwargs", nargs="+", metavar="KEY:VALUE", default=[], help="overrides of the scenario, e.g. num_slots:32 load:0.9")
    p.add_argument("--hyperparams", "-params", nargs="+", metavar="KEY:VALUE", default=[], help="algorithm arguments")
    p.add_argument("-n", "--n-timesteps", type=int, help="PPO env steps")
    p.add_argument("--n-envs", type=int, help="parallel envs")
    p.add_argument("--vec-env", choices=VEC_ENVS, help="vector (default: one process, batched), subproc or dummy")
    p.add_argument("--minibatches", choices=MINIBATCHES, help="PPO's minibatches: random (default, SB3's) or by-occupancy "
                   "(samples of similar slot occupancy together: less padding, faster updates; train/buffers.py)")
    p.add_argument("--seed", type=int, help="seed of numpy, torch, python and the envs")
    p.add_argument("--device", help="auto (CUDA when present), cpu, cuda or cuda:N")
    p.add_argument("--eval-freq", type=int, help="env steps between evaluations (0: only at the start)")
    p.add_argument("--eval-episodes", type=int, help="validation workloads per evaluation")
    p.add_argument("--save-freq", type=int, help="env steps between checkpoints (0: none)")
    p.add_argument("--bc-teacher", help="behaviour-clone this baseline before PPO, e.g. sjf (auto: the scenario's strongest)")
    p.add_argument("--bc-episodes", type=int, help="teacher episodes recorded for behaviour cloning")
    p.add_argument("--bc-epochs", type=int, help="passes over the recorded pairs")
    p.add_argument("--no-bc", action="store_true", help="no behaviour cloning")
    p.add_argument("--reward-reference", help="learn the improvement over this baseline's run on the same requests "
                   "(a baseline, 'teacher', or 'none' for the env's reward)")
    p.add_argument("-i", "--trained-agent", help="resume training from this model .zip")
    p.add_argument("--out", help="run directory (default: <log folder>/<env>__<algo>__<seed>__<time>)")
    p.add_argument("-f", "--log-folder", default="runs", help="parent of the default run directory (runs)")
    p.add_argument("-tb", "--tensorboard-log", help="TensorBoard root (default: <run directory>/tb)")
    p.add_argument("--num-threads", type=int, help="torch threads on CPU (default 1: the networks are small, and more threads "
                   "contend with the env processes; raise it on an idle many-core machine)")
    p.add_argument("-P", "--progress", action=argparse.BooleanOptionalAction, default=None, help="progress bar")
    p.add_argument("-q", "--quiet", action="store_true", help="print only errors and the final summary")
    return p


def resolve_config(args: argparse.Namespace) -> TrainConfig:
    """The config file (or the defaults) with the flags applied."""
    data: dict[str, Any] = read_yaml(args.config) if args.config else {}
    where = args.config or "config"
    for flag, key in (
        ("algo", "algo"), ("env", "env"), ("n_timesteps", "n_timesteps"), ("n_envs", "n_envs"),
        ("vec_env", "vec_env"), ("minibatches", "minibatches"), ("seed", "seed"), ("device", "device"), ("eval_freq", "eval_freq"),
        ("eval_episodes", "eval_episodes"), ("save_freq", "save_freq"), ("progress", "progress_bar"),
    ):  # fmt: skip
        value = getattr(args, flag)
        if value is not None:
            data[key] = value
    defaults = TrainConfig.__dataclass_fields__
    if args.scenario:
        data.pop("scenario", None)
        data["scenarios"] = [_weighted(item) for item in args.scenario]
    if args.env_kwargs:
        data["env_kwargs"] = {**(data.get("env_kwargs") or {}), **parse_pairs("--env-kwargs", args.env_kwargs)}
    if args.hyperparams:
        base = data.get("hyperparams", defaults["hyperparams"].default_factory())  # type: ignore[misc]
        data["hyperparams"] = {**(base or {}), **parse_pairs("--hyperparams", args.hyperparams)}
    if args.reward_reference is not None:
        data["reward_reference"] = None if args.reward_reference == "none" else args.reward_reference
    if args.no_bc and args.bc_teacher:
        raise ConfigError("--no-bc and --bc-teacher contradict each other: give one")
    if args.no_bc and args.bc_episodes is not None:
        raise ConfigError("--no-bc and --bc-episodes contradict each other: give one")
    if args.no_bc:
        data["bc"] = None
    else:
        bc = dict(data.get("bc") or {})
        if args.bc_teacher:
            bc["teacher"] = args.bc_teacher
        if args.bc_episodes is not None:
            bc["episodes"] = args.bc_episodes
        if args.bc_epochs is not None:
            bc["epochs"] = args.bc_epochs
        if bc:
            data["bc"] = bc
    return TrainConfig.from_dict(data, where=where)


def _weighted(item: str) -> dict[str, Any]:
    """``name`` or ``name:weight`` (a scenario of the training mix)."""
    name, sep, weight = item.rpartition(":") if ":" in item and not item.endswith((".yaml", ".yml")) else (item, "", "")
    if not sep:
        return {"scenario": item}
    try:
        return {"scenario": name, "weight": float(weight)}
    except ValueError:
        raise ConfigError(f"--scenario {item!r} is invalid: expected NAME or NAME:WEIGHT (a number)") from None


def run_directory(config: TrainConfig, args: argparse.Namespace) -> Path:
    if args.out:
        return Path(args.out)
    scenario = "+".join(ts.scenario.name for ts in config.scenarios)
    name = f"{scenario}__{config.algo}__{config.seed}__{int(time.time())}"
    return Path(args.log_folder) / name


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        check_backend_flags(args)
        if args.backend == "rllib":
            return train_rllib(args)
        from .router import is_cluster_scenario

        if args.scenario and is_cluster_scenario(_weighted(args.scenario[0])["scenario"]):
            return _train_router(args)
        config = resolve_config(args)
        return train(config, args)
    except ConfigError as err:
        print(f"llmsched-train: error: {' '.join(str(err).split())}", file=sys.stderr)
        return EXIT_USAGE


def check_backend_flags(args: argparse.Namespace) -> None:
    """A flag of the other backend is a mistake, not something to ignore."""
    other = SB3_ONLY if args.backend == "rllib" else RLLIB_ONLY
    given = [name for name in other if getattr(args, name) not in (None, False)]
    if given:
        flags = ", ".join("--" + name.replace("_", "-") for name in given)
        raise ConfigError(f"--backend {args.backend} does not read {flags}: expected the flags of that backend (see --help)")


def resolve_rllib_config(args: argparse.Namespace) -> Any:
    """The RLlib config file (or its defaults) with the flags applied (``train.rllib.RLlibConfig``)."""
    try:
        from . import rllib
    except ImportError as err:
        raise ConfigError(f"--backend rllib needs Ray's RLlib ({err}): install the extra, pip install -e \".[ray]\"") from None
    data: dict[str, Any] = read_yaml(args.config) if args.config else {}
    for flag, key in (("seed", "seed"), ("iterations", "iterations"), ("num_env_runners", "num_env_runners")):
        if getattr(args, flag) is not None:
            data[key] = getattr(args, flag)
    if args.scenario:
        if len(args.scenario) > 1:
            raise ConfigError(f"--scenario {' '.join(args.scenario)}: --backend rllib trains on one scenario; expected one name")
        data["scenario"] = args.scenario[0]
    if args.env_kwargs:
        data["env_kwargs"] = {**(data.get("env_kwargs") or {}), **parse_pairs("--env-kwargs", args.env_kwargs)}
    if args.hyperparams:
        data["hyperparams"] = {**(data.get("hyperparams") or {}), **parse_pairs("--hyperparams", args.hyperparams)}
    if args.reward_reference is not None:
        data["reward_reference"] = None if args.reward_reference == "none" else args.reward_reference
    return rllib.RLlibConfig.from_dict(data, where=args.config or "config")


def train_rllib(args: argparse.Namespace) -> int:
    """``--backend rllib``: PPO on RLlib's env runners (``train.rllib``), an RLlib checkpoint at the end."""
    config = resolve_rllib_config(args)
    from . import rllib

    out = Path(args.out) if args.out else Path(args.log_folder) / f"{config.scenario.name}__{rllib.ALGO}__{config.seed}__{int(time.time())}"
    say = (lambda *a: None) if args.quiet else print
    say(f"llmsched-train: RLlib PPO on {config.env}, scenario {config.scenario.name}, {config.num_env_runners} env runners "
        f"x {config.num_envs_per_env_runner} envs, Ray {args.ray_address or 'local'}, run {out}")  # fmt: skip
    checkpoint, history = rllib.train(config, out, address=args.ray_address, say=say)
    print(rllib.main_note(checkpoint, history))
    return 0


def _train_router(args: argparse.Namespace) -> int:
    """A cluster scenario trains a routing agent (train.router)."""
    from .router import config_from_args, train_router

    config = config_from_args(args, parse_pairs)
    out = Path(args.out) if args.out else Path(args.log_folder) / f"{config.scenario}__ppo_mask__{config.seed}__{int(time.time())}"
    tb_dir = Path(args.tensorboard_log) / out.name if args.tensorboard_log else out / "tb"
    if args.num_threads is not None and args.num_threads < 1:
        raise ConfigError(f"--num-threads={args.num_threads} is invalid: expected an integer >= 1")
    progress = True if args.progress is None else bool(args.progress)
    return train_router(config, out, tb_dir, args.quiet, progress, args.num_threads)


def train(config: TrainConfig, args: argparse.Namespace) -> int:
    """Build the envs and the model, behaviour-clone, run PPO with evaluations, save."""
    import gymnasium as gym
    import numpy as np
    import yaml  # type: ignore[import-untyped]

    from .config import resolve_device

    device = resolve_device(config.device)
    if args.num_threads is not None and args.num_threads < 1:
        raise ConfigError(f"--num-threads={args.num_threads} is invalid: expected an integer >= 1")
    if device == "cpu" or args.num_threads is not None:
        import torch

        torch.set_num_threads(args.num_threads or 1)
    gym.make(config.env_id, **config.env_kwargs_of(0)).close()  # bad env arguments fail here, before any work
    resume = args.trained_agent
    if resume is not None:
        from .agents import read_info

        if not Path(resume).is_file():
            raise ConfigError(f"--trained-agent {resume!r}: model file does not exist")
        trained_with = read_info(resume)["algo"]
        if trained_with != config.algo:
            raise ConfigError(f"--trained-agent {resume!r} was trained with algo={trained_with!r}, not algo={config.algo!r}")
        saved_portfolio = read_info(resume).get("portfolio")
        if config.portfolio is not None and saved_portfolio != list(config.portfolio):
            raise ConfigError(f"--trained-agent {resume!r} picks from portfolio={saved_portfolio!r}, not portfolio={list(config.portfolio)!r}")
        import dataclasses

        from .agents import check_same_spaces

        scenario = config.scenario
        check_same_spaces(resume, {**dataclasses.asdict(scenario.env), "decision_interval": scenario.sim.decision_interval}, "--trained-agent")

    import stable_baselines3
    import torch
    from stable_baselines3.common.callbacks import CallbackList, CheckpointCallback
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.logger import configure
    from stable_baselines3.common.utils import set_random_seed

    from .agents import attach_info, load_model
    from .callbacks import ServeEvalCallback
    from .config import algo_class, policy_class
    from .vec_env import vec_env_class

    out = run_directory(config, args)
    out.mkdir(parents=True, exist_ok=True)
    tb_dir = Path(args.tensorboard_log) / out.name if args.tensorboard_log else out / "tb"
    say = (lambda *a: None) if args.quiet else print

    # seeds: SB3 seeds python, numpy and torch with `seed` and env i with `seed + i`; the BC and
    # validation workloads are fixed sim seeds, disjoint from each other
    set_random_seed(config.seed)
    eval_seeds = [config.eval_seed + i for i in range(config.eval_episodes)]
    bc_seeds = [] if config.bc is None or resume else _bc_seeds(config, eval_seeds)
    if bc_seeds:  # the config written out names the teacher it used
        config = resolve_teacher(config, bc_seeds, say)
    (out / "config.yaml").write_text(yaml.safe_dump(config.to_dict(), sort_keys=False))
    run_info = {
        "device": device,
        "seed": config.seed,
        "env_seeds": [config.seed + i for i in range(config.n_envs)],
        "eval_sim_seeds": eval_seeds,
        "bc_sim_seeds": bc_seeds,
        "resumed_from": resume,
        "versions": {"torch": str(torch.__version__), "stable_baselines3": str(stable_baselines3.__version__), "numpy": str(np.__version__)},
        "command": " ".join(sys.argv),
    }
    (out / "run.yaml").write_text(yaml.safe_dump(run_info, sort_keys=False))

    vec_cls = vec_env_class(config.vec_env)
    venv = make_vec_env(
        functools.partial(make_env, config), n_envs=config.n_envs, seed=config.seed, vec_env_cls=vec_cls,
        wrapper_class=_reward_wrapper(config),
    )  # fmt: skip
    try:
        if resume is not None:
            model = load_model(resume, device=device, env=venv)  # its own hyperparameters; spaces checked by SB3
        else:
            model = algo_class(config.algo)(
                policy_class(config.algo), venv, seed=config.seed, device=device, verbose=0, **config.algo_kwargs()
            )
        attach_info(model, config.algo, config.env, config.scenario, config.portfolio)
        model.set_logger(configure(str(tb_dir), ["tensorboard"]))
        log_run_description(model, config, run_info)
        mix = ", ".join(f"{ts.scenario.name} (weight {ts.weight:g})" for ts in config.scenarios)
        say(f"llmsched-train: {config.algo} on {config.env}, scenario {mix}, {config.n_envs} envs, device {device}, run {out}")

        bc_seconds = 0.0
        interrupted = False
        if bc_seeds:
            bc_start = time.perf_counter()
            try:
                bc_seconds = _warm_start(model, config, bc_seeds, say, progress=config.progress_bar and not args.quiet)
            except KeyboardInterrupt:  # keep the policy as far as cloning got; no PPO
                interrupted = True
                bc_seconds = time.perf_counter() - bc_start
                model.policy.set_training_mode(False)
                print("llmsched-train: interrupted during behaviour cloning: saving the model as it is", file=sys.stderr)

        callbacks: list[Any] = [
            ServeEvalCallback(
                config.env_id, config.env_kwargs_of(0), eval_seeds, config.eval_freq, config.eval_baselines,
                out / "best_model.zip", verbose=0 if args.quiet else 1, portfolio=config.portfolio,
            )
        ]  # fmt: skip
        if config.save_freq:
            callbacks.append(CheckpointCallback(max(config.save_freq // config.n_envs, 1), str(out / "checkpoints"), "model"))
        rollout = int(model.n_steps) * config.n_envs
        if config.n_timesteps % rollout:
            runs = -(-config.n_timesteps // rollout) * rollout
            print(
                f"llmsched-train: note: PPO collects whole rollouts of {rollout:,} steps (n_steps {model.n_steps} x "
                f"{config.n_envs} envs), so -n {config.n_timesteps:,} runs {runs:,} steps", file=sys.stderr,
            )  # fmt: skip
        start = time.perf_counter()
        try:
            if not interrupted:
                model.learn(
                    config.n_timesteps,
                    callback=CallbackList(callbacks),
                    progress_bar=config.progress_bar and not args.quiet,
                    reset_num_timesteps=resume is None,
                )
        except KeyboardInterrupt:
            interrupted = True
        elapsed = time.perf_counter() - start
        model.save(out / "final_model.zip")
    finally:
        venv.close()

    evaluation: ServeEvalCallback = callbacks[0]
    figures = evaluation.last_figures
    timing = f"{model.num_timesteps:,} PPO steps in {elapsed:.0f} s" + (f" after {bc_seconds:.0f} s of behaviour cloning" if bc_seconds else "")
    validation = (
        f"best validation e2e mean {evaluation.best_e2e_mean:.3f} s ("
        + ", ".join(f"{name} {r['e2e_mean']:.3f}" for name, r in evaluation.baseline_results.items())
        + f"); last e2e mean {figures.get('e2e_mean', float('nan')):.3f} s; "
        if evaluation.baseline_results
        else "no validation yet; "
    )
    print(f"llmsched-train: {'interrupted' if interrupted else 'done'}: {timing}; {validation}models in {out}")
    return EXIT_INTERRUPTED if interrupted else 0


HPARAM_METRICS = ("eval/e2e_mean", "eval/best_e2e_mean", "eval/e2e_p99", "eval/ttft_mean")


def hparams_of(config: TrainConfig) -> dict[str, Any]:
    """The run's settings as flat TensorBoard hyperparameters (scalars; lists and mappings as text)."""
    flat: dict[str, Any] = {"scenario": " + ".join(f"{ts.scenario.name}:{ts.weight:g}" for ts in config.scenarios)}
    for key, value in config.to_dict().items():
        if key == "scenarios":
            continue
        if isinstance(value, dict):
            flat.update({f"{key}.{k}": v for k, v in value.items()})
        else:
            flat[key] = value
    return {k: v if isinstance(v, (bool, int, float, str)) else str(v) for k, v in flat.items()}


def log_run_description(model: Any, config: TrainConfig, run_info: dict[str, Any]) -> None:
    """TensorBoard's text tab gets the resolved config and the run info (seeds, versions, command);
    its HPARAMS tab the settings, with the validation figures as metrics."""
    import yaml  # type: ignore[import-untyped]
    from stable_baselines3.common.logger import HParam

    from .callbacks import tensorboard_writer

    writer = tensorboard_writer(model.logger)
    if writer is None:
        return
    for name, data in (("config", config.to_dict()), ("run", run_info)):
        text = yaml.safe_dump(data, sort_keys=False)
        writer.add_text(name, "\n".join("    " + line for line in text.splitlines()), 0)  # Markdown code block
    metrics = {key: 0.0 for key in HPARAM_METRICS}  # values are read from the logged scalars
    model.logger.record("hparams", HParam(hparams_of(config), metrics), exclude=("stdout", "log", "json", "csv"))
    model.logger.dump(0)


def make_env(config: TrainConfig, **kwargs: Any) -> Any:
    """The training env: the scenario's, or a weighted mixture of the scenarios' (one per episode)."""
    import gymnasium as gym

    envs = [gym.make(config.env_id, **config.env_kwargs_of(i), **kwargs) for i in range(len(config.scenarios))]
    if config.is_portfolio:  # the agent picks a heuristic; the heuristic's order reaches the env
        from .portfolio import PortfolioWrapper

        assert config.portfolio is not None
        envs = [PortfolioWrapper(env, config.portfolio) for env in envs]
    if len(envs) == 1:
        return envs[0]
    from llmsched_env.envs.mixture import ScenarioMixture

    return ScenarioMixture(envs, [ts.weight for ts in config.scenarios])


def _reward_wrapper(config: TrainConfig) -> Any:
    """The env wrapper that makes the reward relative to ``reward_reference`` (None: none; by now
    ``teacher`` has been resolved to the teacher's name, see :func:`resolve_teacher`)."""
    if config.reward_reference is None:
        return None
    if config.reward_reference == "teacher":
        raise ConfigError("reward_reference='teacher' without behaviour cloning (a resumed run): give the teacher's name")
    from .rewards import ReferenceReward

    return functools.partial(ReferenceReward, reference=config.reward_reference)


def resolve_teacher(config: TrainConfig, seeds: Sequence[int], say: Any) -> TrainConfig:
    """The config with ``bc.teacher: auto`` replaced by the scenario's strongest heuristic and
    ``reward_reference: teacher`` by the teacher's name."""
    import dataclasses

    from .bc import strongest_heuristic

    if config.bc is None:
        return config
    teacher = config.bc.teacher
    if teacher == "auto":
        candidates = {"candidates": config.portfolio} if config.portfolio is not None else {}  # a portfolio agent clones one of its own
        teacher, scores = strongest_heuristic(config.scenario.sim.replace(workload=config.scenario.sim.workload), list(seeds)[:3], **candidates)
        ranking = ", ".join(f"{n} {v:.2f} s" for n, v in sorted(scores.items(), key=lambda kv: kv[1]))
        say(f"llmsched-train: teacher auto: {ranking} (mean latency on {min(3, len(seeds))} workloads): {teacher}")
    reference = teacher if config.reward_reference == "teacher" else config.reward_reference
    return dataclasses.replace(config, bc=dataclasses.replace(config.bc, teacher=teacher), reward_reference=reference)


def _bc_seeds(config: TrainConfig, avoid: Sequence[int]) -> list[int]:
    """Sim seeds of the behaviour-cloning episodes: drawn from the run's seed, none a validation seed."""
    import numpy as np

    assert config.bc is not None
    rng = np.random.default_rng([config.seed, 1])
    seeds: list[int] = []
    while len(seeds) < config.bc.episodes * (1 + config.bc.dagger_rounds):
        seed = int(rng.integers(0, 2**31 - 1))
        if seed not in avoid and seed not in seeds:
            seeds.append(seed)
    return seeds


def _warm_start(model: Any, config: TrainConfig, seeds: list[int], say: Any, progress: bool = True) -> float:
    """Behaviour cloning from the configured teacher (and DAgger rounds); losses go to TensorBoard
    as bc/* on their own step axis (epochs). Returns the seconds it took."""
    import baselines

    from .bc import behaviour_clone, collect, imitation_loss, merge

    assert config.bc is not None
    bc = config.bc
    start = time.perf_counter()
    env = make_env(config)
    wrapper = _reward_wrapper(config)
    if wrapper is not None:
        env = wrapper(env)  # the critic learns the returns PPO will see
    teacher_name = bc.teacher  # resolved by resolve_teacher
    teacher = baselines.parse(teacher_name)
    history: list[float] = []
    demos = None
    for round_ in range(1 + bc.dagger_rounds):
        round_seeds = seeds[round_ * bc.episodes : (round_ + 1) * bc.episodes]
        new = collect(teacher, env, round_seeds, gamma=model.gamma, student=model if round_ else None, progress=progress,
                      label=f"cloning {teacher_name}" + (f" (DAgger {round_})" if round_ else ""))
        demos = new if demos is None else merge(demos, new)
        history += behaviour_clone(
            model.policy, demos, epochs=bc.epochs, batch_size=bc.batch_size, learning_rate=bc.learning_rate,
            seed=config.seed + round_, progress=progress,
        )  # fmt: skip
    assert demos is not None
    fitted = imitation_loss(model.policy, demos)  # after the last epoch (history holds each epoch's running mean)
    for epoch, loss in enumerate(history):
        model.logger.record("bc/imitation_loss", loss)
        model.logger.record("bc/epoch", epoch)
        model.logger.dump(epoch)
    seconds = time.perf_counter() - start
    say(
        f"llmsched-train: behaviour cloning from {teacher_name}: {len(demos):,} steps of {len(seeds)} episodes "
        f"({bc.dagger_rounds} DAgger rounds), imitation loss {history[0]:.4f} in the first epoch, {fitted:.4f} after the last, "
        f"in {seconds:.0f} s"
    )
    model.llmsched_teacher = teacher_name
    return seconds
