"""The registry of the single-engine baselines: names to classes, and specs such as ``"trail:C=0.5"``.

``baselines.available()``, ``baselines.make`` and ``baselines.parse`` are these functions; the
modules that build on them (:mod:`baselines.systems`, :mod:`baselines.network`) import them from
here, so the package's ``__init__`` only gathers names.
"""

from __future__ import annotations

from typing import Any

from llmsched_env.sim.validation import ConfigError, check_known_keys

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


#: baselines that read the true output lengths (``Request.output_len``): bounds, not deployable policies
ORACLES = ("srpt",)


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
