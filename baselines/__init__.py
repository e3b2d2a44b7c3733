"""Heuristic scheduling baselines from the LLM-serving literature, and a registry to build them.

One module per policy, each saying what the policy is and where it comes from:

* ``fcfs``  — first come, first served, non-preemptive (vLLM's default).
* ``sjf``   — shortest predicted job first, non-preemptive (SSJF, Qiu et al. 2024).
* ``srpt``  — shortest remaining processing time with the true lengths (oracle), preemptive.
* ``sprpt`` — shortest predicted remaining processing time, preemptive (Mitzenmacher & Shahout 2025).
* ``trail`` — SPRPT on refined predictions with limited preemption (Shahout et al., ICLR 2025).
* ``mlfq``  — FastServe's skip-join multi-level feedback queue (Wu et al. 2023).
* ``mcsf``  — memory-constrained shortest first with admission control (Jaillet et al. 2025),
  optionally with an aging guard (``mcsf:max_wait_s=60``).
* ``vllm-recompute``, ``swap-first``, ``cost-aware`` — FCFS with a choice of preemption mode
  (:mod:`baselines.preemption`).

:class:`~baselines.agent.PolicyAgent` drives the Gymnasium environment with any of them.

Every policy implements the engine's interface (:mod:`llmsched_env.sim.policy`), so the same object
drives :func:`llmsched_env.sim.simulate` directly or acts as an agent in the environments.
:mod:`baselines.systems` names the serving systems Li, Dai and Peng (2025) compare (engine
settings plus a policy).

>>> import baselines
>>> baselines.available()
['cost-aware', 'fcfs', 'mcsf', 'mlfq', 'sjf', 'sprpt', 'srpt', 'swap-first', 'trail', 'vllm-recompute']
>>> baselines.parse("trail:C=0.5").name
'trail:C=0.5'
"""

from __future__ import annotations

from . import network, systems
from .agent import PolicyAgent
from .base import Baseline
from .fcfs import FCFS
from .mcsf import MCSF
from .mlfq import MLFQ
from .preemption import CostAware, SwapFirst, VLLMRecompute
from .registry import ORACLES, available, describe, make, parse, parse_spec
from .sjf import SJF
from .sprpt import SPRPT
from .srpt import SRPT
from .trail import Trail

__all__ = [
    "FCFS",
    "MCSF",
    "MLFQ",
    "ORACLES",
    "SJF",
    "SPRPT",
    "SRPT",
    "Baseline",
    "CostAware",
    "PolicyAgent",
    "SwapFirst",
    "Trail",
    "VLLMRecompute",
    "available",
    "describe",
    "make",
    "network",
    "parse",
    "parse_spec",
    "systems",
]
