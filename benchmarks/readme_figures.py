"""The README's pictures of the evaluation plots and of the env's rgb_array rendering.

Runs one evaluation grid (``mixed-slo``: chat and summarization, each class with its SLO; seven
policies; loads 0.6, 0.8 and 0.95; 3 seeds: 20-40 s on 2 cores), then writes small palette PNGs of
its latency, tail and CDF plots and one frame of ``llmsched/Serve-v2``'s ``rgb_array`` rendering
(its default scenario) to ``eval/assets/``.

    python benchmarks/readme_figures.py [--out eval_out/readme]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

ASSETS = ROOT / "eval" / "assets"
GRID = [
    "--scenarios", "mixed-slo", "--policies", "fcfs", "sjf", "srpt", "trail", "mlfq", "mcsf", "vllm-recompute",
    "--loads", "0.6", "0.8", "0.95", "--num-seeds", "3", "--no-tensorboard",
]  # fmt: skip
PLOTS = ("latency_vs_load", "tail_vs_load", "cdf")


def small_png(source: Path, target: Path, colors: int = 128) -> None:
    """A palette copy of a plot: the same picture at about a third of the bytes."""
    from PIL import Image

    Image.open(source).convert("RGB").quantize(colors=colors).save(target, optimize=True)


def render_frame(target: Path, steps: int = 400) -> None:
    """One rgb_array frame of Serve-v2 (its default scenario) after ``steps`` steps of FCFS scores."""
    import gymnasium as gym
    import numpy as np
    from PIL import Image

    import llmsched_env  # noqa: F401  (registers the ids)

    env = gym.make("llmsched/Serve-v2", render_mode="rgb_array", num_requests=300)
    env.reset(seed=0)
    for _ in range(steps):
        scores = np.linspace(1.0, -1.0, env.action_space.shape[0], dtype=np.float32)  # slot order
        _, _, terminated, truncated, _ = env.step(scores)
        if terminated or truncated:
            break
    Image.fromarray(env.render()).quantize(colors=64).save(target, optimize=True)
    env.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="eval_out/readme", help="the evaluation's output folder")
    args = parser.parse_args()
    from eval.cli import main as evaluate

    if evaluate(GRID + ["--out", args.out]) != 0:
        sys.exit("the evaluation failed")
    ASSETS.mkdir(parents=True, exist_ok=True)
    for name in PLOTS:
        small_png(Path(args.out) / "plots" / f"mixed-slo-{name}.png", ASSETS / f"mixed-slo-{name}.png")
    render_frame(ASSETS / "serve_rgb_array.png")
    for path in sorted(ASSETS.glob("*.png")):
        print(f"{path.relative_to(ROOT)}: {path.stat().st_size / 1024:.0f} KiB")


if __name__ == "__main__":
    main()
