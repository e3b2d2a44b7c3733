"""PPO minibatches grouped by slot occupancy: the same samples per epoch, less padding in the encoder.

The set encoder (``train.networks.SetEncoder``) drops the slot columns no observation of a
minibatch occupies, so a minibatch costs what its *fullest* observation costs. With SB3's random
minibatches that is close to the fullest observation of the whole rollout (about 39 of 64 slots
for a 256-sample minibatch on chat-a100-40gb, against 16 on average). :class:`OccupancyRolloutBuffer`
draws the epoch's random permutation as SB3 does, then, within each window of ``window``
minibatches of it, orders the samples by their number of occupied slots and cuts the minibatches
from that order, and shuffles the order of all minibatches: every sample is used once per epoch, a
minibatch holds requests of similar occupancy, and the encoder pads far less (a "sortish" sampler,
as used for variable-length sequences). The gradient of each minibatch is then that of a sample
of similar states rather than of a uniform sample; with ``window = 1`` the minibatches are SB3's.

Opt in with ``minibatches: by-occupancy`` in a training config (``train.config.TrainConfig``);
the default, ``random``, keeps SB3's buffer (the shipped recipes were made with it).
"""

from __future__ import annotations

from typing import Generator

import numpy as np
from stable_baselines3.common.buffers import DictRolloutBuffer
from stable_baselines3.common.type_aliases import DictRolloutBufferSamples

#: minibatches per sorting window (the samples of 8 random minibatches are sorted together)
DEFAULT_WINDOW = 8


class OccupancyRolloutBuffer(DictRolloutBuffer):
    """SB3's ``DictRolloutBuffer`` yielding minibatches of similar slot occupancy (module docstring)."""

    window = DEFAULT_WINDOW

    def get(self, batch_size: int | None = None) -> Generator[DictRolloutBufferSamples, None, None]:  # type: ignore[override]
        assert self.full, ""
        total = self.buffer_size * self.n_envs
        indices = np.random.permutation(total)
        if not self.generator_ready:  # as SB3's: flatten (steps, envs) into one axis once
            for key, obs in self.observations.items():
                self.observations[key] = self.swap_and_flatten(obs)
            for tensor in ["actions", "values", "log_probs", "advantages", "returns"]:
                self.__dict__[tensor] = self.swap_and_flatten(self.__dict__[tensor])
            self.generator_ready = True
        if batch_size is None:
            batch_size = total
        for batch in occupancy_minibatches(indices, self.observations["mask"].sum(axis=1), batch_size, self.window):
            yield self._get_samples(batch)


def occupancy_minibatches(permutation: np.ndarray, occupancy: np.ndarray, batch_size: int, window: int) -> list[np.ndarray]:
    """Minibatches of ``batch_size`` indices (the last may be smaller) covering ``permutation`` once:
    within each window of ``window`` minibatches the indices are ordered by ``occupancy``, and the
    minibatches come in a random order (``np.random``, as SB3's permutation)."""
    batches: list[np.ndarray] = []
    span = batch_size * window
    for start in range(0, len(permutation), span):
        chunk = permutation[start : start + span]
        chunk = chunk[np.argsort(occupancy[chunk], kind="stable")]
        batches += [chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size)]
    order = np.random.permutation(len(batches))
    return [batches[i] for i in order]
