"""Policy networks for ``llmsched/Serve-v1``: a permutation-equivariant set encoder and SB3 policies.

The observation is a *set* of up to K requests (``"requests"`` rows, ``"mask"`` marking the real
ones) plus global features (``"globals"``). The slot order carries no meaning beyond what the
features say, so the networks treat the slots as a set:

* :class:`SetEncoder` embeds each slot with the same MLP, embeds the global features as one extra
  token that is always present, and runs pre-norm multi-head self-attention blocks over the
  K + 1 tokens with the padding mask. The global token keeps one unmasked key in every attention
  row, so an empty queue gives finite outputs (an all-masked row would be NaN). No positional
  encoding: permuting the slots permutes the slot outputs.
* :class:`SetRankPolicy` (``rank`` mode, PPO): the Gaussian mean of slot i is ``tanh(w . h_i)``
  from a per-slot head shared by all slots (tanh keeps the deterministic scores inside the action
  bounds, so the env never sees two scores clipped to the same value); empty slots get mean 0.
* :class:`SetAdmitPolicy` (``admit`` mode, sb3-contrib's MaskablePPO): a logit per slot from a
  per-slot head plus an *advance* logit from the global token; the env's action mask removes the
  invalid ones.
* :class:`SetPortfolioPolicy` (portfolio agents, PPO over ``Discrete(M)``, ``train.portfolio``):
  one logit per heuristic of the portfolio from the global token and the mean of the slot tokens.
* All: the value is an MLP over the masked mean of the slot tokens, the global token and the
  episode-progress features (``time``, ``arrived``, ``completed``). Those three are kept out of the
  actor: an episode's return-to-go depends on how far it has got, but a scheduling decision should
  not, and leaving them out lets an agent trained on short episodes act the same on long runs
  (``llmsched-eval`` runs 3,000 requests by default).

The policies plug into stable-baselines3 in its usual places: the encoder is the features
extractor, :class:`SetHeads` is the ``mlp_extractor`` (it splits the features into the actor's
tokens and the critic's pooled summary) and the per-slot heads are the ``action_net``. This module
must stay importable under its name: saved models refer to these classes.
"""

from __future__ import annotations

from typing import Any

import torch
from gymnasium import spaces
from sb3_contrib.common.maskable.policies import MaskableActorCriticPolicy
from stable_baselines3.common.policies import ActorCriticPolicy
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor
from torch import nn

from llmsched_env.envs.serve import QUEUE_GLOBAL_FEATURES
from llmsched_env.sim.slots import NUM_PREEMPT_MODES, admit_action_count, rank_action_shape
from llmsched_env.sim.validation import ConfigError

PROGRESS_GLOBALS = ("time", "arrived", "completed")  # seen by the critic only (see above)


class AttentionBlock(nn.Module):
    """Pre-norm transformer block: masked multi-head self-attention, then a per-token MLP."""

    def __init__(self, dim: int, num_heads: int, ff_dim: int) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attention = nn.MultiheadAttention(dim, num_heads, batch_first=True)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, ff_dim), nn.ReLU(), nn.Linear(ff_dim, dim))

    def forward(self, x: torch.Tensor, padding: torch.Tensor) -> torch.Tensor:
        y = self.norm1(x)
        x = x + self.attention(y, y, y, key_padding_mask=padding, need_weights=False)[0]
        return x + self.mlp(self.norm2(x))


class SetEncoder(BaseFeaturesExtractor):
    """Per-slot MLP + global token + masked self-attention over the slots.

    Output features, per observation: ``[pooled (d) | critic-only globals (c) | global token (d) |
    slot tokens (K x d)]``: the first ``critic_dim = d + c`` numbers are for the critic, the last
    ``(K + 1) x d`` are the tokens for the actor's heads. ``pooled`` is the mean of the global token
    and the valid slot tokens; the tokens of empty slots are zero. ``d = embed_dim``;
    ``critic_globals`` names the global features (of the env's ``global_feature_names``) kept out of the tokens.
    """

    def __init__(
        self,
        observation_space: spaces.Dict,
        embed_dim: int = 64,
        num_heads: int = 4,
        num_layers: int = 2,
        ff_dim: int = 128,
        critic_globals: tuple[str, ...] | list[str] = PROGRESS_GLOBALS,
    ) -> None:
        # the globals of either slot layout: Serve-v2's (queue) extend Serve-v1's (kv-first)
        names = QUEUE_GLOBAL_FEATURES[: observation_space["globals"].shape[0]]
        unknown = sorted(set(critic_globals) - set(names))
        if unknown:
            raise ConfigError(f"critic_globals {unknown} are unknown: expected names of {', '.join(names)}")
        num_slots, num_features = observation_space["requests"].shape
        actor_index = [i for i, name in enumerate(names) if name not in critic_globals]
        critic_index = [i for i, name in enumerate(names) if name in critic_globals]
        self.critic_dim = embed_dim + len(critic_index)
        super().__init__(observation_space, features_dim=self.critic_dim + (num_slots + 1) * embed_dim)
        self.num_slots = num_slots
        self.embed_dim = embed_dim
        self.register_buffer("actor_index", torch.tensor(actor_index, dtype=torch.long), persistent=False)
        self.register_buffer("critic_index", torch.tensor(critic_index, dtype=torch.long), persistent=False)
        self.slot_mlp = nn.Sequential(nn.Linear(num_features, embed_dim), nn.ReLU(), nn.Linear(embed_dim, embed_dim))
        self.global_mlp = nn.Sequential(nn.Linear(len(actor_index), embed_dim), nn.ReLU(), nn.Linear(embed_dim, embed_dim))
        self.blocks = nn.ModuleList(AttentionBlock(embed_dim, num_heads, ff_dim) for _ in range(num_layers))
        self.norm = nn.LayerNorm(embed_dim)

    def forward(self, observations: dict[str, torch.Tensor]) -> torch.Tensor:
        valid = observations["mask"] > 0.5  # (B, K)
        requests = observations["requests"]
        num_slots = valid.shape[1]
        if not torch.jit.is_tracing():
            # the envs put the occupied slots first, and most are empty most of the time: drop the
            # trailing columns that no observation of the batch occupies and pad the tokens back
            # with the zeros empty slots get anyway; the same result, far less work
            columns = torch.nonzero(valid.any(dim=0))
            used = int(columns[-1]) + 1 if len(columns) else 1
            if used < num_slots:
                valid, requests = valid[:, :used], requests[:, :used]
        slots = self.slot_mlp(requests)  # (B, K', d)
        globals_ = observations["globals"]
        glob = self.global_mlp(globals_[:, self.actor_index]).unsqueeze(1)  # (B, 1, d)
        tokens = torch.cat([glob, slots], dim=1)
        present = torch.cat([torch.ones_like(valid[:, :1]), valid], dim=1)  # the global token is always there
        for block in self.blocks:
            tokens = block(tokens, ~present)
        weights = present.to(tokens.dtype).unsqueeze(-1)
        tokens = self.norm(tokens) * weights  # zero the empty slots: heads see nothing there
        pooled = tokens.sum(dim=1) / weights.sum(dim=1)
        if tokens.shape[1] < num_slots + 1:
            tokens = nn.functional.pad(tokens, (0, 0, 0, num_slots + 1 - tokens.shape[1]))
        return torch.cat([pooled, globals_[:, self.critic_index], tokens.flatten(1)], dim=1)


class SetHeads(nn.Module):
    """SB3's ``mlp_extractor`` slot: the actor's latent is the tokens, the critic's an MLP of the
    critic part of the features (pooled tokens, progress globals) and the global token."""

    def __init__(self, critic_dim: int, embed_dim: int, num_slots: int, value_dim: int = 64) -> None:
        super().__init__()
        self.critic_dim = critic_dim
        self.latent_dim_pi = (num_slots + 1) * embed_dim
        self.latent_dim_vf = value_dim
        # the critic part of the features and the global token are contiguous
        self.value_mlp = nn.Sequential(nn.Linear(critic_dim + embed_dim, value_dim), nn.ReLU())
        self.critic_end = critic_dim + embed_dim

    def forward(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.forward_actor(features), self.forward_critic(features)

    def forward_actor(self, features: torch.Tensor) -> torch.Tensor:
        return features[:, self.critic_dim :]

    def forward_critic(self, features: torch.Tensor) -> torch.Tensor:
        return self.value_mlp(features[:, : self.critic_end])


class SlotScores(nn.Module):
    """Rank head: the Gaussian mean of each slot from its own token (weights shared by all slots).

    One column per slot, or with preemption control (action ``Box(K, 5)``) the five columns of the
    env's row (``llmsched_env.sim.slots.RANK_COLUMNS``), flattened slot by
    slot as SB3 flattens the Box. No bias: a common shift of all scores changes no order, and
    without it an empty slot's zero token gives mean exactly 0, so empty slots add nothing that
    depends on the weights.
    """

    def __init__(self, embed_dim: int, num_slots: int, action_space: spaces.Space) -> None:
        super().__init__()
        shape = action_space.shape or ()
        if shape not in (rank_action_shape(num_slots, False), rank_action_shape(num_slots, True)):
            raise ConfigError(f"rank policy: action space {action_space} does not match {num_slots} slots")
        self.embed_dim, self.num_slots = embed_dim, num_slots
        self.columns = 1 if len(shape) == 1 else int(shape[1])
        self.score = nn.Linear(embed_dim, self.columns, bias=False)
        nn.init.orthogonal_(self.score.weight, gain=0.01)  # start near 0: all orders equally likely
        self.linear_output = False  # Plackett-Luce scores are the linear outputs

    def forward(self, latent: torch.Tensor) -> torch.Tensor:
        tokens = latent.view(latent.shape[0], -1, self.embed_dim)[:, 1:]  # any number of slots (see act)
        scores = self.score(tokens).flatten(1)  # (B, K * columns)
        return scores if self.linear_output else torch.tanh(scores)


class SlotLogits(nn.Module):
    """Admit head: one logit per slot (shared per-slot weights) and an *advance* logit from the
    global token; with preemption control (``Discrete(4K + 1)``) also three logits per slot for
    *preempt it with mode m* (recompute, swap, restart), in the env's order ``K + 1 + 3 i + m``
    (``llmsched_env.sim.slots``)."""

    def __init__(self, embed_dim: int, num_slots: int, action_space: spaces.Space) -> None:
        super().__init__()
        n = int(getattr(action_space, "n", -1))
        if n not in (admit_action_count(num_slots, False), admit_action_count(num_slots, True)):
            raise ConfigError(f"admit policy: action space {action_space} does not match {num_slots} slots")
        self.embed_dim, self.num_slots = embed_dim, num_slots
        self.slot = nn.Linear(embed_dim, 1)
        self.advance = nn.Linear(embed_dim, 1)
        control = n == admit_action_count(num_slots, True)
        self.preempt = nn.Linear(embed_dim, NUM_PREEMPT_MODES) if control else None
        for layer in (self.slot, self.advance, self.preempt):
            if layer is not None:
                nn.init.orthogonal_(layer.weight, gain=0.01)
                nn.init.zeros_(layer.bias)

    def forward(self, latent: torch.Tensor) -> torch.Tensor:
        tokens = latent.view(latent.shape[0], -1, self.embed_dim)  # any number of slots (see act)
        logits = [self.slot(tokens[:, 1:]).squeeze(-1), self.advance(tokens[:, 0])]
        if self.preempt is not None:
            logits.append(self.preempt(tokens[:, 1:]).flatten(1))
        return torch.cat(logits, dim=1)


class PortfolioLogits(nn.Module):
    """Portfolio head: one logit per heuristic, from the global token and the mean of the occupied
    slots' tokens (empty slots' tokens are zero and not counted); starts near uniform."""

    def __init__(self, embed_dim: int, num_slots: int, action_space: spaces.Space) -> None:
        super().__init__()
        n = int(getattr(action_space, "n", -1))
        if not isinstance(action_space, spaces.Discrete) or n < 2:
            raise ConfigError(f"portfolio policy: action space {action_space} is not Discrete(M) with M >= 2")
        self.embed_dim, self.num_slots = embed_dim, num_slots
        self.logits = nn.Sequential(nn.Linear(2 * embed_dim, embed_dim), nn.ReLU(), nn.Linear(embed_dim, n))
        nn.init.orthogonal_(self.logits[2].weight, gain=0.01)
        nn.init.zeros_(self.logits[2].bias)

    def forward(self, latent: torch.Tensor) -> torch.Tensor:
        tokens = latent.view(latent.shape[0], -1, self.embed_dim)  # (B, 1 + K', d), any number of slots
        slots = tokens[:, 1:]
        occupied = (slots.abs().sum(dim=-1, keepdim=True) > 0).to(slots.dtype)  # (B, K', 1)
        mean = (slots * occupied).sum(dim=1) / occupied.sum(dim=1).clamp(min=1.0)
        return self.logits(torch.cat([tokens[:, 0], mean], dim=1))  # (B, M)


class _SetPolicyMixin:
    """Builds the set encoder, :class:`SetHeads` and a per-slot ``action_net`` into an SB3 policy."""

    head_class: type[nn.Module]

    @staticmethod
    def _defaults(kwargs: dict[str, Any]) -> dict[str, Any]:
        kwargs.setdefault("features_extractor_class", SetEncoder)
        kwargs.setdefault("ortho_init", False)  # PyTorch's default init; the heads set their own
        return kwargs

    def obs_to_tensor(self, observation: Any) -> Any:
        """SB3's, after checking that the observation has this model's slots and features (an
        env with another ``num_slots`` or slot layout would give SB3's error about spaces)."""
        space = self.observation_space  # type: ignore[attr-defined]
        if isinstance(observation, dict) and isinstance(space, spaces.Dict):
            for key in ("requests", "mask", "globals"):
                if key in observation and key in space.spaces:
                    expected = space[key].shape
                    got = tuple(getattr(observation[key], "shape", ()) or ())
                    if got[-len(expected):] != expected:
                        raise ConfigError(
                            f"observation[{key!r}] has shape {got}: this model was made for {expected} (num_slots="
                            f"{space['mask'].shape[0]}); expected an observation of the env it was trained on (the same "
                            "num_slots, slot_layout and preemption_control)"
                        )
        return super().obs_to_tensor(observation)  # type: ignore[misc]

    def _build_mlp_extractor(self) -> None:
        encoder = self.features_extractor  # type: ignore[attr-defined]
        self.mlp_extractor = SetHeads(encoder.critic_dim, encoder.embed_dim, encoder.num_slots)

    def _build(self, lr_schedule) -> None:
        super()._build(lr_schedule)  # type: ignore[misc]  # makes log_std, value_net, a flat action_net
        encoder = self.features_extractor  # type: ignore[attr-defined]
        self.action_net = self.head_class(encoder.embed_dim, encoder.num_slots, self.action_space)  # type: ignore[attr-defined]
        # the optimizer must see the per-slot head's parameters, not the replaced flat layer's
        self.optimizer = self.optimizer_class(  # type: ignore[attr-defined]
            self.parameters(), lr=lr_schedule(1), **self.optimizer_kwargs  # type: ignore[attr-defined]
        )


class SetRankPolicy(_SetPolicyMixin, ActorCriticPolicy):
    """PPO policy for ``rank`` mode: per-slot scores from the set encoder.

    ``distribution``:

    * ``gaussian`` (default): independent Gaussian scores per slot (tanh means, one learned
      log-std). The log-probability and the entropy sum over the *occupied* slots only: the env
      ignores the scores of empty slots, and counting their noise would add to every update's KL
      a term that says nothing about the decision (with 64 slots and 20 requests, most of it).
    * ``plackett-luce``: a distribution over orders. Slot ``i`` has a score ``s_i``; an order is
      sampled by Gumbel-top-k (the occupied slots sorted by ``s_i + G_i``, ``G_i`` standard Gumbel
      noise) and its exact log-probability is ``sum_k (s_(k) - logsumexp_{j >= k} s_(j))`` over the
      slots in sampled order; the deterministic action sorts by ``s_i``. The env reads only the
      order, so this is the distribution of what the action means. The action sent is
      ``tanh((s_i + G_i) / PL_SQUASH)``, strictly increasing in the perturbed score (the order can be
      read back from it). Its entropy has no closed form; PPO then uses minus the log-probability
      of the sampled order as its estimate.
    """

    head_class = SlotScores

    def __init__(self, observation_space, action_space, lr_schedule, distribution: str = "gaussian", **kwargs: Any) -> None:
        if distribution not in RANK_DISTRIBUTIONS:
            raise ConfigError(f"distribution={distribution!r} is invalid: expected one of {', '.join(RANK_DISTRIBUTIONS)}")
        self.rank_distribution = distribution
        super().__init__(observation_space, action_space, lr_schedule, **self._defaults(kwargs))
        if distribution == "plackett-luce":
            if len(action_space.shape) != 1:
                raise ConfigError("distribution='plackett-luce' orders the slots: it needs action_space (num_slots,), not preemption control")
            self.action_net.linear_output = True  # raw scores s_i (no tanh)

    def _get_constructor_parameters(self) -> dict[str, Any]:
        data = super()._get_constructor_parameters()
        data["distribution"] = self.rank_distribution
        return data

    def _latents(self, obs: Any) -> tuple[torch.Tensor, torch.Tensor]:
        features = self.extract_features(obs)
        return self.mlp_extractor(features)

    def _occupied(self, obs: Any, width: int) -> torch.Tensor:
        """(B, width) weights: 1 for the action entries of occupied slots."""
        mask = (obs["mask"] > 0.5).to(torch.float32)
        columns = width // mask.shape[1]
        return mask.repeat_interleave(columns, dim=1) if columns > 1 else mask

    def forward(self, obs: Any, deterministic: bool = False) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        latent_pi, latent_vf = self._latents(obs)
        values = self.value_net(latent_vf)
        if self.rank_distribution == "plackett-luce":
            scores = self.action_net(latent_pi)
            mask = obs["mask"] > 0.5
            if deterministic:
                perturbed = scores
            else:
                uniform = torch.rand_like(scores).clamp(1e-12, 1.0 - 1e-7)
                perturbed = scores - torch.log(-torch.log(uniform))
            actions = torch.tanh(perturbed / PL_SQUASH)
            return actions, values, plackett_luce_log_prob(scores, actions, mask)
        distribution = self._get_action_dist_from_latent(latent_pi)
        actions = distribution.get_actions(deterministic=deterministic)
        per_entry = distribution.distribution.log_prob(actions)
        log_prob = (per_entry * self._occupied(obs, per_entry.shape[1])).sum(dim=1)
        return actions.reshape((-1, *self.action_space.shape)), values, log_prob

    def _predict(self, observation: Any, deterministic: bool = False) -> torch.Tensor:
        """What ``model.predict`` returns: the actions of :meth:`forward` (the Plackett-Luce squash
        included; SB3's default would read a Gaussian around the raw scores)."""
        return self.forward(observation, deterministic)[0]

    def evaluate_actions(self, obs: Any, actions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        latent_pi, latent_vf = self._latents(obs)
        values = self.value_net(latent_vf)
        actions = actions.reshape(actions.shape[0], -1)
        if self.rank_distribution == "plackett-luce":
            scores = self.action_net(latent_pi)
            return values, plackett_luce_log_prob(scores, actions, obs["mask"] > 0.5), None
        distribution = self._get_action_dist_from_latent(latent_pi)
        per_entry = distribution.distribution.log_prob(actions)
        occupied = self._occupied(obs, per_entry.shape[1])
        entropy = (distribution.distribution.entropy() * occupied).sum(dim=1)
        return values, (per_entry * occupied).sum(dim=1), entropy


RANK_DISTRIBUTIONS = ("gaussian", "plackett-luce")
PL_SQUASH = 8.0  # actions tanh(perturbed score / PL_SQUASH): strictly increasing, far from saturating


def plackett_luce_log_prob(scores: torch.Tensor, actions: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Log-probability (B,) under Plackett-Luce with ``scores`` (B, K) of the order of the occupied
    slots (``mask``, B x K bools) that sorting ``actions`` (B, K) by decreasing value gives."""
    neg_inf = torch.finfo(scores.dtype).min
    order = torch.argsort(torch.where(mask, actions, torch.full_like(actions, -2.0)), dim=1, descending=True)
    s = torch.gather(scores, 1, order)
    m = torch.gather(mask, 1, order)
    s_masked = torch.where(m, s, torch.full_like(s, neg_inf))
    suffix = torch.flip(torch.logcumsumexp(torch.flip(s_masked, dims=[1]), dim=1), dims=[1])
    return torch.where(m, s - suffix, torch.zeros_like(s)).sum(dim=1)


class SetAdmitPolicy(_SetPolicyMixin, MaskableActorCriticPolicy):
    """MaskablePPO policy for ``admit`` mode: per-slot logits plus an advance logit."""

    head_class = SlotLogits

    def __init__(self, observation_space, action_space, lr_schedule, **kwargs: Any) -> None:
        super().__init__(observation_space, action_space, lr_schedule, **self._defaults(kwargs))


class SetPortfolioPolicy(_SetPolicyMixin, ActorCriticPolicy):
    """PPO policy of a portfolio agent (``train.portfolio``): a categorical over the heuristics."""

    head_class = PortfolioLogits

    def __init__(self, observation_space, action_space, lr_schedule, **kwargs: Any) -> None:
        super().__init__(observation_space, action_space, lr_schedule, **self._defaults(kwargs))
