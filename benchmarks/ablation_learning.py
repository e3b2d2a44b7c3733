"""Which formulation learns: short training runs of each variant, validation curves, held-out ratios.

Each variant is one ``llmsched-train`` run on the same scenario and budget; the script reads its
validation curve (``eval/e2e_mean`` in TensorBoard: the first point is the behaviour-cloned start)
and evaluates its best model on held-out workloads (sim seeds 20000+, never used in training or
validation) against Trail and the strongest heuristic, paired by seed. It prints one table and
writes the curves to ``<out>/curves.png``.

    PYTHONPATH=. python benchmarks/ablation_learning.py --scenario chat-a100-40gb -n 30000 [--variants NAME ...] [--out runs/ablation]

Variants:

* ``gaussian-fcfs``: independent Gaussian scores (log-probability over occupied slots), reward
  relative to FCFS on the same requests, behaviour cloning from the strongest heuristic;
* ``gaussian-teacher``: the same with the reward relative to the teacher's run;
* ``plackett-luce``: a Plackett-Luce distribution over orders, reward relative to the teacher;
* ``no-bc``: Gaussian scores, reward relative to FCFS, no behaviour cloning;
* ``portfolio-*`` (``train.portfolio``, the recipe ``configs/train/portfolio.yaml``: PPO picks one
  heuristic of Trail, MLFQ, SJF and FCFS at each epoch, undiscounted, reward relative to Trail's
  run): ``portfolio-trail`` is the recipe (a one-epoch clone of Trail), ``portfolio-uniform`` starts
  from the untrained near-uniform pick, and ``portfolio-trail-short`` is the recipe with PPO's usual
  gamma 0.99 and GAE lambda 0.95 (the discount makes the agent greedy, i.e. Trail: see the curves).

Portfolio variants run 1,000-request episodes (``--portfolio-episode-requests``) and validate and
hold out on the same length; a variant's own PPO arguments come after ``--hyperparams``.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.machine import describe  # noqa: E402

GAUSSIAN = "distribution: gaussian, log_std_init: -3.0"
PORTFOLIO = ["-c", str(Path(__file__).resolve().parents[1] / "configs/train/portfolio.yaml")]  # the recipe; the flags change only what they name
TRAIL_CLONE = ["--bc-teacher", "trail", "--bc-episodes", "2", "--bc-epochs", "1"]
SHORT_HORIZON = ["gamma:0.99", "gae_lambda:0.95"]
VARIANTS = {  # (policy_kwargs, other llmsched-train flags, the variant's own PPO arguments)
    "gaussian-fcfs": (GAUSSIAN, ["--reward-reference", "fcfs"], []),
    "gaussian-teacher": (GAUSSIAN, ["--reward-reference", "teacher"], []),
    "plackett-luce": ("distribution: plackett-luce", ["--reward-reference", "teacher"], []),
    "no-bc": (GAUSSIAN, ["--reward-reference", "fcfs", "--no-bc"], []),
    "portfolio-uniform": ("", [*PORTFOLIO, "--no-bc"], []),
    "portfolio-trail": ("", [*PORTFOLIO, *TRAIL_CLONE], []),
    "portfolio-trail-short": ("", [*PORTFOLIO, *TRAIL_CLONE], SHORT_HORIZON),
}


def curve(run: Path, tb: str = "tb") -> tuple[np.ndarray, np.ndarray]:
    """The validation curve (``eval/e2e_mean`` by step) in ``run/tb`` (or a baseline's ``tb/baseline-NAME``)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    steps, values = [], []
    for events in sorted(run.glob(f"{tb}/events.out.tfevents.*")):
        acc = EventAccumulator(str(events))
        acc.Reload()
        if "eval/e2e_mean" in acc.Tags()["scalars"]:
            for e in acc.Scalars("eval/e2e_mean"):
                steps.append(e.step)
                values.append(e.value)
    order = np.argsort(steps)
    return np.asarray(steps)[order], np.asarray(values)[order]


def held_out(model: Path, scenario: str, seeds: list[int], references: list[str], episode_requests: int) -> dict[str, np.ndarray]:
    import baselines
    from llmsched_env import scenarios
    from llmsched_env.sim import simulate
    from train.agents import load_policy

    config = scenarios.sim_config(scenario, num_requests=episode_requests)
    agent = load_policy(model)
    out: dict[str, list[float]] = {"agent": [], **{r: [] for r in references}}
    p99: dict[str, list[float]] = {"agent": [], **{r: [] for r in references}}
    for seed in seeds:
        s = agent.simulate(config, seed).summary
        out["agent"].append(s["e2e_mean_s"])
        p99["agent"].append(s["e2e_p99_s"])
        for r in references:
            s = simulate(config, baselines.parse(r), seed=seed).summary
            out[r].append(s["e2e_mean_s"])
            p99[r].append(s["e2e_p99_s"])
    result = {k: np.asarray(v) for k, v in out.items()}
    result.update({f"{k}_p99": np.asarray(v) for k, v in p99.items()})
    return result


def ratio_ci(a: np.ndarray, b: np.ndarray) -> tuple[float, float, float]:
    from eval.aggregate import paired_ratio

    return paired_ratio(dict(enumerate(a)), dict(enumerate(b)))


def main() -> None:
    from train.cli import main as train_main

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scenario", default="chat-a100-40gb")
    parser.add_argument("-n", "--n-timesteps", type=int, default=30_000)
    parser.add_argument("--variants", nargs="+", choices=sorted(VARIANTS), default=list(VARIANTS))
    parser.add_argument("--episode-requests", type=int, default=500)
    parser.add_argument("--held-out", type=int, default=10, help="held-out workloads (sim seeds 20000..)")
    parser.add_argument("--bc-episodes", type=int, default=8)
    parser.add_argument("--n-envs", type=int, default=4)
    parser.add_argument("--eval-freq", type=int, default=6000)
    parser.add_argument("--out", type=Path, default=Path("runs/ablation"))
    parser.add_argument("--net", default="embed_dim: 32, num_heads: 2, num_layers: 1, ff_dim: 64", help="features_extractor_kwargs")
    parser.add_argument("--hyperparams", nargs="+", default=[], metavar="KEY:VALUE", help="PPO arguments for every variant")
    parser.add_argument("--bc-epochs", type=int, default=10)
    parser.add_argument("--portfolio-episode-requests", type=int, default=1000)
    args = parser.parse_args()
    print(describe())
    rows = []
    curves = {}
    for name in args.variants:
        run = args.out / f"{args.scenario}__{name}"
        policy_kwargs, flags, own = VARIANTS[name]
        requests = args.portfolio_episode_requests if name.startswith("portfolio") else args.episode_requests
        argv = ["--scenario", args.scenario, "-n", str(args.n_timesteps), "--n-envs", str(args.n_envs), "--eval-freq", str(args.eval_freq),
                "--eval-episodes", "4", "--env-kwargs", f"num_requests:{requests}", "--out", str(run), "--no-progress"]
        network = f"features_extractor_kwargs: {{{args.net}}}"
        argv += ["--hyperparams", f"policy_kwargs:{{{policy_kwargs + ', ' if policy_kwargs else ''}{network}}}", *args.hyperparams, *own]
        argv += ["--bc-episodes", str(args.bc_episodes), "--bc-epochs", str(args.bc_epochs)] if "--no-bc" not in flags else []
        argv += flags  # after the shared cloning flags: a variant's own --bc-epochs wins
        start = time.perf_counter()
        code = train_main(argv)
        seconds = time.perf_counter() - start
        if code != 0:
            print(f"{name}: llmsched-train exited {code}")
            continue
        steps, values = curve(run)
        curves[name] = (steps, values)
        teacher = _teacher(run)
        refs = ["trail"] + ([teacher] if teacher and teacher != "trail" else [])
        ho = held_out(run / "best_model.zip", args.scenario, list(range(20000, 20000 + args.held_out)), refs, requests)
        trail = ratio_ci(ho["agent"], ho["trail"])
        best = ratio_ci(ho["agent"], ho[refs[-1]])
        p99 = ratio_ci(ho["agent_p99"], ho["trail_p99"])
        rows.append((name, teacher, values[0] if len(values) else math.nan, values.min() if len(values) else math.nan,
                     values[-1] if len(values) else math.nan, trail, best, refs[-1], p99, seconds))  # fmt: skip
    print(f"\nscenario {args.scenario}, {args.n_timesteps:,} PPO steps, {args.episode_requests}-request episodes ({args.portfolio_episode_requests} for portfolio variants), held-out seeds 20000-{20000 + args.held_out - 1}")
    print(f"{'variant':18}{'teacher':9}{'val start':>10}{'val best':>10}{'val last':>10}  {'x trail [95% CI]':22}{'x teacher [95% CI]':22}{'p99 x trail':>12}{'wall s':>8}")
    for name, teacher, v0, vbest, vlast, trail, best, ref, p99, seconds in rows:
        fmt = lambda r: f"{r[0]:.3f} [{r[1]:.3f}, {r[2]:.3f}]"  # noqa: E731
        print(f"{name:18}{str(teacher):9}{v0:10.3f}{vbest:10.3f}{vlast:10.3f}  {fmt(trail):22}{fmt(best):22}{p99[0]:12.3f}{seconds:8.0f}")
    print("val: validation mean latency (s) on 4 workloads: at the behaviour-cloned start, the best and the last "
          "evaluation; x: paired ratio of the best model's mean latency on the held-out workloads")
    if curves:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        # rank and portfolio variants validate on episodes of different lengths: one panel each
        groups = [[n for n in curves if not n.startswith("portfolio")], [n for n in curves if n.startswith("portfolio")]]
        groups = [g for g in groups if g]
        fig, axes = plt.subplots(1, len(groups), figsize=(7 * len(groups), 4), squeeze=False)
        for ax, names in zip(axes[0], groups):
            for name in names:
                steps, values = curves[name]
                ax.plot(steps, values, marker="o", label=name)
            first = args.out / f"{args.scenario}__{names[0]}"
            for tb in sorted(first.glob("tb/baseline-*")):  # the heuristics on the same workloads: constant lines
                _, values = curve(first, f"tb/{tb.name}")
                if len(values):
                    ax.axhline(values[0], linestyle="--", linewidth=1, color="grey")
                    ax.annotate(tb.name.removeprefix("baseline-"), (0, values[0]), textcoords="offset points", xytext=(2, 2), fontsize=8, color="grey")
            requests = args.portfolio_episode_requests if names[0].startswith("portfolio") else args.episode_requests
            ax.set_xlabel("PPO env steps (step 0: after behaviour cloning)")
            ax.set_ylabel("validation mean latency (s)")
            ax.set_title(f"{args.scenario}: validation curves ({requests}-request workloads)")
            ax.legend()
        fig.tight_layout()
        args.out.mkdir(parents=True, exist_ok=True)
        fig.savefig(args.out / "curves.png", dpi=110)
        print(f"curves: {args.out / 'curves.png'}")


def _teacher(run: Path) -> str | None:
    import yaml

    config = yaml.safe_load((run / "config.yaml").read_text())
    return (config.get("bc") or {}).get("teacher")


if __name__ == "__main__":
    main()
