"""llmsched: Gymnasium environments and a fast simulator for scheduling in LLM serving systems.

``import llmsched_env`` registers the environments::

    import gymnasium as gym
    import llmsched_env

    env = gym.make("llmsched/Serve-v2", scenario="chat-bursty", num_slots=64)
    llmsched_env.scenarios.names()   # the named settings: chat-a100-40gb, chat-bursty, reasoning, ...
"""

import gymnasium as gym

from . import scenarios, sim
from .sim import ConfigError, SimConfig, simulate

__version__ = "0.1.0"

# max_episode_steps is a safety net: episodes end when their requests have all left the system.
# v2: scenarios (llmsched_env.scenarios), the default chat-a100-40gb, where the order matters; the
# "queue" slot layout (waiting requests stay visible, decision features). v0/v1: "kv-first".
gym.register(
    id="llmsched/Serve-v2",
    entry_point="llmsched_env.envs.serve:ServeEnv",
    vector_entry_point="llmsched_env.envs.vector:ServeVectorEnv",
    max_episode_steps=100_000,
    kwargs={"scenario": "chat-a100-40gb"},
)
# v1: the simulator's defaults (80 GB A100, 200-request episodes, 32 slots)
gym.register(
    id="llmsched/Serve-v1",
    entry_point="llmsched_env.envs.serve:ServeEnv",
    vector_entry_point="llmsched_env.envs.vector:ServeVectorEnv",
    max_episode_steps=100_000,
)
# v0's dynamics: a waiting request of higher priority evicts KV holders to get in (vLLM V0)
gym.register(
    id="llmsched/Serve-v0",
    entry_point="llmsched_env.envs.serve:ServeEnv",
    max_episode_steps=100_000,
    kwargs={"admission_preemption": True},
)
gym.register(
    id="llmsched/AgentNetwork-v1", entry_point="llmsched_env.envs.network:AgentNetworkEnv", max_episode_steps=100_000
)
gym.register(
    id="llmsched/AgentNetwork-v0",
    entry_point="llmsched_env.envs.network:AgentNetworkEnv",
    max_episode_steps=100_000,
    kwargs={"admission_preemption": True},
)

gym.register(id="llmsched/Cluster-v0", entry_point="llmsched_env.envs.cluster:ClusterEnv", max_episode_steps=1_000_000)

__all__ = ["ConfigError", "SimConfig", "__version__", "scenarios", "sim", "simulate"]
