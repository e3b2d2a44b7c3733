"""``llmsched/Serve-v2`` (and v0, v1): one LLM inference engine as a Gymnasium environment."""

from __future__ import annotations

import math
from typing import Any, Sequence

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from ..scenarios import EnvOptions, Scenario, resolve
from ..sim import EngineConfig, SimConfig, WorkloadConfig
from ..sim.api import build_engine, livelock_summary
from ..sim.cost import lone_request_seconds, resolve_hardware
from ..sim.engine import Engine
from ..sim.metrics import SLO, TimeSeries, request_metrics, slo_met, summarize
from ..sim.observe import (
    DECISION_FEATURES,
    GLOBAL_FEATURES,
    HIDDEN_FEATURES,
    REQUEST_FEATURES,
    global_features_into,
    request_features_into,
    select_slots,
)
from ..sim.request import PreemptionMode, RecordBuffer, Request, RequestState
from ..sim.slots import (
    AdmissionOrderPolicy,
    SlotScorePolicy,
    admit_action_count,
    check_score_action,
    decode_admit,
    preempt_action,
    rank_action_shape,
)
from ..sim.validation import ConfigError, check_choice, check_nonnegative, fail
from .render import Picture, render_ansi

#: the globals of the ``queue`` slot layout (Serve-v2): ``GLOBAL_FEATURES``, then the summary of
#: the requests left out of the slots (``llmsched_env.sim.observe.HIDDEN_FEATURES``)
QUEUE_GLOBAL_FEATURES: tuple[str, ...] = GLOBAL_FEATURES + HIDDEN_FEATURES
# Serve-v1's defaults: the default simulation (ShareGPT lengths, Llama-2-7B on an 80 GB A100, load
# 0.9) in 200-request episodes with 32 slots. Serve-v2 starts from a scenario instead.
LEGACY_V1 = Scenario(
    name="serve-v1",
    summary="Serve-v1's defaults",
    # the polynomial cost model v1 was built on (the profile-driven one is v2's)
    sim=SimConfig(engine=EngineConfig(hardware="llama2-7b/a100-poly"), workload=WorkloadConfig(num_requests=200)),
    env=EnvOptions(num_slots=32, episode_requests=200, slot_layout="kv-first"),
)
RATE_SMOOTHING = 0.1  # weight of the newest inter-arrival time in the arrival-rate estimate


class ServeEnv(gym.Env):
    """One LLM inference engine serving a stream of requests, scheduled by the agent.

    ## Description

    The simulator of ``llmsched_env.sim``: continuous batching on one GPU (Sarathi-style chunked
    prefill by default), a paged KV cache with preemption, requests drawn from a workload preset or
    a trace, and noisy output-length predictions. The agent decides the priority order in which
    the engine fills its batches (``rank`` mode) or which waiting request to admit next (``admit``
    mode). Decisions are taken at *decision epochs*: an arrival, a completion, a preemption, a
    prediction refresh, and optionally every ``decision_interval`` iterations; between epochs the
    engine runs on its own, fast-forwarding over identical iterations.

    ## Observation Space

    A ``Dict``:

    * ``"requests"``: ``Box(0, 10, (num_slots, F), float32)``, one row per visible request with the
      columns of ``env.request_feature_names``: ``llmsched_env.sim.observe.REQUEST_FEATURES``
      (state one-hot, prompt length, prefill progress, generated and predicted lengths, age,
      waiting time, KV held, preemptions, what a recompute or a swap would cost), and in the
      ``queue`` layout also ``DECISION_FEATURES`` (generated / initial prediction, the predicted
      KV footprint at completion and the growth still to come, the request's class one-hot and
      SLO: time left to or past its TTFT target, its TPOT target and its pace against it, neutral
      values without a target), scaled to about [0, 1]. Occupied rows come first; rows beyond the
      requests shown are zero. Which requests are shown (``slot_layout``,
      ``llmsched_env.sim.observe.select_slots``): everyone when everyone fits; otherwise

      - ``queue`` (Serve-v2): ``waiting_slots`` slots (default ``num_slots // 4``) are kept for
        requests without KV, half of them the oldest (the head of the FCFS queue) and half the
        shortest by predicted remaining output; the requests holding KV fill the others (in
        priority order), and slots they leave free go to more requests without KV;
      - ``kv-first`` (Serve-v0/v1): the requests holding KV first (in priority order), then the
        oldest others. Once ``num_slots`` requests hold KV no waiting request is visible.
    * ``"mask"``: ``Box(0, 1, (num_slots,), float32)``, 1 where a slot holds a request.
    * ``"globals"``: ``Box(0, 10, (G,), float32)``, the columns of ``env.global_feature_names``:
      ``GLOBAL_FEATURES`` (free KV, queue lengths, requests beyond the slots, last iteration time,
      arrival-rate estimate over capacity, time, episode progress, free swap space), and in the
      ``queue`` layout the summary of the requests not shown (``HIDDEN_FEATURES``: the oldest one's
      age, the smallest predicted remaining output, the KV they are predicted to still need).

    The true output length never appears, except through the ``oracle`` predictor.

    ## Action Space

    * ``rank`` (default): ``Box(-1, 1, (num_slots,), float32)``, a score per slot; **higher scores
      are served first**. (A scheduling policy's ``priorities()``, the simulator's policy API, runs
      the other way: lower is served first; the env negates the agent's scores into priorities.)
      The engine fills every batch in this order under its slot, token and KV
      limits, so a low score on a running request means it is paused, or preempted when KV runs
      short. Requests outside the slots keep FCFS order behind the visible ones. Scores of empty
      slots are ignored; NaN, infinite or out-of-range scores and wrong shapes are errors (SB3
      clips its actions to the space before stepping).
      With ``preemption_control=True`` the action is ``Box(-1, 1, (num_slots, 5))``, a row per slot:
      ``[score, evict, prefer_recompute, prefer_swap, prefer_restart]``. ``evict > 0`` preempts that
      request now if it holds KV (running or paused), freeing its KV before the engine runs on; the
      largest of the three preferences is the mode used whenever that request is preempted, by the
      agent or by memory pressure (``recompute``: prefill prompt + generated tokens again;
      ``swap``: KV to CPU over PCIe and back, the transfer time charged to the iterations that move
      it, falling back to recompute when the swap space is full; ``restart``: lose the generated
      tokens).
    * ``admit``: ``Discrete(num_slots + 1)``: ``i < num_slots`` admits the waiting request in slot
      ``i`` next (no simulated time passes; the agent may admit several in a row); ``num_slots``
      means *advance*: run the engine until the next epoch. New arrivals wait until admitted;
      admitted requests are served in admission order (a request the engine preempts rejoins on
      its own). ``action_masks()`` (for sb3-contrib's ``MaskablePPO``) and ``info["action_mask"]``
      mark the valid actions: slots with a request not yet admitted, and *advance* unless the engine
      would have nothing to do while requests wait (then the agent must admit one). At least one
      action is always valid. **An invalid action** is replaced by *advance* if that is valid, else
      by the first valid admission, and ``info["invalid_action"]`` is True.
      With ``preemption_control=True`` the action is ``Discrete(4 * num_slots + 1)``: after the
      admissions and *advance*, action ``num_slots + 1 + 3 i + m`` preempts the request in slot
      ``i`` now with mode ``m`` (0 recompute, 1 swap, 2 restart); valid for requests holding KV, swap
      only when the swap space can take them. Preemptions by memory pressure use the engine's
      ``preemption_mode``.

    ## Rewards

    * ``latency`` (default): minus the number of requests in the system integrated over the
      step's simulated time, divided by ``reward_scale``. The undiscounted return is minus the total
      response time of the episode's requests (Little's law; requests unfinished at truncation
      count up to then) over ``reward_scale``. The default scale is ``num_requests`` x the latency of
      a mean-sized request alone on the engine, so the return is minus the mean response time in
      units of that latency (about -1 at low load, -2 to -20 near capacity).
    * ``slo_goodput``: +1 / ``num_requests`` for each request finishing within ``slo_ttft_s`` and
      ``slo_tpot_s`` (return = SLO attainment, in [0, 1]); it needs a target: ``slo_ttft_s`` and/or
      ``slo_tpot_s``, or a scenario with SLO classes (``mixed-slo``), else ``ConfigError``.
    * ``throughput``: output tokens produced during the step / (``num_requests`` x mean output
      length of the mix); the undiscounted return is fixed by the workload if the episode runs to
      the end, so this reward matters with discounting or a time limit (``max_time_s``).

    ## Starting State

    A fresh engine with an empty KV cache; the first observation is taken at the first arrival.
    The workload (arrivals, lengths, predictions) comes from the seed: ``reset(seed=s)`` seeds the
    environment's generator, which draws the simulation seed; ``reset(options={"sim_seed": n})``
    gives the simulation seed directly (the same as ``simulate(config, seed=n)``).

    ## Episode End

    ``terminated`` once all ``num_requests`` requests have left the system. ``truncated`` when the
    simulated time reaches ``max_time_s`` (requests still inside are reported unfinished), when the
    engine stops a run that would never end (requests evicting each other in turn, e.g. by restart
    preemptions, with no request finishing over ``livelock_preemptions`` preemptions per request in
    the system: ``info["livelock"]`` says what happened, ``info["summary"]["livelock"]`` is 1), or by the
    ``TimeLimit`` wrapper (``max_episode_steps``, a safety net). ``info`` at every step: time,
    arrived, completed, tokens, preemptions, KV utilisation; at the end, ``info["summary"]``, the run
    summary of ``llmsched_env.sim.metrics`` (latency percentiles, TTFT, TPOT, throughput,
    unfinished count, ...). The ``TimeLimit`` wrapper cuts an episode from outside, so its last
    ``info`` has no summary: use ``max_time_s`` to end episodes by time with one.

    A heuristic driven through the actions (``baselines.agent.PolicyAgent``) gives exactly the
    engine's run with that policy when every request in the system is visible (``num_slots`` at
    least the requests present) and, in ``admit`` mode, for FCFS; with fewer slots the requests
    beyond them keep FCFS order, which the engine's policy would not.

    ## Arguments

    ``scenario``: a scenario of ``llmsched_env.scenarios`` (a name such as ``chat-bursty``, a
    scenario YAML file, or a :class:`~llmsched_env.scenarios.Scenario`): the simulation (deployment,
    batching, workload, predictor, load) and the agent's options (slots, episode length, reward).
    ``llmsched/Serve-v2`` defaults to ``chat-a100-40gb``; ``llmsched/Serve-v1`` keeps its own
    defaults (the 80 GB A100 at load 0.9, 200-request episodes, 32 slots). Every other keyword
    overrides the scenario (``llmsched_env.scenarios.resolve``); ``num_requests`` is the episode
    length. The keywords: every simulator option, JSON-serialisable: ``hardware``, ``batching``, ``max_num_seqs``,
    ``max_num_batched_tokens``, ``num_gpu_blocks``, ``preemption_mode``, ``admission_preemption``; ``workload`` (a length
    preset) or ``trace_path``; ``arrival``; ``load`` or ``rate``; ``num_requests``;
    ``predictor`` and ``predictor_sigma``; ``reward``, ``reward_scale``, ``slo_ttft_s``,
    ``slo_tpot_s``; ``num_slots``; ``slot_layout`` and ``waiting_slots`` (the observation, above);
    ``action_mode``; ``preemption_control``;
    ``decision_interval``; ``max_time_s``; ``render_mode`` (``ansi``: text; ``rgb_array``: a
    labelled picture of the KV cache in use and the requests in the system over time, drawn with
    matplotlib; ``human``: that picture in a matplotlib window, redrawn at each step); and
    ``engine_kwargs`` / ``workload_kwargs`` / ``predictor_kwargs`` dicts for any other field of
    ``EngineConfig`` / ``WorkloadConfig`` / ``PredictorConfig``. Unknown or invalid arguments raise
    ``ConfigError`` naming the argument and what is allowed.

    ## Version History

    * All versions: the default ``reward_scale`` takes the lone request's latency with its prefill
      chunked by the token budget (it assumed one whole prefill). Dynamics and observations are
      unchanged; returns move by under 0.1 % on the default scenarios and by about 3 % where prompts
      exceed the budget (``agentic-multiturn``). Give ``reward_scale`` to keep a scale fixed.
    * v2: built from a scenario (default ``chat-a100-40gb``: ShareGPT on a 40 GB A100, load 0.95,
      1,000-request episodes, 64 slots), where the order of service changes response times;
      keywords override the scenario and unknown ones name the closest known keyword. Requests
      may carry an SLO class (``mixed-slo``). The ``queue`` slot layout: waiting requests stay
      visible, with the decision features and the summary of the requests not shown (v0/v1 keep
      ``slot_layout="kv-first"``). Iteration times from the profile-driven cost models (v1 keeps the
      ``llama2-7b/a100-poly`` polynomial it was built on).
    * v1: admissions take only free KV blocks (vLLM V1 and SGLang semantics): a waiting request no
      longer evicts lower-priority holders to get in (``admission_preemption=False``); an episode
      cut by ``max_time_s`` before its last arrival is truncated, not terminated.
    * v0: initial version; a waiting request of higher priority evicts KV holders to be admitted
      (vLLM V0's priority scheduling). Still registered: ``llmsched/Serve-v0`` is ``Serve-v1`` with
      ``admission_preemption=True``.
    """

    metadata = {"render_modes": ["ansi", "rgb_array", "human"], "render_fps": 4}

    def __init__(self, *, scenario: "str | Scenario | None" = None, render_mode: str | None = None, **options: Any) -> None:
        base = LEGACY_V1 if scenario is None else scenario
        where = f"ServeEnv(scenario={getattr(base, 'name', base)!r})"
        if render_mode is not None:
            check_choice("render_mode", render_mode, self.metadata["render_modes"])
        check_nonnegative("decision_interval", options.get("decision_interval", 0), integer=True)
        self.config, self.options = resolve(base, where=where, **options)
        env = self.options
        if env.reward == "slo_goodput" and self.config.slo_ttft_s is None and self.config.slo_tpot_s is None and not self.config.slo_classes:
            raise fail(
                "slo_ttft_s", None, "a TTFT and/or TPOT target (slo_ttft_s, slo_tpot_s, or the scenario's slo_classes) when reward='slo_goodput'"
            )
        self.scenario_name = getattr(base, "name", str(base))
        reward, action_mode, preemption_control = env.reward, env.action_mode, env.preemption_control
        num_slots, reward_scale = env.num_slots, env.reward_scale
        slo_ttft_s, slo_tpot_s = self.config.slo_ttft_s, self.config.slo_tpot_s
        self.reward_kind = reward
        self.action_mode = action_mode
        self.preemption_control = preemption_control
        self.num_slots = int(num_slots)
        self.slot_layout = env.slot_layout
        self.waiting_slots = env.reserved_waiting_slots
        queue = env.slot_layout == "queue"
        self._decision = queue
        #: the column names of ``"requests"`` and ``"globals"`` in this env's layout
        self.request_feature_names = REQUEST_FEATURES + DECISION_FEATURES if queue else REQUEST_FEATURES
        self.global_feature_names = QUEUE_GLOBAL_FEATURES if queue else GLOBAL_FEATURES
        self.render_mode = render_mode
        self._hardware = resolve_hardware(self.config.engine)
        self._num_blocks = self._hardware.num_blocks
        self._block_size = self.config.engine.block_size
        self._reward_scale = reward_scale
        self._slo = SLO(ttft_s=slo_ttft_s, tpot_s=slo_tpot_s)

        K = self.num_slots
        self.observation_space = spaces.Dict(
            {
                "requests": spaces.Box(0.0, 10.0, (K, len(self.request_feature_names)), np.float32),
                "mask": spaces.Box(0.0, 1.0, (K,), np.float32),
                "globals": spaces.Box(0.0, 10.0, (len(self.global_feature_names),), np.float32),
            }
        )
        if action_mode == "rank":
            self.action_space = spaces.Box(-1.0, 1.0, rank_action_shape(K, preemption_control), np.float32)
        else:  # admissions, advance, and with preemption control (slot, mode) preemptions
            self.action_space = spaces.Discrete(admit_action_count(K, preemption_control))
        self.engine: Engine | None = None
        self.slots: list[Request] = []
        self._wakeup_source: Any = None
        self._picture: Picture | None = None

    @classmethod
    def from_config(cls, config: SimConfig, **options: Any) -> "ServeEnv":
        """An env over a full :class:`SimConfig` (engine, workload, predictor, load or rate, SLO,
        time limit, decision interval); ``options`` are the env's own arguments (``num_slots``,
        ``action_mode``, ``reward``, ...) or any other override of :func:`llmsched_env.scenarios.resolve`.
        Episodes serve ``config.workload.num_requests`` requests. The workload of an episode comes
        from ``reset`` (``options={"sim_seed": n}`` serves ``simulate(config, seed=n)``'s
        requests), not from ``config.seed``."""
        import dataclasses

        scenario = Scenario(name="config", sim=config, env=EnvOptions(episode_requests=config.workload.num_requests))
        env = cls(scenario=scenario, **options)
        env.config = dataclasses.replace(env.config, seed=config.seed, keep_records=config.keep_records)
        return env

    def set_wakeup(self, source: Any) -> None:
        """Let ``source(requests, now) -> iterations | None`` request extra decision epochs (for
        policies with wake-ups driven through the env). Takes effect at the next ``reset``."""
        self._wakeup_source = source

    # ------------------------------------------------------------------------------ episode
    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        self.sim_seed = reset_sim_seed(self.np_random, options)
        self.policy = SlotScorePolicy() if self.action_mode == "rank" else AdmissionOrderPolicy()
        self.policy.wakeup_source = self._wakeup_source
        self.records = RecordBuffer()
        self.series = TimeSeries()
        self.engine, self.rate, self.capacity = build_engine(
            self.config, self.policy, seed=self.sim_seed, on_record=self._on_record, series=self.series
        )
        self._rate_gap = math.nan  # smoothed inter-arrival time
        self._last_arrival = math.nan
        self._slo_met = 0
        self._tokens_seen = 0
        if self.render_mode in ("rgb_array", "human"):
            if self._picture is not None:
                self._picture.close()
            fps = self.metadata["render_fps"]
            self._picture = Picture(self.render_mode, [self.config.engine.hardware], ["in the system", "in the batch"], "requests", fps)
        if self._reward_scale is None:
            self._reward_scale = self._default_reward_scale()
        self._finished = False
        self._truncated = False
        self._advance()
        if self.render_mode == "human":
            self.render()
        return self._observe(), self._info()

    def step(self, action):
        if self.engine is None:
            raise gym.error.ResetNeeded("call reset() before step()")
        if self._finished:
            raise gym.error.ResetNeeded("the episode is over: call reset()")
        reward, invalid = self._act(action)
        observation = self._observe()  # before the info: the action mask refers to the new slots
        info = self._info()
        info["invalid_action"] = invalid
        if self.render_mode == "human":
            self.render()
        return observation, reward, self._finished and not self._truncated, self._truncated, info

    def _act(self, action, checked: bool = False) -> tuple[float, bool]:
        """Apply ``action`` to the requests in the slots and run on to the next epoch if it says so;
        returns the reward and whether the action was invalid (replaced, admit mode). ``checked``:
        a rank-mode action already known to be valid (the vector env checks a batch at once)."""
        engine = self.engine
        assert engine is not None
        invalid = False
        if self.action_mode == "rank":
            if not checked:
                action = self._check_scores(action)
            slots = self.slots
            n = len(slots)
            if n:
                self.policy.set_scores(slots, action[:, 0] if self.preemption_control else action)
                if self.preemption_control:
                    modes = np.argmax(action[:n, 2:], axis=1).tolist()
                    self.policy.modes = dict(zip([r.id for r in slots], modes))
                    for i in np.flatnonzero(action[:n, 1] > 0.0).tolist():
                        r = slots[i]
                        if r.state in (RequestState.RUNNING, RequestState.PAUSED):
                            engine.evict(r, modes[i])
            else:
                self.policy.scores = {}
            engine.rescore(())  # take the new scores at the next step
            reward = self._advance()
        else:
            choice, invalid = self._check_choice(action)
            kind, i, mode = decode_admit(choice, self.num_slots)
            if kind == "admit":
                self._admit(self.slots[i])
                reward = 0.0
            elif kind == "advance":
                reward = self._advance()
            else:  # preempt slot i with mode m (no simulated time passes)
                engine.evict(self.slots[i], mode)
                reward = 0.0
        return reward, invalid

    def _on_record(self, r: Request) -> None:
        self.records.append(r)
        self.series.add_arrival(r.arrival)

    def _advance(self) -> float:
        """Run the engine to the next decision epoch; the reward of the time that passed."""
        engine = self.engine
        assert engine is not None
        area0, tokens0 = engine.area, engine.tokens_generated
        finished0 = len(self.records)
        more = engine.run_until_epoch()
        if self.action_mode == "admit":
            engine.hold(engine.events_arrived)  # new arrivals wait for the agent to admit them
        self._track_arrivals(engine.events_arrived)
        if not more:
            engine.finish_run()
            self._finished = True
            self._truncated = engine.now >= engine.max_time and engine.workload_left
        kind = self.reward_kind
        if kind == "latency":
            reward = -(engine.area - area0) / self._reward_scale
        elif kind == "throughput":
            reward = (engine.tokens_generated - tokens0) / self._reward_scale
        else:
            reward = self._slo_reward(finished0)
        if self._picture is not None:
            self._picture.history.add(engine.now, (1.0 - engine.free_blocks / engine.num_blocks,), (len(engine.live), engine.batch_size))
        return float(reward)

    def _admit(self, r: Request) -> None:
        self.policy.take(r)
        assert self.engine is not None
        self.engine.release(r)

    def _slo_reward(self, finished_before: int) -> float:
        """The requests that finished since ``finished_before`` records and met their SLO targets
        (``llmsched_env.sim.metrics.slo_met``), over the episode's requests."""
        met = slo_met(request_metrics(self.records.to_arrays(finished_before)), self._slo)
        return int(np.count_nonzero(met)) / self.config.workload.num_requests

    def _default_reward_scale(self) -> float:
        from ..sim.workload import mean_lengths

        prompt, output = mean_lengths(self.config.workload)
        n = self.config.workload.num_requests
        if self.reward_kind == "throughput":
            return n * max(output, 1.0)
        if self.reward_kind == "slo_goodput":
            return 1.0
        engine = self.config.engine
        return n * lone_request_seconds(self._hardware.cost, engine.max_num_batched_tokens, round(prompt), round(output))

    # ------------------------------------------------------------------------------ actions
    def _check_scores(self, action) -> np.ndarray:
        what = "a row (score, evict, 3 mode preferences) per slot (rank mode)" if self.preemption_control else "one score per slot (rank mode)"
        occupied = np.arange(self.num_slots) < len(self.slots)
        return check_score_action(action, self.action_space.shape, occupied, what)

    def _check_choice(self, action) -> tuple[int, bool]:
        value = np.asarray(action)
        if value.shape not in ((), (1,)) or not np.issubdtype(value.dtype, np.integer):
            raise ConfigError(
                f"action={action!r} is invalid: expected one integer in [0, {self.action_space.n - 1}] (admit mode)"
            )
        choice = int(value.reshape(()))
        if not 0 <= choice < self.action_space.n:
            raise ConfigError(f"action={choice} is invalid: expected an integer in [0, {self.action_space.n - 1}]")
        mask = self.action_masks()
        if mask[choice]:
            return choice, False
        if mask[self.num_slots]:
            return self.num_slots, True
        return int(np.flatnonzero(mask)[0]), True

    def action_masks(self) -> np.ndarray:
        """Valid actions in admit mode (for sb3-contrib's MaskablePPO), one bool per action."""
        if self.action_mode != "admit":
            raise ConfigError("action_masks() exists in action_mode='admit' only")
        engine = self.engine
        assert engine is not None
        K = self.num_slots
        mask = np.zeros(self.action_space.n, dtype=bool)
        for i, r in enumerate(self.slots):
            mask[i] = r.held
            if self.preemption_control and r.blocks > 0 and r.state in (RequestState.RUNNING, RequestState.PAUSED):
                mask[preempt_action(K, i, PreemptionMode.RECOMPUTE)] = True
                mask[preempt_action(K, i, PreemptionMode.RESTART)] = True  # a swap must fit the free swap space:
                mask[preempt_action(K, i, PreemptionMode.SWAP)] = -(-r.kv_tokens // engine.block_size) <= engine.free_swap_blocks
        idle = not engine.holders and engine.n_swapped == 0 and not any(
            not r.held and r.state == RequestState.WAITING for r in engine.live
        )
        # advancing an idle engine while requests wait would waste time; allow it only if
        # nobody visible can be admitted (there must be a valid action)
        mask[K] = not (idle and mask[:K].any()) or self._finished
        if not mask.any():
            mask[K] = True
        return mask

    # ------------------------------------------------------------------------------ observation
    def _observe(self) -> dict[str, np.ndarray]:
        space = self.observation_space
        batch = {key: np.zeros((1,) + space[key].shape, np.float32) for key in ("requests", "mask", "globals")}
        write_observations([self], batch["requests"], batch["mask"], batch["globals"])
        return {key: value[0] for key, value in batch.items()}

    def _arrival_rate(self) -> float:
        """The smoothed recent arrival rate over the engine's sustainable rate (about the load)."""
        rate = 1.0 / self._rate_gap if self._rate_gap > 0 else 0.0
        return rate / (self.capacity or self.rate or 1.0)

    def _track_arrivals(self, arrived: list[Request]) -> None:
        for r in arrived:
            if not math.isnan(self._last_arrival):
                gap = r.arrival - self._last_arrival
                self._rate_gap = gap if math.isnan(self._rate_gap) else (1 - RATE_SMOOTHING) * self._rate_gap + RATE_SMOOTHING * gap
            self._last_arrival = r.arrival

    def _info(self) -> dict[str, Any]:
        engine = self.engine
        assert engine is not None
        info: dict[str, Any] = {
            "time_s": engine.now,
            "arrived": engine.arrived,
            "completed": engine.completed,
            "in_system": len(engine.live),
            "tokens": engine.tokens_generated,
            "preemptions": engine.stats.preemptions,
            "kv_utilization": 1.0 - engine.free_blocks / engine.num_blocks,
            "sim_seed": self.sim_seed,
        }
        if self.action_mode == "admit":
            info["action_mask"] = self.action_masks()
        if self._finished:
            self.series.arrivals_end_s = engine.last_arrival_time
            self.series.arrivals = engine.arrived
            info["summary"] = summarize(
                self.records.to_arrays(),
                self.series,
                duration=max(engine.now, 1e-12),
                slo=self._slo,
                kv_bytes_per_block=self._hardware.kv_bytes_per_block,
                class_names=self.config.class_names,
            )
            livelock_summary(engine, info["summary"])
            if engine.livelock:
                info["livelock"] = engine.livelock
        return info

    # ------------------------------------------------------------------------------ rendering
    def render(self):
        if self.render_mode is None or self.engine is None:
            return None
        if self.render_mode == "ansi":
            return render_ansi(self.engine, self.slots)
        engine = self.engine
        assert self._picture is not None
        return self._picture.render(f"{self.scenario_name}: t = {engine.now:,.1f} s, {engine.completed:,} of {engine.arrived:,} requests done")

    def close(self) -> None:
        if self._picture is not None:
            self._picture.close()
        super().close()


def write_observations(envs: Sequence[ServeEnv], requests: np.ndarray, mask: np.ndarray, globals_: np.ndarray) -> None:
    """Choose each env's slots (``env.slots``) and write its observation into row i of the arrays
    (``requests`` ``(N, K, F)``, ``mask`` ``(N, K)``, ``globals_`` ``(N, G)``): the one path from the
    engines to observations, for one env and for the vector env. The features come from the compiled
    ``llmsched_env.sim.observe`` as one list for all the envs, turned into numpy at once."""
    features: list[float] = []
    values: list[float] = []
    counts: list[int] = []
    for env in envs:
        engine = env.engine
        assert engine is not None
        engine.sync()
        slots = [] if env._finished else select_slots(engine.live, engine.holders, env.num_slots, env.waiting_slots)
        env.slots = slots
        request_features_into(features, slots, engine.now, engine.num_blocks, engine.block_size, env._decision)
        global_features_into(values, engine, slots, env._arrival_rate(), env.config.workload.num_requests, env._decision)
        counts.append(len(slots))
    K, F = requests.shape[1], requests.shape[2]
    occupied = np.arange(K) < np.asarray(counts)[:, None]
    mask[...] = occupied
    requests.fill(0.0)
    if features:
        requests[occupied] = np.asarray(features, np.float64).reshape(-1, F)
    np.minimum(np.asarray(values, np.float32).reshape(globals_.shape), 10.0, out=globals_)


def reset_sim_seed(np_random: np.random.Generator, options: dict | None) -> int:
    """The simulation seed of an episode: ``options["sim_seed"]`` (checked), else drawn from the
    env's generator (seeded by ``reset(seed=...)``)."""
    options = options or {}
    unknown = set(options) - {"sim_seed"}
    if unknown:
        raise ConfigError(f"reset options {sorted(unknown)} are unknown; allowed: 'sim_seed'")
    sim_seed = options.get("sim_seed")
    if sim_seed is not None and (isinstance(sim_seed, bool) or not isinstance(sim_seed, (int, np.integer)) or sim_seed < 0):
        raise fail("reset options sim_seed", sim_seed, "an integer >= 0")
    return int(np_random.integers(0, 2**31 - 1)) if sim_seed is None else int(sim_seed)
