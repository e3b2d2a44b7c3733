"""Evaluation of scheduling policies: ``llmsched-eval`` (``python -m eval``).

Runs every policy on the same grid of workloads, loads, hardware, engine presets and seeds with
common random numbers, aggregates over seeds with confidence intervals and paired ratios to a
reference policy, searches capacities, and writes tables, plots and TensorBoard logs
. ``eval/cli.py`` documents the command and its outputs.

>>> from eval import EvalConfig, evaluate
>>> evaluate(EvalConfig(policies=("fcfs", "sjf"), loads=(0.9,), seeds=2, out="eval_out/quick"))
"""

from .cli import evaluate, main
from .config import CapacityConfig, EvalConfig, load_eval_config

__all__ = ["CapacityConfig", "EvalConfig", "evaluate", "load_eval_config", "main"]
