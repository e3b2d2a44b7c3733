"""Request routers for serving clusters (``llmsched_env.sim.cluster``, ``llmsched/Cluster-v0``).

Each router picks, at a request's arrival, the replica that serves it, from the cluster's
read-only views (:meth:`Cluster.outstanding`, :meth:`~Cluster.kv_used`,
:meth:`~Cluster.prefix_overlap`, :meth:`~Cluster.can_serve`). Ties go to the lowest index.

* ``round-robin``: replicas in turn (the default of most load balancers).
* ``random``: uniformly at random (with Poisson arrivals and identical replicas, each replica is
  fed a Poisson stream of rate lambda / N: N independent queues).
* ``least-outstanding``: join the shortest queue, counting every request routed to a replica and
  not finished (Splitwise's simulator's JSQ; SGLang router's ``shortest_queue``).
* ``least-kv``: the replica with the least KV in use (llm-d's KV-cache-utilisation scorer alone).
* ``power-of-two``: two distinct replicas at random, the one with fewer outstanding requests
  (Mitzenmacher's power of two choices).
* ``prefix-affinity``: the cache-aware policy of SGLang's router: if the load is imbalanced
  (max - min outstanding > ``balance_abs`` and max > ``balance_rel`` x min) join the shortest
  queue; else, if some replica has at least ``cache_threshold`` of the prompt cached, the one with
  the longest cached prefix (ties: fewer outstanding); else the one with the least KV in use (most
  room to cache).
* ``weighted``: llm-d's scorer: ``w_prefix`` x overlap - ``w_queue`` x outstanding / the largest
  outstanding count - ``w_kv`` x KV in use; the highest score wins.

Replicas that could never serve the request (its KV exceeds their cache) are never chosen when
another one can. ``make_router("name", **params)`` / ``parse_router("name:key=value")`` build
them; :class:`RouterAgent` drives the environment with one (same results as driving the cluster).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from llmsched_env.sim.cluster import Cluster
from llmsched_env.sim.request import Request
from llmsched_env.sim.validation import ConfigError, check_known_keys, check_nonnegative, check_number

from .registry import parse_spec


def _eligible(request: Request, cluster: Cluster) -> list[int]:
    n = len(cluster.engines)
    able = [i for i in range(n) if cluster.can_serve(i, request)]
    return able or list(range(n))


def _least(candidates: list[int], key) -> int:
    return min(candidates, key=lambda i: (key(i), i))


class _Router:
    """What every router shares: its name (its key) and a reset that does nothing."""

    key = ""
    params: tuple[str, ...] = ()

    def __init__(self) -> None:
        self.name = self.key

    def reset(self, seed: int) -> None:
        pass


class RoundRobin(_Router):
    """Replicas in turn."""

    key = "round-robin"

    def __init__(self) -> None:
        super().__init__()
        self._next = 0

    def reset(self, seed: int) -> None:
        self._next = 0

    def route(self, request: Request, cluster: Cluster) -> int:
        able = set(_eligible(request, cluster))
        n = len(cluster.engines)
        for k in range(n):
            i = (self._next + k) % n
            if i in able:
                self._next = i + 1
                return i
        raise AssertionError("no replica")  # pragma: no cover


class _RandomizedRouter(_Router):
    """A router with its own random stream, reseeded by ``reset``: ``default_rng([seed, stream])``
    (the routers' stream convention, kept so that their runs stay as published)."""

    stream = 0

    def __init__(self) -> None:
        super().__init__()
        self.rng = np.random.default_rng(0)

    def reset(self, seed: int) -> None:
        self.rng = np.random.default_rng([seed, self.stream])


class RandomRouter(_RandomizedRouter):
    """Uniformly at random (seeded by ``reset``)."""

    key = "random"
    stream = 0x726F7574  # "rout"

    def route(self, request: Request, cluster: Cluster) -> int:
        able = _eligible(request, cluster)
        return able[int(self.rng.integers(len(able)))]


class LeastOutstanding(_Router):
    """Join the shortest queue (requests routed and not finished)."""

    key = "least-outstanding"

    def route(self, request: Request, cluster: Cluster) -> int:
        return _least(_eligible(request, cluster), cluster.outstanding)


class LeastKV(_Router):
    """The replica with the least KV in use (ties: fewer outstanding)."""

    key = "least-kv"

    def route(self, request: Request, cluster: Cluster) -> int:
        return _least(_eligible(request, cluster), lambda i: (cluster.kv_used(i), cluster.outstanding(i)))


class PowerOfTwo(_RandomizedRouter):
    """Two distinct replicas at random; the one with fewer outstanding requests."""

    key = "power-of-two"
    stream = 0x706F7432  # "pot2"

    def route(self, request: Request, cluster: Cluster) -> int:
        able = _eligible(request, cluster)
        if len(able) == 1:
            return able[0]
        a, b = self.rng.choice(len(able), 2, replace=False).tolist()
        return _least([able[a], able[b]], cluster.outstanding)


class PrefixAffinity(_Router):
    """SGLang's cache-aware routing: longest cached prefix unless the load is imbalanced."""

    key = "prefix-affinity"
    params = ("cache_threshold", "balance_abs", "balance_rel")

    def __init__(self, cache_threshold: float = 0.5, balance_abs: int = 32, balance_rel: float = 1.5) -> None:
        check_number("cache_threshold", cache_threshold, low=0, high=1)
        balance_abs = check_nonnegative("balance_abs", balance_abs, integer=True)
        check_number("balance_rel", balance_rel, low=1)
        self.cache_threshold = float(cache_threshold)
        self.balance_abs = int(balance_abs)
        self.balance_rel = float(balance_rel)
        self.name = self.key if (cache_threshold, balance_abs, balance_rel) == (0.5, 32, 1.5) else (
            f"{self.key}:cache_threshold={cache_threshold},balance_abs={balance_abs},balance_rel={balance_rel}"
        )

    def route(self, request: Request, cluster: Cluster) -> int:
        able = _eligible(request, cluster)
        load = {i: cluster.outstanding(i) for i in able}
        high, low = max(load.values()), min(load.values())
        if high - low > self.balance_abs and high > self.balance_rel * low:
            return _least(able, load.__getitem__)
        overlap = {i: cluster.prefix_overlap(i, request) for i in able}
        best = max(overlap.values())
        if best >= self.cache_threshold and best > 0.0:
            return _least([i for i in able if overlap[i] == best], load.__getitem__)
        return _least(able, lambda i: (cluster.kv_used(i), load[i]))


class WeightedScorer(_Router):
    """llm-d's weighted scorer over prefix overlap, queue length and KV use."""

    key = "weighted"
    params = ("w_prefix", "w_queue", "w_kv")

    def __init__(self, w_prefix: float = 2.0, w_queue: float = 1.0, w_kv: float = 1.0) -> None:
        for name, value in (("w_prefix", w_prefix), ("w_queue", w_queue), ("w_kv", w_kv)):
            check_number(name, value, low=0)
        self.w_prefix, self.w_queue, self.w_kv = float(w_prefix), float(w_queue), float(w_kv)
        self.name = self.key if (w_prefix, w_queue, w_kv) == (2.0, 1.0, 1.0) else f"{self.key}:w_prefix={w_prefix},w_queue={w_queue},w_kv={w_kv}"

    def scores(self, request: Request, cluster: Cluster) -> list[float]:
        """The score of every replica (higher is better)."""
        n = len(cluster.engines)
        queue = [cluster.outstanding(i) for i in range(n)]
        top = max(max(queue), 1)
        return [
            self.w_prefix * cluster.prefix_overlap(i, request) - self.w_queue * queue[i] / top - self.w_kv * cluster.kv_used(i)
            for i in range(n)
        ]

    def route(self, request: Request, cluster: Cluster) -> int:
        scores = self.scores(request, cluster)
        return _least(_eligible(request, cluster), lambda i: -scores[i])


_ROUTERS: dict[str, Any] = {
    cls.key: cls for cls in (RoundRobin, RandomRouter, LeastOutstanding, LeastKV, PowerOfTwo, PrefixAffinity, WeightedScorer)
}


def available_routers() -> list[str]:
    """Names of the routing baselines (in the order of the module docstring)."""
    return list(_ROUTERS)


def make_router(name: str, **params: Any):
    """Build the router ``name`` with ``params`` (unknown ones are errors)."""
    if name not in _ROUTERS:
        raise ConfigError(f"router={name!r} is invalid: expected one of {', '.join(_ROUTERS)}")
    cls = _ROUTERS[name]
    check_known_keys(f"router {name!r}", params, cls.params)
    return cls(**params)


def parse_router(spec: str):
    """A router from ``"name"`` or ``"name:key=value,..."`` (values as in ``baselines.parse``)."""
    name, params = parse_spec(spec, "router")
    return make_router(name, **params)


class RouterAgent:
    """Acts in ``llmsched/Cluster-v0`` with a router: the replica it picks for the request the
    env is routing. Call :meth:`reset` with the episode's simulation seed (``info["sim_seed"]``)
    after each ``env.reset``; the episode then equals ``Cluster(config, seed).run(router)``."""

    def __init__(self, router: Any) -> None:
        self.router = router
        self.name = getattr(router, "name", type(router).__name__)

    def reset(self, sim_seed: int) -> None:
        self.router.reset(int(sim_seed))

    def act(self, env: Any) -> int:
        unwrapped = env.unwrapped
        request = unwrapped.request
        if request is None:
            return 0
        return int(self.router.route(request, unwrapped.cluster))
