"""``llmsched/AgentNetwork-v1``: a network of LLM engines serving agent workflows."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from ..sim.config import dataclass_from_dict
from ..sim.cost import lone_request_seconds, resolve_hardware
from ..sim.network import (
    Network,
    NetworkConfig,
    NetworkResult,
    WorkflowClass,
    load_network_config,
    network_buffers,
    network_preset,
)
from ..sim.observe import COUNT_SCALE, NUM_REQUEST_FEATURES, TIME_SCALE, request_features
from ..sim.policy import Policy
from ..sim.predictors import PredictorConfig
from ..sim.request import Request
from ..sim.slots import SlotScorePolicy, check_score_action, select_slots
from ..sim.validation import ConfigError, check_choice, check_positive, fail
from .render import Picture

#: Columns added to ``REQUEST_FEATURES`` for each slot (E engines, C classes).
NETWORK_FEATURES = (
    "engine one-hot (E)",
    "class one-hot (C)",
    "stage",  # stage / (stages - 1) of its job's route (0 for one-stage routes)
    "last_stage",  # 1 if the job leaves the network after this call
    "job_age",  # log1p(seconds since the job arrived) / log1p(TIME_SCALE)
)
ENGINE_GLOBALS = ("free_kv", "waiting", "running", "beyond_slots", "clock_lead")
_LOG_COUNT = math.log1p(COUNT_SCALE)
_LOG_TIME = math.log1p(TIME_SCALE)


class _AgentScores:
    """The env's network policy: on each engine, the agent's scores for the visible requests."""

    name = "agent"

    def __init__(self) -> None:
        self.engines: list[SlotScorePolicy] = []

    def engine_policies(self, network: Network) -> list[Policy]:
        self.engines = [SlotScorePolicy() for _ in network.engine_names]
        return list(self.engines)


class AgentNetworkEnv(gym.Env):
    """Several LLM engines serving multi-call agent jobs, scheduled by the agent.

    ## Description

    Jobs of several classes arrive; each is a workflow of LLM calls (a chain, or stages of
    parallel calls joined before the next stage), each call served by a named engine with its
    own cost model and KV cache, with tool-call / think-time delays between stages and prompts that
    may include the previous calls' context (``llmsched_env.sim.network``). The engines are
    co-simulated exactly in time order. The agent ranks the calls waiting at every engine. Li, Dai
    and Peng (2025) show that on one engine every work-conserving order is throughput-optimal, but
    in a network the order decides stability: with the default ``rybko-stolyar`` preset, priority
    to the last call of each route makes the backlog grow without bound at load 0.9, while the
    reverse is stable. Decision epochs are the epochs of the engines (an arrival, a completion, a
    preemption at any engine).

    ## Observation Space

    A ``Dict``:

    * ``"requests"``: ``Box(0, 10, (E * K, F), float32)``: ``K = num_slots`` rows per engine
      (engine ``e`` owns rows ``e*K .. e*K + K-1``), each a visible call: the features of
      ``llmsched_env.sim.observe.REQUEST_FEATURES`` (state, lengths, predictions, age, KV...),
      then the engine and class one-hots, the call's stage in its route, whether it is the last
      one and the job's age (``NETWORK_FEATURES``). Each engine shows the calls holding KV first
      (in priority order), then the oldest others; rows beyond them are zero.
    * ``"mask"``: ``Box(0, 1, (E * K,), float32)``, 1 where a row holds a call.
    * ``"globals"``: ``Box(0, 10, (G,), float32)``: per engine ``ENGINE_GLOBALS`` (free KV, waiting
      and running calls, calls beyond the slots, how far its clock is ahead of the network time),
      then the calls of every buffer (class, stage) in the network and the jobs of every class in
      the system (log-scaled), the time, and the fractions of jobs arrived and completed.

    ## Action Space

    ``Box(-1, 1, (E * K,), float32)``: a score per row; at each engine **higher scores are served
    first** (as in ``llmsched/Serve-v1``'s ``rank`` mode). Calls outside the slots keep FCFS order
    behind the visible ones. Scores of empty rows are ignored; NaN, infinite or out-of-range
    scores (outside [-1, 1]), values that are not numbers and wrong shapes are errors, by the same
    rule as Serve's (SB3 clips its actions to the space before stepping).

    ## Rewards

    Minus the number of JOBS in the system (arrived, not finished, wherever they are: at an engine
    or waiting out a tool call) integrated over the step's simulated time, divided by
    ``reward_scale``. The undiscounted return is minus the total job completion time over
    ``reward_scale`` (Little's law; jobs unfinished at truncation count up to then). The default
    scale is the expected number of jobs x the mean completion time of a job alone in the network,
    so the return is about minus the mean job completion time in units of that time.

    ## Starting State

    Idle engines with empty KV caches; the first observation is taken at the first decision epoch.
    If the run ends before one (no job arrives within ``max_time_s``, or every call is rejected),
    ``reset`` still returns, and the first step ends the episode.
    The jobs (arrivals, lengths, delays, predictions) come from the seed: ``reset(seed=s)`` seeds the
    environment's generator, which draws the simulation seed; ``reset(options={"sim_seed": n})``
    gives it directly (the same jobs as ``simulate_network(config, seed=n)``).

    ## Episode End

    ``terminated`` once every job has left the network. ``truncated`` when the simulated time
    reaches ``max_time_s`` (jobs still inside are reported unfinished), or by the ``TimeLimit``
    wrapper (``max_episode_steps``, a safety net). ``info`` at every step: network time, jobs
    arrived, completed and in the system; at the end ``info["summary"]``, the job-level summary of
    ``llmsched_env.sim.network`` (completion time percentiles, per-class throughput, per-engine
    utilisation and backlog, stability verdict).

    ## Arguments

    ``preset`` (``rybko-stolyar`` | ``coding-agents``) or ``config_path`` (a YAML network, see
    ``configs/network/``); ``num_jobs`` (jobs per episode; None: until ``max_time_s``) and
    ``max_time_s`` replace the preset's run length; ``rate_scale`` multiplies every class's arrival
    rate; ``predictor`` / ``predictor_sigma`` replace the output-length predictor; ``num_slots`` (K,
    per engine); ``admission_preemption`` (None keeps each engine's own setting, True or False
    sets it on every engine); ``reward_scale``; ``render_mode`` (``ansi``: text; ``rgb_array``: a
    labelled picture of each engine's KV in use and the jobs in the network over time, drawn with
    matplotlib; ``human``: that picture in a matplotlib window, redrawn at each step). Unknown or invalid
    arguments raise ``ConfigError`` naming the argument and what is allowed.

    ## Version History

    * v1: the engines admit calls only into free KV blocks (``EngineConfig.admission_preemption``
      False, vLLM V1 semantics); a call no longer evicts lower-priority holders to get in.
    * v0: initial version (calls of higher priority evicted KV holders to be admitted). Still
      registered: ``llmsched/AgentNetwork-v0`` is v1 with ``admission_preemption=True``.
    """

    metadata = {"render_modes": ["ansi", "rgb_array", "human"], "render_fps": 4}

    def __init__(
        self,
        *,
        preset: str = "rybko-stolyar",
        config_path: str | None = None,
        num_jobs: int | None = 200,
        max_time_s: float | None = None,
        rate_scale: float = 1.0,
        predictor: str | None = None,
        predictor_sigma: float | None = None,
        num_slots: int = 16,
        admission_preemption: bool | None = None,
        reward_scale: float | None = None,
        render_mode: str | None = None,
        **unknown: Any,
    ) -> None:
        if unknown:
            allowed = sorted(k for k in AgentNetworkEnv.__init__.__kwdefaults__ or {} if k != "unknown")
            raise ConfigError(
                f"llmsched/AgentNetwork-v1: unknown argument(s) {', '.join(map(repr, sorted(unknown)))}; allowed: "
                + ", ".join(allowed)
            )
        num_slots = check_positive("num_slots", num_slots, integer=True)
        if reward_scale is not None:
            check_positive("reward_scale", reward_scale)
        if render_mode is not None:
            check_choice("render_mode", render_mode, self.metadata["render_modes"])
        config = load_network_config(config_path) if config_path is not None else network_preset(preset)
        predictor_fields = {k: v for k, v in (("kind", predictor), ("sigma", predictor_sigma)) if v is not None}
        if predictor_fields:
            base = {**dataclasses.asdict(config.predictor), **predictor_fields}
            config = config.replace(predictor=dataclass_from_dict(PredictorConfig, base, "predictor"))
        if admission_preemption is not None:
            if not isinstance(admission_preemption, bool):
                raise fail("admission_preemption", admission_preemption, "true, false or null (each engine's own setting)")
            engines = tuple(
                dataclasses.replace(e, engine=dataclasses.replace(e.engine, admission_preemption=admission_preemption))
                for e in config.engines
            )
            config = config.replace(engines=engines)
        self.config: NetworkConfig = config.replace(num_jobs=num_jobs, max_time_s=max_time_s).scaled(rate_scale)
        self.num_slots = int(num_slots)
        self.render_mode = render_mode
        self.num_engines = len(self.config.engines)
        self.num_classes = len(self.config.classes)
        self._expected_jobs = self.config.num_jobs or max(sum(_expected_jobs(wf, self.config.max_time) for wf in self.config.classes), 1.0)
        self._reward_scale = reward_scale if reward_scale is not None else self._default_reward_scale()
        self.num_buffers = len(network_buffers(self.config))
        self._stages = [len(wf.stages) for wf in self.config.classes]
        self.num_features = NUM_REQUEST_FEATURES + self.num_engines + self.num_classes + 3
        num_globals = len(ENGINE_GLOBALS) * self.num_engines + self.num_buffers + self.num_classes + 3
        rows = self.num_engines * self.num_slots
        self.observation_space = spaces.Dict(
            {
                "requests": spaces.Box(0.0, 10.0, (rows, self.num_features), np.float32),
                "mask": spaces.Box(0.0, 1.0, (rows,), np.float32),
                "globals": spaces.Box(0.0, 10.0, (num_globals,), np.float32),
            }
        )
        self.action_space = spaces.Box(-1.0, 1.0, (rows,), np.float32)
        self.network: Network | None = None
        self.slots: list[list[Request]] = []
        self.result: NetworkResult | None = None
        self._picture: Picture | None = None

    # ------------------------------------------------------------------------------ episode
    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        options = options or {}
        unknown = set(options) - {"sim_seed"}
        if unknown:
            raise ConfigError(f"reset options {sorted(unknown)} are unknown; allowed: 'sim_seed'")
        sim_seed = options.get("sim_seed")
        self.sim_seed = int(self.np_random.integers(0, 2**31 - 1)) if sim_seed is None else int(sim_seed)
        self.policy = _AgentScores()
        self.network = Network(self.config, self.policy, seed=self.sim_seed)
        self.result = None
        if self.render_mode in ("rgb_array", "human"):
            if self._picture is not None:
                self._picture.close()
            self._picture = Picture(self.render_mode, list(self.network.engine_names), ["jobs in the network"], "jobs", self.metadata["render_fps"])
        # runs to the first decision epoch; if the run ends before one (no job in time, or every
        # call rejected), the first step ends the episode: every reset gives at least one step
        self.network.run_until_epoch()
        if self.render_mode == "human":
            self.render()
        return self._observe(), self._info()

    def step(self, action):
        network = self.network
        if network is None:
            raise gym.error.ResetNeeded("call reset() before step()")
        if self.result is not None:
            raise gym.error.ResetNeeded("the episode is over: call reset()")
        scores = self._check_scores(action)
        K = self.num_slots
        for e, (engine, slots) in enumerate(zip(network.engines, self.slots)):
            self.policy.engines[e].set_scores(slots, scores[e * K : e * K + len(slots)])
            engine.rescore(())  # take the new scores at the engine's next step
        reward = self._advance()
        truncated = self.result is not None and network.truncated
        if self.render_mode == "human":
            self.render()
        return self._observe(), reward, self.result is not None and not truncated, truncated, self._info()

    def _advance(self) -> float:
        """Run the network to the next decision epoch; the reward of the time that passed."""
        network = self.network
        assert network is not None
        area = network.job_area
        if not network.run_until_epoch():
            self.result = network.finish()
        if self._picture is not None:
            kv = tuple(1.0 - e.free_blocks / e.num_blocks for e in network.engines)
            self._picture.history.add(network.time, kv, (network.jobs_in_system,))
        return -float(network.job_area - area) / self._reward_scale

    def _check_scores(self, action) -> np.ndarray:
        K = self.num_slots
        occupied = np.zeros(self.num_engines * K, dtype=bool)
        for e, slots in enumerate(self.slots):
            occupied[e * K : e * K + len(slots)] = True
        what = f"one score per slot ({K} slots x {self.num_engines} engines)"
        return check_score_action(action, self.action_space.shape, occupied, what).astype(np.float64)

    def _default_reward_scale(self) -> float:
        """Expected jobs x mean completion time of a job alone in the network (s)."""
        config = self.config
        buffers = network_buffers(config)
        costs = [(resolve_hardware(s.engine, s.cost).cost, s.engine.max_num_batched_tokens) for s in config.engines]
        weights, lone = [], []
        for c, wf in enumerate(config.classes):
            stage_time = [0.0] * len(wf.stages)
            for b in buffers:
                if b.cls == c:
                    cost, budget = costs[b.engine]
                    t = lone_request_seconds(cost, budget, round(b.mean_prompt), round(b.mean_output))
                    stage_time[b.stage] = max(stage_time[b.stage], t)
            lone.append(sum(stage_time) + (len(wf.stages) - 1) * wf.delay.mean())
            weights.append(_job_share(wf))
        return self._expected_jobs * float(np.dot(weights, lone) / sum(weights))

    # ------------------------------------------------------------------------------ observation
    def _observe(self) -> dict[str, np.ndarray]:
        network = self.network
        assert network is not None
        E, K, F = self.num_engines, self.num_slots, self.num_features
        requests = np.zeros((E * K, F), dtype=np.float32)
        mask = np.zeros(E * K, dtype=np.float32)
        self.slots = []
        for e, engine in enumerate(network.engines):
            engine.sync()
            slots = [] if self.result is not None else select_slots(engine.live, engine.holders, self.num_slots, 0)
            self.slots.append(slots)
            n = len(slots)
            if not n:
                continue
            rows = np.zeros((n, F), dtype=np.float64)
            rows[:, :NUM_REQUEST_FEATURES] = np.asarray(
                request_features(slots, engine.now, engine.num_blocks, engine.block_size), np.float64
            ).reshape(n, NUM_REQUEST_FEATURES)
            rows[:, NUM_REQUEST_FEATURES + e] = 1.0
            base = NUM_REQUEST_FEATURES + E
            for j, r in enumerate(slots):
                call = r.meta
                b = call.buffer  # type: ignore[attr-defined]
                rows[j, base + b.cls] = 1.0
                stages = self._stages[b.cls]
                rows[j, base + self.num_classes] = b.stage / (stages - 1) if stages > 1 else 0.0
                rows[j, base + self.num_classes + 1] = 1.0 if b.last else 0.0
                age = max(engine.now - call.job.arrival, 0.0)  # type: ignore[attr-defined]
                rows[j, base + self.num_classes + 2] = math.log1p(age) / _LOG_TIME
            requests[e * K : e * K + n] = rows
            mask[e * K : e * K + n] = 1.0
        return {"requests": np.minimum(requests, 10.0), "mask": mask, "globals": self._globals()}

    def _globals(self) -> np.ndarray:
        network = self.network
        assert network is not None
        values: list[float] = []
        for engine, slots in zip(network.engines, self.slots):
            holders = len(engine.holders)
            waiting = len(engine.live) - holders - engine.n_swapped
            lead = max(engine.now - network.time, 0.0)
            values += [
                engine.free_blocks / engine.num_blocks,
                math.log1p(waiting) / _LOG_COUNT,
                math.log1p(engine.batch_size) / _LOG_COUNT,
                math.log1p(max(len(engine.live) - len(slots), 0)) / _LOG_COUNT,
                math.log1p(lead) / _LOG_TIME,
            ]
        values += [math.log1p(q) / _LOG_COUNT for q in network.buffer_calls]
        values += [math.log1p(n) / _LOG_COUNT for n in network.class_jobs]
        expected = self._expected_jobs
        values += [
            math.log1p(network.time) / math.log1p(86400.0),
            network.jobs_arrived / expected,
            network.jobs_completed / expected,
        ]
        return np.minimum(np.asarray(values, dtype=np.float32), 10.0)

    def _info(self) -> dict[str, Any]:
        network = self.network
        assert network is not None
        info: dict[str, Any] = {
            "time_s": network.time,
            "jobs_arrived": network.jobs_arrived,
            "jobs_completed": network.jobs_completed,
            "jobs_in_system": network.jobs_in_system,
            "sim_seed": self.sim_seed,
        }
        if self.result is not None:
            info["summary"] = self.result.summary
        return info

    # ------------------------------------------------------------------------------ rendering
    def close(self) -> None:
        if self._picture is not None:
            self._picture.close()
        super().close()

    def render(self):
        if self.render_mode is None or self.network is None:
            return None
        network = self.network
        if self._picture is not None:
            return self._picture.render(f"t = {network.time:,.1f} s, {network.jobs_completed:,} of {network.jobs_arrived:,} jobs done")
        lines = [f"t={network.time:.3f}s  jobs in system {network.jobs_in_system}"]
        for e, (name, engine) in enumerate(zip(network.engine_names, network.engines)):
            queues = "  ".join(
                f"{b.label} {network.buffer_calls[b.index]}" for b in network.buffers if b.engine == e
            )
            kv = 1.0 - engine.free_blocks / engine.num_blocks
            lines.append(f"{name:>8} @{engine.now:.3f}s  batch {engine.batch_size:>4}  kv {kv:5.1%}  calls: {queues}")
        return "\n".join(lines) + "\n"


def _job_share(wf: WorkflowClass) -> float:
    """Weight of a class in the job mix: its rate, or its jobs per second of its arrival times."""
    if wf.rate is not None:
        return wf.rate
    times = wf.arrival_times or (0.0,)
    return len(times) / max(times[-1], 1.0)


def _expected_jobs(wf: WorkflowClass, max_time: float) -> float:
    """Jobs of a class expected within ``max_time`` (s)."""
    if wf.rate is not None:
        return wf.rate * max_time
    return float(sum(1 for t in wf.arrival_times or () if t < max_time))
