"""Random streams: the one way a run's seed becomes independent random number generators.

A run's seed is a :class:`numpy.random.SeedSequence`; every consumer takes a *child* stream of it
by a fixed key path (``child(ss, key, ...)``), never by ``spawn``, which counts its calls: a
stream's numbers depend only on the seed and its key, so adding a consumer, or drawing in another
order, shifts nobody else's numbers. This is what gives common random numbers: every policy run
with the same config and seed sees the same arrivals, lengths and predictions.

The keys in use: ``simulate`` splits a seed into the workload (0) and the predictions (1)
(:func:`llmsched_env.sim.api.request_stream`); the workload takes its arrival, length, trace-window
and prefix streams by the keys of :mod:`llmsched_env.sim.workload`; an agent network gives class
``i`` the streams ``(i, arrivals | delays | predictions)``. (The randomised routers of
``baselines.routing`` seed their own generator from ``[seed, stream]`` at each ``reset``.)
"""

from __future__ import annotations

import numpy as np

from .validation import fail


def seed_sequence(seed: "int | np.random.SeedSequence") -> np.random.SeedSequence:
    """``seed`` as a SeedSequence (an integer >= 0, or a SeedSequence kept as it is)."""
    if isinstance(seed, np.random.SeedSequence):
        return seed
    if isinstance(seed, (int, np.integer)) and not isinstance(seed, bool) and seed >= 0:
        return np.random.SeedSequence(int(seed))
    raise fail("seed", seed, "an integer >= 0 or a numpy.random.SeedSequence")


def child(ss: "int | np.random.SeedSequence", *key: int) -> np.random.SeedSequence:
    """The child stream of ``ss`` at the key path ``key`` (unlike ``spawn``, it does not change
    ``ss``: the same key always gives the same stream)."""
    ss = seed_sequence(ss)
    return np.random.SeedSequence(entropy=ss.entropy, spawn_key=(*ss.spawn_key, *key), pool_size=ss.pool_size)


def generator(ss: "int | np.random.SeedSequence", *key: int) -> np.random.Generator:
    """A generator on the child stream ``key`` of ``ss``."""
    return np.random.default_rng(child(ss, *key))


def generators(ss: np.random.SeedSequence, count: int) -> list[np.random.Generator]:
    """Generators on the child streams 0 .. ``count - 1`` of ``ss``."""
    return [generator(ss, k) for k in range(count)]
