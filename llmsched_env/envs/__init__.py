"""Gymnasium adapters over ``llmsched_env.sim`` (observation, action, reward); no torch here."""

from .cluster import ClusterEnv
from .network import AgentNetworkEnv
from .serve import GLOBAL_FEATURES, ServeEnv

__all__ = ["GLOBAL_FEATURES", "AgentNetworkEnv", "ClusterEnv", "ServeEnv"]
