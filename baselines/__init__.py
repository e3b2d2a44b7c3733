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

from typing import Any

from llmsched_env.sim.validation import ConfigError, check_known_keys

from .agent import PolicyAgent
from .base import Baseline
from .fcfs import FCFS
from .mcsf import MCSF
from .mlfq import MLFQ
from .preemption import CostAware, SwapFirst, VLLMRecompute
from .sjf import SJF
from .sprpt import SPRPT
from .srpt import SRPT
from .trail import Trail

_POLICIES: dict[str, type[Baseline]] = {
    cls.key: cls for cls in (FCFS, MCSF, MLFQ, SJF, SPRPT, SRPT, Trail, VLLMRecompute, SwapFirst, CostAware)
}


def available() -> list[str]:
    """Names of the baselines, sorted."""
    return sorted(_POLICIES)


def _policy_class(name: str) -> type[Baseline]:
    if name not in _POLICIES:
        raise ConfigError(f"baseline={name!r} is invalid: expected one of {', '.join(available())}")
    return _POLICIES[name]


def make(name: str, **params: Any) -> Baseline:
    """Build the baseline ``name`` with ``params`` (each validated; unknown ones are errors)."""
    cls = _policy_class(name)
    check_known_keys(f"baseline {name!r}", params, cls.param_names())
    return cls(**params)


def parse(spec: str) -> Baseline:
    """Build a baseline from ``"name"`` or ``"name:key=value,key=value"``.

    Values are read as int, then float, then ``true``/``false``, else kept as strings, e.g.
    ``"trail:C=0.5"``, ``"mlfq:levels=4,base_quantum=16"``.
    """
    name, params = parse_spec(spec, "baseline")
    return make(name, **params)


def parse_spec(spec: str, what: str) -> tuple[str, dict[str, Any]]:
    """``"name:key=value,..."`` as ``(name, params)`` (``what`` names the kind in errors)."""
    if not isinstance(spec, str) or not spec.strip():
        raise ConfigError(f"{what} spec {spec!r} is invalid: expected 'name' or 'name:key=value,...'")
    name, _, rest = spec.partition(":")
    params: dict[str, Any] = {}
    for item in rest.split(",") if rest.strip() else []:
        key, eq, value = item.partition("=")
        if not eq or not key.strip() or not value.strip():
            raise ConfigError(f"{what} spec {spec!r}: {item!r} is invalid: expected key=value")
        params[key.strip()] = _value(value.strip())
    return name.strip(), params


def _value(text: str) -> Any:
    for convert in (int, float):
        try:
            return convert(text)
        except ValueError:
            pass
    lowered = text.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    return text


def describe(name: str) -> str:
    """One line saying what the baseline is (for ``--help`` and listings)."""
    doc = _policy_class(name).__doc__ or ""
    return doc.strip().splitlines()[0] if doc.strip() else name


from . import network, systems  # noqa: E402  (they use parse, defined above)

__all__ = [
    "FCFS",
    "MCSF",
    "MLFQ",
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
    "systems",
]
