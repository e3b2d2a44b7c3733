"""Gymnasium adapters over ``llmsched_env.sim`` (observation, action, reward); no torch here."""

from .serve import GLOBAL_FEATURES, ServeEnv

__all__ = ["GLOBAL_FEATURES", "ServeEnv"]
