"""Training benchmarks: PPO's throughput, and a trained agent's figures against the heuristics.

1. Throughput (default): env steps per second of ``llmsched-train``'s default config (PPO, rank
   mode). Times ``model.learn`` on the built-in default (the set-encoder policy, its hyperparameters,
   ``n_envs`` envs) with evaluation and behaviour cloning off, so the figure is PPO's own rate:
   rollouts (env steps + policy forward passes) and full updates together. (In a real run PPO's
   ``target_kl`` may end an update early, which makes training faster than this.) Also times the
   same vectorised envs stepped with random actions: the env's share of the cost.

2. Agent figures (``--agent model.zip``): the model and the baselines FCFS, SJF, Trail and
   SRPT-oracle on held-out workloads (sim seeds 20000, 20001, ...; training uses random seeds and
   validation 10000-10009) of the default env at load 0.9 (``--workloads`` adds presets), with
   the agent's ratios to each baseline and the checks of the issue's targets: mean e2e at most 0.9x
   Trail's with throughput within 2 % of it, and p99 e2e no worse than FCFS's.

    python benchmarks/bench_train.py                   # throughput: 16,384 steps, CPU, default vec env (vector)
    python benchmarks/bench_train.py --small           # the same with a smaller set encoder (32 wide, 1 block)
    python benchmarks/bench_train.py --small --minibatches by-occupancy   # minibatches of similar occupancy
    python benchmarks/bench_train.py --steps 65536 --device cuda --vec-env subproc --threads 2
    python benchmarks/bench_train.py --agent models/serve_rank_ppo.zip --seeds 100 \
        --workloads sharegpt azure-code mooncake-conversation
"""

from __future__ import annotations

import argparse
import functools
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

if not __package__:  # run as a script: make the repository root importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from stable_baselines3.common.env_util import make_vec_env

from benchmarks.machine import cpu_model  # noqa: E402
from train.cli import _reward_wrapper, make_env
from train.config import VEC_ENVS, TrainConfig, algo_class, policy_class, resolve_device
from train.vec_env import vec_env_class

BASELINES = ("fcfs", "sjf", "trail", "srpt")
METRICS = (("e2e_mean_s", "e2e mean"), ("e2e_p99_s", "e2e p99"), ("ttft_mean_s", "TTFT mean"), ("output_tokens_per_s", "tokens/s"))


def agent_figures(path: str, seeds: list[int], workloads: list[str]) -> None:
    """Print the agent's and the baselines' mean figures over ``seeds`` per workload, with ratios."""
    import baselines
    from llmsched_env.envs.serve import ServeEnv
    from llmsched_env.sim import simulate
    from train.agents import load_policy

    agent = load_policy(path)
    print(f"agent {agent.name}: {agent.options}; held-out sim seeds {seeds[0]}..{seeds[-1]} ({len(seeds)})")
    for workload in workloads:
        config = ServeEnv(workload=workload).config  # the default env's workload at load 0.9, 200 requests
        start = time.perf_counter()
        runs = {name: [simulate(config, baselines.parse(name), seed=s).summary for s in seeds] for name in BASELINES}
        runs[agent.name] = [agent.simulate(config, s).summary for s in seeds]
        mean = {name: {key: float(np.mean([r[key] for r in rs])) for key, _ in METRICS} for name, rs in runs.items()}
        print(f"\n{workload}, load 0.9, {config.workload.num_requests} requests per run ({time.perf_counter() - start:.0f} s)")
        print(f"  {'policy':22s}" + "".join(f"{label:>12s}" for _, label in METRICS) + f"{'preempt.':>10s}")
        for name, rs in runs.items():
            preempt = np.mean([r["preemptions"] for r in rs])
            print(f"  {name:22s}" + "".join(f"{mean[name][key]:12.3f}" for key, _ in METRICS) + f"{preempt:10.2f}")
        a = mean[agent.name]
        print("  agent / baseline (means over seeds): " + ", ".join(
            f"{name}: e2e {a['e2e_mean_s'] / mean[name]['e2e_mean_s']:.4f}, p99 {a['e2e_p99_s'] / mean[name]['e2e_p99_s']:.4f}"
            for name in BASELINES
        ))
        paired = np.array([x["e2e_mean_s"] - y["e2e_mean_s"] for x, y in zip(runs[agent.name], runs["fcfs"])])
        print(f"  paired e2e mean difference agent - fcfs: {paired.mean():+.4f} s (95 % +-{1.96 * paired.std(ddof=1) / np.sqrt(len(paired)):.4f})")
        trail = mean["trail"]
        checks = {
            "e2e mean <= 0.9 x trail": a["e2e_mean_s"] <= 0.9 * trail["e2e_mean_s"],
            "throughput within 2 % of trail": abs(a["output_tokens_per_s"] / trail["output_tokens_per_s"] - 1) <= 0.02,
            "e2e p99 <= fcfs": a["e2e_p99_s"] <= mean["fcfs"]["e2e_p99_s"],
        }
        print("  targets: " + ", ".join(f"{k}: {'yes' if v else 'NO'}" for k, v in checks.items()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=16_384, help="PPO env steps to time")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or auto")
    parser.add_argument("--vec-env", choices=VEC_ENVS, help="default: the config's (vector)")
    parser.add_argument("--scenario", help="the scenario to train on (default: the config's)")
    parser.add_argument("--small", action="store_true", help="a smaller set encoder: embed_dim 32, 1 attention block")
    parser.add_argument("--n-envs", type=int, help="default: the config's")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1, as llmsched-train on CPU)")
    parser.add_argument("--minibatches", choices=("random", "by-occupancy"), default="random",
                        help="PPO's minibatches: random (SB3's) or grouped by slot occupancy (train.buffers)")
    parser.add_argument("--agent", help="a trained model: print its figures against the baselines instead")
    parser.add_argument("--seeds", type=int, default=100, help="held-out workloads per preset (--agent)")
    parser.add_argument("--workloads", nargs="+", default=["sharegpt"], help="length presets (--agent)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.agent:
        agent_figures(args.agent, [20_000 + i for i in range(args.seeds)], args.workloads)
        return
    config = TrainConfig.from_dict({"minibatches": args.minibatches, **({"scenario": args.scenario} if args.scenario else {})})
    n_envs = args.n_envs or config.n_envs
    vec_env = args.vec_env or config.vec_env
    device = resolve_device(args.device)
    kwargs = config.algo_kwargs()
    if args.small:  # the smaller network: one attention block of width 32
        extractor = dict(kwargs["policy_kwargs"].get("features_extractor_kwargs", {}))
        extractor.update(embed_dim=32, num_layers=1, ff_dim=64)
        kwargs["policy_kwargs"] = {**kwargs["policy_kwargs"], "features_extractor_kwargs": extractor}
    venv = make_vec_env(
        functools.partial(make_env, config), n_envs=n_envs, seed=0, vec_env_cls=vec_env_class(vec_env),
        wrapper_class=_reward_wrapper(config),
    )  # fmt: skip
    model = algo_class(config.algo)(policy_class(config.algo), venv, seed=0, device=device, **kwargs)
    model.learn(model.n_steps * n_envs)  # warm up: subprocesses, capacity measurement, allocations
    start = time.perf_counter()
    model.learn(args.steps, reset_num_timesteps=False)
    train_rate = args.steps / (time.perf_counter() - start)

    rng = np.random.default_rng(0)
    venv.reset()
    steps, start = 0, time.perf_counter()
    while steps < args.steps:
        venv.step(rng.uniform(-1, 1, (n_envs, *venv.action_space.shape)).astype(np.float32))
        steps += n_envs
    env_rate = steps / (time.perf_counter() - start)
    venv.close()

    cpu = cpu_model()
    extractor = kwargs["policy_kwargs"].get("features_extractor_kwargs", {})
    print(f"machine: {cpu}, {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}, torch {torch.__version__} "
          f"({torch.get_num_threads()} threads), device {device}")  # fmt: skip
    print(
        f"config: {config.algo}, env {config.env} scenario {config.scenario.name}, reward vs {config.reward_reference}, "
        f"{n_envs} {vec_env} envs, n_steps {kwargs['n_steps']}, batch {kwargs['batch_size']} ({config.minibatches}), {kwargs['n_epochs']} epochs, "
        f"set encoder {extractor}"
    )
    print(f"training (rollouts + updates): {train_rate:,.0f} env steps/s over {args.steps:,} steps")
    print(f"envs alone, random actions:    {env_rate:,.0f} env steps/s")


if __name__ == "__main__":
    main()
