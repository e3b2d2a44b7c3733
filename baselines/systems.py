"""Named serving systems: the engine settings and policy of each system Li, Dai and Peng study.

Li, Dai and Peng, "Throughput-Optimal Scheduling Algorithms for LLM Inference and AI Agents"
(2025) show that every work-conserving batching rule is throughput-optimal on one engine: Orca
and Sarathi-Serve are, vanilla vLLM (prefill-prioritising, no mixing) and FasterTransformer (static
batches) are not. Each entry of :data:`SYSTEMS` is ``(engine overrides, policy spec, description,
source)``; :func:`system_config` applies one to a run configuration. The engine settings live in
one place, ``configs/systems/<name>.yaml`` (a run configuration for
:func:`llmsched_env.sim.load_config`), read from there; the policy, which is not part of a run
configuration, is named here and in each file's header.

Token budgets: the rules that cannot chunk a prompt need a budget at least as long as the longest
prompt (vLLM V0 requires ``max_num_batched_tokens >= max_model_len`` without chunked prefill);
8,192 covers the default ShareGPT mix (prompt plus output <= 8,192 tokens). Sarathi-Serve uses a
chunk budget of 2,048 tokens, its relaxed-latency setting and the engine's default.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, NamedTuple

import yaml

from llmsched_env.sim.config import SimConfig
from llmsched_env.sim.validation import ConfigError

from .base import Baseline
from .registry import parse


class System(NamedTuple):
    engine: dict[str, Any]  # EngineConfig fields to override
    policy: str  # a baselines.parse spec
    description: str
    source: str


SYSTEM_DIR = Path(__file__).resolve().parents[1] / "configs" / "systems"


def _engine_settings(name: str) -> dict[str, Any]:
    """The ``engine`` section of ``configs/systems/<name>.yaml``."""
    return dict(yaml.safe_load((SYSTEM_DIR / f"{name}.yaml").read_text())["engine"])


SYSTEMS: dict[str, System] = {
    "vllm": System(
        _engine_settings("vllm"),
        "fcfs",
        "vanilla vLLM (V0): prefill-only iterations whenever a request can be admitted, FCFS, recompute preemption",
        "Kwon et al., SOSP 2023; stylised as in Li, Dai & Peng 2025",
    ),
    "orca": System(
        _engine_settings("orca"),
        "fcfs",
        "Orca: iteration-level scheduling, mixed batches of decodes and whole prefills, FCFS",
        "Yu et al., OSDI 2022; stylised as in Li, Dai & Peng 2025",
    ),
    "sarathi": System(
        _engine_settings("sarathi"),
        "fcfs",
        "Sarathi-Serve: stall-free mixed batches, prefills chunked to a 2,048-token budget, FCFS",
        "Agrawal et al., OSDI 2024; stylised as in Li, Dai & Peng 2025",
    ),
    "fastertransformer": System(
        _engine_settings("fastertransformer"),
        "fcfs",
        "FasterTransformer: request-level (static) batches that run until all their requests finish, FCFS",
        "NVIDIA FasterTransformer; stylised as in Li, Dai & Peng 2025",
    ),
}


def system_config(name: str, base: SimConfig) -> tuple[SimConfig, Baseline]:
    """``base`` with the engine settings of system ``name``, and that system's policy."""
    if name not in SYSTEMS:
        raise ConfigError(f"system={name!r} is invalid: expected one of {', '.join(sorted(SYSTEMS))}")
    system = SYSTEMS[name]
    return base.replace(engine=dataclasses.replace(base.engine, **system.engine)), parse(system.policy)
