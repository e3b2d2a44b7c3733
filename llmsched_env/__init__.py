"""llmsched: Gymnasium environments and a fast simulator for scheduling in LLM serving systems."""

from . import sim
from .sim import ConfigError, SimConfig, simulate

__version__ = "0.1.0"
__all__ = ["ConfigError", "SimConfig", "__version__", "sim", "simulate"]
