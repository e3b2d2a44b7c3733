"""Pure simulation of an LLM inference engine (no Gymnasium, torch or CLI imports).

The public API in one place; see each module's docstring, and ``docs/architecture.md`` for the
model, the layers, the event loop and how a policy reaches the engine.
"""

import importlib.machinery as _machinery
import os as _os
import warnings as _warnings

from . import engine as _engine
from . import metrics as _metrics
from . import request as _request
from .api import SimResult, build_engine, simulate
from .capacity import sustainable_rate
from .config import SimConfig, load_config
from .cost import (
    CostModel,
    LinearCostModel,
    ProfileCostModel,
    StaircaseCostModel,
    available_hardware,
    get_hardware,
    resolve_hardware,
)
from .engine import Engine
from .engine_config import BATCHING_RULES, EngineConfig
from .metrics import SLO, StreamingSummary, TimeSeries, summarize
from .policy import FCFS, Policy
from .predictors import PredictorConfig, make_predictor
from .request import PreemptionMode, Request, RequestBatch, RequestState
from .validation import ConfigError
from .workload import WorkloadConfig, available_length_presets, generate


def _compiled(module) -> bool:
    return str(module.__file__).endswith(tuple(_machinery.EXTENSION_SUFFIXES))


#: True when the hot-path modules run as mypyc-compiled C extensions (see setup.py).
COMPILED = all(_compiled(m) for m in (_engine, _metrics, _request))


def _warn_if_stale() -> None:
    for module in (_engine, _metrics, _request):
        if not _compiled(module):
            continue
        binary = str(module.__file__)
        source = binary.rsplit(".", 2)[0] + ".py"
        if _os.path.exists(source) and _os.path.getmtime(source) > _os.path.getmtime(binary):
            _warnings.warn(
                f"{module.__name__} runs compiled from an older {_os.path.basename(source)}: your edits are not "
                "in effect; reinstall (pip install -e .) or reinstall with LLMSCHED_PURE_PYTHON=1",
                stacklevel=3,
            )


_warn_if_stale()

__all__ = [
    "BATCHING_RULES",
    "COMPILED",
    "ConfigError",
    "CostModel",
    "Engine",
    "EngineConfig",
    "FCFS",
    "LinearCostModel",
    "ProfileCostModel",
    "Policy",
    "PredictorConfig",
    "PreemptionMode",
    "Request",
    "RequestBatch",
    "RequestState",
    "SLO",
    "SimConfig",
    "SimResult",
    "StaircaseCostModel",
    "StreamingSummary",
    "TimeSeries",
    "WorkloadConfig",
    "available_hardware",
    "available_length_presets",
    "build_engine",
    "generate",
    "get_hardware",
    "load_config",
    "make_predictor",
    "resolve_hardware",
    "simulate",
    "summarize",
    "sustainable_rate",
]
