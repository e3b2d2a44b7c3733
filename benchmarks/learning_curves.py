"""Draw the validation curves of ``llmsched-train`` runs, with their baselines as constant lines.

Each run directory's ``tb/`` holds the agent's ``eval/e2e_mean`` by PPO step (step 0: after behaviour
cloning) and, in ``tb/baseline-<name>/``, the same figure for each validation baseline on the same
workloads. Runs given together must share their validation workloads (same scenario, episode length
and ``eval_seed``); the baselines are drawn from the first run.

    python benchmarks/learning_curves.py RUN[=LABEL] [RUN[=LABEL] ...] --out benchmarks/assets/learning_curve.png [--level NAME=SECONDS]

``--level`` adds a dotted line at a figure measured elsewhere (e.g. an untrained agent's validation
mean latency).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.ablation_learning import curve  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", metavar="RUN[=LABEL]")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--title", default=None)
    parser.add_argument("--level", nargs="*", default=[], metavar="NAME=SECONDS")
    args = parser.parse_args()

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 4.2))
    first: Path | None = None
    for item in args.runs:
        path, _, label = item.partition("=")
        run = Path(path)
        first = first or run
        steps, values = curve(run)
        if not len(values):
            raise SystemExit(f"{run}: no eval/e2e_mean in {run / 'tb'}")
        ax.plot(steps, values, marker="o", markersize=3, label=label or run.name)
        print(f"{label or run.name}: start {values[0]:.3f} s, best {values.min():.3f} s (step {steps[values.argmin()]:,}), last {values[-1]:.3f} s")
    assert first is not None
    for tb in sorted(first.glob("tb/baseline-*")):
        _, values = curve(first, f"tb/{tb.name}")
        if len(values):
            name = tb.name.removeprefix("baseline-")
            ax.axhline(values[0], linestyle="--", linewidth=1, color="grey")
            ax.annotate(f"{name} {values[0]:.2f} s", (1.0, values[0]), xycoords=("axes fraction", "data"), ha="right", va="bottom", fontsize=8, color="grey")
            print(f"{name}: {values[0]:.3f} s")
    for item in args.level:
        name, _, value = item.partition("=")
        ax.axhline(float(value), linestyle=":", linewidth=1.2, color="black")
        ax.annotate(f"{name} {float(value):.2f} s", (0.0, float(value)), xycoords=("axes fraction", "data"), ha="left", va="bottom", fontsize=8)
    ax.set_xlabel("PPO env steps (step 0: after behaviour cloning)")
    ax.set_ylabel("validation mean latency (s), lower is better")
    if args.title:
        ax.set_title(args.title)
    ax.legend(loc="center left", bbox_to_anchor=(0.01, 0.78), fontsize=8)  # between the top baselines, clear of the curves
    fig.tight_layout()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out, dpi=110)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
