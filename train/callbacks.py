"""Training callbacks: the agent against the baselines on a fixed validation workload.

Every ``eval_freq`` env steps (and once at the start, so a behaviour-cloned start shows), the agent
plays the validation workloads (fixed sim seeds) deterministically (a portfolio agent samples its
picks, seeded by the workload) and TensorBoard gets:

* ``eval/e2e_mean``, ``eval/e2e_p99``, ``eval/ttft_mean`` (seconds) and ``eval/throughput``
  (output tokens/s), each a mean over the validation workloads;
* the same tags for every reference baseline, in a run of its own beside the agent's
  (``<tb>/baseline-<name>``, so TensorBoard overlays them on the agent's charts): the figures on
  the same workloads, computed once (the heuristics are deterministic) and logged at every
  evaluation, so they draw as constant lines the agent's curve can cross;
* ``eval/best_e2e_mean``; the model with the lowest ``eval/e2e_mean`` so far is saved.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Sequence

import gymnasium as gym
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.logger import TensorBoardOutputFormat

from .agents import baseline_figures, evaluate


def tag_name(spec: str) -> str:
    """A baseline spec as a TensorBoard tag part: ``trail:C=0.5`` -> ``trail_C_0.5``."""
    return re.sub(r"[^A-Za-z0-9.]+", "_", spec).strip("_")


def tensorboard_writer(logger: Any) -> Any:
    """The SummaryWriter of an SB3 logger's TensorBoard output (None without one)."""
    return next((f.writer for f in logger.output_formats if isinstance(f, TensorBoardOutputFormat)), None)


class ServeEvalCallback(BaseCallback):
    """Evaluate on the validation workloads, log ``eval/*`` beside the baselines, keep the best model."""

    def __init__(
        self,
        env_id: str,
        env_kwargs: dict[str, Any],
        sim_seeds: Sequence[int],
        eval_freq: int,
        baselines: Sequence[str],
        best_model_path: str | Path,
        verbose: int = 0,
        portfolio: Sequence[str] | None = None,
    ) -> None:
        super().__init__(verbose)
        self.env_id = env_id
        self.env_kwargs = dict(env_kwargs)
        self.sim_seeds = list(sim_seeds)
        self.eval_freq = eval_freq
        self.baselines = list(baselines)
        self.best_model_path = Path(best_model_path)
        self.portfolio = None if portfolio is None else tuple(portfolio)  # a portfolio agent's heuristics
        self.best_e2e_mean = float("inf")
        self.last_figures: dict[str, float] = {}
        self.baseline_results: dict[str, dict[str, float]] = {}
        self.baseline_writers: dict[str, Any] = {}
        self._last_eval = 0

    def _on_training_start(self) -> None:
        self.eval_env = gym.make(self.env_id, **self.env_kwargs)
        if self.portfolio is not None:
            from .portfolio import PortfolioWrapper

            self.eval_env = PortfolioWrapper(self.eval_env, self.portfolio)
        config = self.eval_env.unwrapped.config  # type: ignore[attr-defined]
        self.baseline_results = baseline_figures(config, self.baselines, self.sim_seeds)
        writer = tensorboard_writer(self.logger)
        if writer is not None:  # one run per baseline beside the agent's: same tags, overlaid charts
            from torch.utils.tensorboard import SummaryWriter

            for name in self.baseline_results:
                self.baseline_writers[name] = SummaryWriter(str(Path(writer.log_dir) / f"baseline-{tag_name(name)}"))
        self.evaluate_now()

    def _on_training_end(self) -> None:
        for writer in self.baseline_writers.values():
            writer.close()

    def _on_step(self) -> bool:
        if self.eval_freq > 0 and self.num_timesteps - self._last_eval >= self.eval_freq:
            self.evaluate_now()
        return True

    def evaluate_now(self) -> None:
        self._last_eval = self.num_timesteps
        figures = evaluate(self.model, self.eval_env, self.sim_seeds)
        self.last_figures = figures
        for metric, value in figures.items():
            self.logger.record(f"eval/{metric}", value)
        for name, writer in self.baseline_writers.items():
            for metric, value in self.baseline_results[name].items():
                writer.add_scalar(f"eval/{metric}", value, self.num_timesteps)
            writer.flush()
        if figures["e2e_mean"] < self.best_e2e_mean:
            self.best_e2e_mean = figures["e2e_mean"]
            self.model.save(self.best_model_path)
        self.logger.record("eval/best_e2e_mean", self.best_e2e_mean)
        self.logger.dump(self.num_timesteps)
        if self.verbose:
            reference = ", ".join(f"{n} {r['e2e_mean']:.3f}" for n, r in self.baseline_results.items())
            print(f"eval @ {self.num_timesteps:,} steps: e2e mean {figures['e2e_mean']:.3f} s (best "
                  f"{self.best_e2e_mean:.3f}; {reference}), p99 {figures['e2e_p99']:.2f} s")
