"""Networks of LLM engines serving agent workflows (``llmsched/AgentNetwork-v1``).

A *job* is a workflow of LLM calls: a sequence of *stages*, each stage one call (a chain) or
several calls running in parallel (a fork, joined when all of them finish). Every call runs on a
named engine, a full :class:`~llmsched_env.sim.engine.Engine` with its own cost model and KV
cache. Between stages the job waits for a tool call or think time drawn from its class's delay
distribution. A call's prompt is its own tokens plus ``context`` x the prompt + output tokens of
the previous stage's calls (``context = 1``: the whole conversation so far is sent again).

Queueing view (Li, Dai & Peng 2025, "Throughput-Optimal Scheduling Algorithms for LLM Inference
and AI Agents", §5): every (class, stage, call) is a *buffer* of a multiclass network; a policy
ranks the calls waiting at each engine. On a single engine every work-conserving policy is
throughput-optimal, but in a network the priorities decide stability: in the Rybko–Stolyar
network (preset ``rybko-stolyar``) giving priority to the last stage of each route makes the
backlog grow without bound at load 0.9, while the reverse priorities keep it bounded.

Co-simulation (exact). Each engine keeps its own clock. A call finishing on engine A at time t is
submitted to engine B arriving at t + delay, and B must not have built a batch after that time
without it. The driver keeps, for each engine, the time of its next batch build ``T`` (its clock
while it holds requests, its next known arrival while it is idle, infinity when it has nothing to
do), which is also a lower bound on the time of anything it can still hand to another engine.
It always advances the engine with the smallest ``T`` for one stretch, with ``horizon`` = the
smallest ``T`` of the others (and of the next job arrival): the stretch stops at the first
iteration boundary at or after it, so no batch is ever built after a time at which a request may
still arrive for it. A request that arrives between the end of the last iteration and the clock
of an engine that ran past the horizon joins the batch built at that clock, which is the first
iteration boundary at or after its arrival, exactly as in a single engine
(``tests/test_network.py`` checks hand-computed cases and compares with iteration-by-iteration
stepping).

The package, by part: :mod:`.config` (the network, its YAML layout and its buffers), :mod:`.jobs`
(the job generator), :mod:`.policy` (what a network policy is), :mod:`.driver` (the
co-simulation), :mod:`.metrics` (job-level records and summary) and :mod:`.presets` (the named
networks). Every public name is importable from ``llmsched_env.sim.network``.
"""

from .config import (
    COST_KINDS,
    DELAY_KINDS,
    Buffer,
    CallConfig,
    DelayConfig,
    EngineSpec,
    NetworkConfig,
    WorkflowClass,
    load_network_config,
    network_buffers,
)
from .driver import CALL_FIELDS, Network, NetworkResult, simulate_network
from .jobs import JOB_CHUNK, Call, Job
from .metrics import JOB_RECORD_FIELDS, JobRecordBuffer, job_completion_times, job_summary
from .policy import NetworkPolicy
from .presets import available_network_presets, network_preset

__all__ = [
    "CALL_FIELDS",
    "COST_KINDS",
    "DELAY_KINDS",
    "JOB_CHUNK",
    "JOB_RECORD_FIELDS",
    "Buffer",
    "Call",
    "CallConfig",
    "DelayConfig",
    "EngineSpec",
    "Job",
    "JobRecordBuffer",
    "Network",
    "NetworkConfig",
    "NetworkPolicy",
    "NetworkResult",
    "WorkflowClass",
    "available_network_presets",
    "job_completion_times",
    "job_summary",
    "load_network_config",
    "network_buffers",
    "network_preset",
    "simulate_network",
]
