"""``llmsched/Cluster-v0``: routing requests across LLM serving replicas."""

from __future__ import annotations

import math
from typing import Any, Sequence

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from .. import scenarios
from ..sim.cluster import Cluster, ClusterConfig, ClusterResult
from ..sim.config import dataclass_from_dict
from ..sim.cost import lone_request_seconds, resolve_hardware
from ..sim.engine_config import EngineConfig
from ..sim.observe import COUNT_SCALE, LENGTH_SCALE
from ..sim.policy import Policy
from ..sim.predictors import PredictorConfig
from ..sim.request import Request
from ..sim.validation import ConfigError, check_choice, check_positive, fail
from ..sim.workload import WorkloadConfig, mean_lengths
from .render import Picture
from .serve import reset_sim_seed

#: Per-replica observation columns.
REPLICA_FEATURES: tuple[str, ...] = (
    "waiting",  # log1p(requests queued for admission, incl. just routed) / log1p(COUNT_SCALE)
    "running",  # log1p(requests in its last batch) / log1p(COUNT_SCALE)
    "outstanding",  # log1p(requests routed there and not finished) / log1p(COUNT_SCALE)
    "free_kv",  # free KV blocks / capacity (cached, unreferenced blocks count as free)
    "iteration_time",  # log1p(its last iteration in ms) / log1p(1000)
    "prefix_overlap",  # fraction of the arriving prompt it has cached
    "can_serve",  # 1 unless the request would never fit its KV cache
)
#: Arriving-request observation columns.
REQUEST_OBS: tuple[str, ...] = (
    "prompt_len",  # log1p(tokens) / log1p(LENGTH_SCALE)
    "predicted_output",  # log1p(predicted output tokens) / log1p(LENGTH_SCALE)
    "arrived",  # requests routed so far / requests in the episode
)
_LOG_COUNT = math.log1p(COUNT_SCALE)
_LOG_LENGTH = math.log1p(LENGTH_SCALE)


class ClusterEnv(gym.Env):
    """N LLM serving replicas behind a router; the agent routes every arriving request.

    ## Description

    A cluster of ``num_replicas`` replicas (``llmsched_env.sim.cluster``), each a full engine of
    ``llmsched_env.sim`` with its own hardware preset (``hardware`` may list one per replica:
    heterogeneous clusters), batching rule, KV cache with automatic prefix caching (on by default
    here) and its own scheduling policy (FCFS unless ``replica_policies`` gives others). One
    workload arrives; by default multi-turn chat (``prefix='multi-turn'``: each turn's prompt is
    the conversation so far), so routing a turn to the replica that served the previous one saves
    its prefill, while load balance pulls the other way. A decision epoch is each arrival: the agent
    picks the replica that serves the request (it never moves afterwards); between arrivals the
    replicas run on their own, co-simulated exactly in time order.

    ## Observation Space

    A ``Dict``:

    * ``"replicas"``: ``Box(0, 10, (N, 7), float32)``, per replica ``REPLICA_FEATURES``: waiting,
      running and outstanding requests (log-scaled), free KV fraction, last iteration time, the
      fraction of the arriving prompt it has cached, and whether it can serve the request at all.
    * ``"request"``: ``Box(0, 10, (3,), float32)``, ``REQUEST_OBS``: the arriving request's prompt
      length and predicted output length (log-scaled) and the episode's progress.

    The true output length never appears, except through the ``oracle`` predictor.

    ## Action Space

    ``Discrete(N)``: the replica that serves the arriving request. ``action_masks()`` (for
    sb3-contrib's ``MaskablePPO``) and ``info["action_mask"]`` mark the replicas that can serve it
    (all of them if none can: it is then rejected wherever it goes). A masked action is replaced by
    the first valid replica and ``info["invalid_action"]`` is True.

    ## Rewards

    Minus the number of requests in the cluster integrated over the simulated time that passes
    until the next arrival (over all replicas), divided by ``reward_scale``. The undiscounted
    return is minus the total response time of the episode's requests over ``reward_scale``
    (Little's law); the default scale is ``num_requests`` x the latency of a mean-sized request
    alone on replica 0, so the return is about minus the mean response time in those units.

    ## Starting State

    Idle replicas with empty KV caches; the first observation is the first arrival. The workload
    comes from the seed: ``reset(seed=s)`` seeds the environment's generator, which draws the
    simulation seed; ``reset(options={"sim_seed": n})`` gives it directly (the same requests as
    ``Cluster(config, seed=n)``).

    ## Episode End

    ``terminated`` once every request has been routed and has left the cluster (the last step
    runs the replicas to the end). ``truncated`` when ``max_time_s`` cuts the run with requests
    still inside, or by the ``TimeLimit`` wrapper (``max_episode_steps``). ``info`` at every step:
    time, requests routed and in the system; at the end ``info["summary"]``, the cluster summary
    (latency percentiles over all requests, per replica routed fraction and utilisation, prefix
    hit rates).

    A router driven through the env (``baselines.routing.RouterAgent``) gives exactly the run of
    ``Cluster(config).run(router)`` for the same simulation seed.

    ## Arguments

    ``scenario``: a cluster scenario of ``llmsched_env.scenarios`` (``cluster-chat-multiturn``,
    ``cluster-system-prompt``, ``cluster-hetero``): its replicas, workload and load; only
    ``num_requests`` (default: the scenario's episode length), ``max_time_s``, ``reward_scale``,
    ``replica_policies`` and ``render_mode`` (``ansi``: text; ``rgb_array``: a labelled picture of
    each replica's KV in use and the requests in the cluster over time, drawn with matplotlib;
    ``human``: that picture in a matplotlib window, redrawn at each step) then apply. Without a scenario:
    ``num_replicas``; ``hardware`` (a preset name, or a list of one per replica); ``batching``,
    ``max_num_seqs``, ``max_num_batched_tokens``, ``num_gpu_blocks``, ``enable_prefix_caching``
    (every replica; ``engine_kwargs`` for any other ``EngineConfig`` field); ``workload`` (a length
    preset) or ``trace_path`` (with ``arrival='trace'`` and ``rate=None`` its own timing);
    ``prefix`` (``none``, ``system-prompt``, ``multi-turn``, ``trace``) and ``workload_kwargs``
    for any other ``WorkloadConfig`` field; ``load`` (fraction of the summed sustainable rates) or
    ``rate``; ``num_requests``; ``predictor`` / ``predictor_sigma``; ``reward_scale``;
    ``max_time_s``; ``replica_policies`` (one scheduling policy object per replica, default FCFS).
    Unknown or invalid arguments raise ``ConfigError`` naming the argument and what is allowed.

    ## Version History

    * v0: initial version.
    """

    metadata = {"render_modes": ["ansi", "rgb_array", "human"], "render_fps": 4}

    def __init__(
        self,
        *,
        scenario: str | None = None,
        num_replicas: int = 4,
        hardware: str | Sequence[str] = "llama2-7b/a100",
        batching: str = "sarathi",
        max_num_seqs: int = 256,
        max_num_batched_tokens: int = 2048,
        num_gpu_blocks: int | None = None,
        enable_prefix_caching: bool = True,
        workload: str = "azure-conv",
        trace_path: str | None = None,
        arrival: str = "poisson",
        prefix: str = "multi-turn",
        load: float | None = 0.8,
        rate: float | None = None,
        num_requests: int | None = None,
        predictor: str = "lognormal",
        predictor_sigma: float = 0.5,
        reward_scale: float | None = None,
        max_time_s: float | None = None,
        replica_policies: Sequence[Policy] | None = None,
        engine_kwargs: dict | None = None,
        workload_kwargs: dict | None = None,
        render_mode: str | None = None,
        **unknown: Any,
    ) -> None:
        if unknown:
            allowed = sorted(k for k in ClusterEnv.__init__.__kwdefaults__ if k != "unknown")
            raise ConfigError(
                f"llmsched/Cluster-v0: unknown argument(s) {', '.join(map(repr, sorted(unknown)))}; allowed: " + ", ".join(allowed)
            )
        if scenario is not None:
            base = scenarios.get(scenario)
            length = num_requests if num_requests is not None else base.env.episode_requests
            config = scenarios.cluster_config(base, num_requests=length, max_time_s=max_time_s)
            num_replicas = config.num_replicas
        num_requests = 500 if num_requests is None else num_requests
        num_replicas = check_positive("num_replicas", num_replicas, integer=True)
        if reward_scale is not None:
            check_positive("reward_scale", reward_scale)
        if render_mode is not None:
            check_choice("render_mode", render_mode, self.metadata["render_modes"])
        for name, value in (("engine_kwargs", engine_kwargs), ("workload_kwargs", workload_kwargs)):
            if value is not None and not isinstance(value, dict):
                raise fail(name, value, "a mapping of field names to values")
        presets = [hardware] * num_replicas if isinstance(hardware, str) else list(hardware)
        if len(presets) != num_replicas:
            raise fail("hardware", hardware, f"a preset name or a list of {num_replicas} (one per replica)")
        replicas = []
        for i, preset in enumerate(presets):
            fields: dict[str, Any] = dict(
                hardware=preset,
                batching=batching,
                max_num_seqs=max_num_seqs,
                max_num_batched_tokens=max_num_batched_tokens,
                num_gpu_blocks=num_gpu_blocks,
                enable_prefix_caching=enable_prefix_caching,
            )
            fields.update(engine_kwargs or {})
            replicas.append(dataclass_from_dict(EngineConfig, fields, f"replicas[{i}]"))
        workload_fields: dict[str, Any] = dict(lengths=workload, arrival=arrival, num_requests=num_requests, prefix=prefix)
        if trace_path is not None:
            workload_fields.update(trace_path=trace_path, lengths="trace")
        workload_fields.update(workload_kwargs or {})
        self.config = ClusterConfig(
            replicas=tuple(replicas),
            workload=dataclass_from_dict(WorkloadConfig, workload_fields, "workload"),
            predictor=dataclass_from_dict(PredictorConfig, dict(kind=predictor, sigma=predictor_sigma), "predictor"),
            load=load,
            rate=rate,
            max_time_s=max_time_s,
        )
        if replica_policies is not None and len(replica_policies) != num_replicas:
            raise fail("replica_policies", replica_policies, f"a list of {num_replicas} policies (one per replica) or None")
        if scenario is not None:
            self.config = config
        self._policy_factory = replica_policies
        self.num_replicas = int(num_replicas)
        self.render_mode = render_mode
        self._picture: Picture | None = None
        self._reward_scale = reward_scale if reward_scale is not None else self._default_reward_scale()
        N = self.num_replicas
        self.observation_space = spaces.Dict(
            {
                "replicas": spaces.Box(0.0, 10.0, (N, len(REPLICA_FEATURES)), np.float32),
                "request": spaces.Box(0.0, 10.0, (len(REQUEST_OBS),), np.float32),
            }
        )
        self.action_space = spaces.Discrete(N)
        self.cluster: Cluster | None = None
        self.request: Request | None = None
        self.result: ClusterResult | None = None

    @classmethod
    def from_config(cls, config: ClusterConfig, **options: Any) -> "ClusterEnv":
        """An env over a full :class:`ClusterConfig`; ``options`` are the env's own arguments
        (``reward_scale``, ``replica_policies``, ``render_mode``)."""
        env = cls(num_replicas=config.num_replicas, **options)
        env.config = config
        if "reward_scale" not in options:
            env._reward_scale = env._default_reward_scale()
        return env

    # ------------------------------------------------------------------------------ episode
    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        self.sim_seed = reset_sim_seed(self.np_random, options)
        policies = None
        if self._policy_factory is not None:
            import copy

            policies = [copy.deepcopy(p) for p in self._policy_factory]  # fresh state each episode
        self.cluster = Cluster(self.config, policies, seed=self.sim_seed)
        self.result = None
        self.request = self.cluster.next_arrival()
        if self.request is None:
            self.result = self.cluster.finish("agent")
        if self.render_mode in ("rgb_array", "human"):
            if self._picture is not None:
                self._picture.close()
            names = [f"replica {i}" for i in range(self.num_replicas)]
            self._picture = Picture(self.render_mode, names, ["requests in the cluster"], "requests", self.metadata["render_fps"])
            self._record()
        return self._observe(), self._info(invalid=False)

    def step(self, action):
        cluster = self.cluster
        if cluster is None:
            raise gym.error.ResetNeeded("call reset() before step()")
        if self.result is not None:
            raise gym.error.ResetNeeded("the episode is over: call reset()")
        choice, invalid = self._check_action(action)
        area = cluster.area
        cluster.assign(choice)
        self.request = cluster.next_arrival()
        if self.request is None:
            self.result = cluster.finish("agent")
        reward = -(cluster.area - area) / self._reward_scale
        truncated = self.result is not None and int(self.result.summary["unfinished"]) > 0
        self._record()
        return self._observe(), float(reward), self.result is not None and not truncated, truncated, self._info(invalid)

    def _record(self) -> None:
        """The picture's history (rgb_array and human), and the window redrawn (human)."""
        cluster = self.cluster
        if self._picture is None or cluster is None:
            return
        self._picture.history.add(cluster.time, tuple(cluster.kv_used(i) for i in range(self.num_replicas)), (cluster.in_system,))
        if self.render_mode == "human":
            self.render()

    def _check_action(self, action) -> tuple[int, bool]:
        value = np.asarray(action)
        if value.shape not in ((), (1,)) or not np.issubdtype(value.dtype, np.integer):
            raise ConfigError(f"action={action!r} is invalid: expected one integer in [0, {self.num_replicas - 1}] (a replica)")
        choice = int(value.reshape(()))
        if not 0 <= choice < self.num_replicas:
            raise ConfigError(f"action={choice} is invalid: expected an integer in [0, {self.num_replicas - 1}]")
        mask = self.action_masks()
        if mask[choice]:
            return choice, False
        return int(np.flatnonzero(mask)[0]), True

    def action_masks(self) -> np.ndarray:
        """Replicas that can serve the arriving request (all if none can), one bool each."""
        if self.cluster is None or self.request is None:
            return np.ones(self.num_replicas, dtype=bool)
        return route_mask(self.cluster, self.request)

    def _default_reward_scale(self) -> float:
        config = self.config
        replica = config.replicas[0]
        prompt, output = mean_lengths(config.workload)
        lone = lone_request_seconds(resolve_hardware(replica).cost, replica.max_num_batched_tokens, round(prompt), round(output))
        return config.workload.num_requests * lone

    # ------------------------------------------------------------------------------ observation
    def _observe(self) -> dict[str, np.ndarray]:
        assert self.cluster is not None
        return observe_cluster(self.cluster, self.request, self.config.workload.num_requests)

    def _info(self, invalid: bool) -> dict[str, Any]:
        cluster = self.cluster
        assert cluster is not None
        info: dict[str, Any] = {
            "time_s": cluster.time,
            "routed": cluster.arrived,
            "in_system": cluster.in_system,
            "sim_seed": self.sim_seed,
            "action_mask": self.action_masks(),
            "invalid_action": invalid,
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
        if self.render_mode is None or self.cluster is None:
            return None
        cluster = self.cluster
        if self._picture is not None:
            return self._picture.render(f"t = {cluster.time:,.1f} s, {cluster.arrived:,} requests routed, {cluster.in_system:,} in the cluster")
        lines = [f"t={cluster.time:.3f}s  routed {cluster.arrived}  in system {cluster.in_system}"]
        for i, engine in enumerate(cluster.engines):
            overlap = cluster.prefix_overlap(i, self.request) if self.request is not None else 0.0
            lines.append(
                f"replica {i} @{engine.now:.3f}s  outstanding {cluster.outstanding(i):>4}  batch {engine.batch_size:>4}  "
                f"kv {cluster.kv_used(i):5.1%}  cached {overlap:5.1%}"
            )
        return "\n".join(lines) + "\n"


def route_mask(cluster: Cluster, request: Request) -> np.ndarray:
    """(N,) bool: the replicas that can serve ``request`` (all if none can)."""
    mask = np.array([cluster.can_serve(i, request) for i in range(len(cluster.engines))], dtype=bool)
    return mask if mask.any() else np.ones(len(cluster.engines), dtype=bool)


def observe_cluster(cluster: Cluster, request: Request | None, num_requests: int) -> dict[str, np.ndarray]:
    """The observation of ``llmsched/Cluster-v0`` when ``request`` arrives (None: no arrival):
    ``replicas`` (N, len(REPLICA_FEATURES)) and ``request`` (len(REQUEST_OBS),), float32 in [0, 10].
    A module function so that a trained router can act on a :class:`Cluster` without the env."""
    N = len(cluster.engines)
    rows = np.zeros((N, len(REPLICA_FEATURES)), dtype=np.float64)
    r = request
    for i, engine in enumerate(cluster.engines):
        rows[i] = (
            math.log1p(max(cluster.waiting(i), 0)) / _LOG_COUNT,
            math.log1p(engine.batch_size) / _LOG_COUNT,
            math.log1p(cluster.outstanding(i)) / _LOG_COUNT,
            engine.free_blocks / engine.num_blocks,
            math.log1p(1000.0 * engine.last_iteration_time) / math.log1p(1000.0),
            cluster.prefix_overlap(i, r) if r is not None else 0.0,
            1.0 if r is not None and cluster.can_serve(i, r) else 0.0,
        )
    features = np.zeros(len(REQUEST_OBS), dtype=np.float64)
    if r is not None:
        features[:] = (
            math.log1p(r.prompt_len) / _LOG_LENGTH,
            math.log1p(max(r.predicted_output, 0.0)) / _LOG_LENGTH,
            cluster.arrived / num_requests,
        )
    return {
        "replicas": np.minimum(rows, 10.0).astype(np.float32),
        "request": np.minimum(features, 10.0).astype(np.float32),
    }
