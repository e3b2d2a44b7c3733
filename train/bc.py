"""Behaviour cloning: warm-start a policy by imitating a heuristic before PPO.

The teacher (a ``baselines`` policy) acts through the env via :func:`train.agents.policy_action`;
we record (observation, action) pairs and the discounted return-to-go, then fit the policy
(optionally with DAgger rounds: the fitted policy acts, the teacher labels, and the policy is fit
again on all pairs, which corrects the states its own mistakes lead to):

* ``rank`` mode: the Gaussian means regress onto the teacher's scores (its service order spread
  over [-1, 1], see ``policy_action``), mean squared error over the occupied slots, plus a pairwise
  logistic ranking loss over the pairs of occupied slots the teacher orders (the env uses only
  the order). The ranking term matters: with the squared error alone the clone sometimes ranks a
  waiting request above a running one, and when KV is short the engine then preempts the running
  one (a recompute that costs seconds); on the default env it took the clone of SJF from 0.2 %
  worse than SJF to equal (measured on 10 validation workloads, 2 preemptions to none). The
  standard deviation is left as configured, so PPO starts from the teacher with its usual
  exploration.
* ``admit`` mode: cross-entropy of the masked categorical on the teacher's picks.
* a portfolio agent (``train.portfolio``): cross-entropy of its categorical on the teacher's index
  in the portfolio (the clone picks the teacher; PPO then learns when another heuristic pays).
* Both: the value head regresses onto the teacher's discounted returns, so PPO's first advantages
  come from a critic that already knows the task instead of a random one that would pull the
  cloned policy away.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import gymnasium as gym
import numpy as np
import torch
from gymnasium import spaces

from llmsched_env.sim.policy import Policy
from llmsched_env.sim.validation import ConfigError

from .agents import act, policy_action

VALUE_COEF = 0.5  # weight of the value loss next to the imitation loss
RANKING_COEF = 1.0  # weight of the pairwise ranking loss next to the squared error (rank mode)
RANKING_TEMPERATURE = 0.05  # score difference at which a pair counts as clearly ordered (scores in [-1, 1])


@dataclass
class Demonstrations:
    """Recorded teacher steps: N observations with the teacher's actions and returns-to-go."""

    observations: dict[str, np.ndarray]  # each (N, ...)
    actions: np.ndarray  # (N, K) scores, (N, K, 5) rows with preemption control (rank), or (N,) picks (admit)
    action_masks: np.ndarray | None  # (N, K + 1) valid actions (admit), else None
    returns: np.ndarray  # (N,) discounted return-to-go

    def __len__(self) -> int:
        return len(self.returns)


#: the candidates of ``teacher: auto`` (oracles excluded: they read the true lengths)
TEACHER_CANDIDATES = ("fcfs", "sjf", "sprpt", "trail", "mlfq", "mcsf")


def strongest_heuristic(config: Any, seeds: Sequence[int], candidates: Sequence[str] = TEACHER_CANDIDATES) -> tuple[str, dict[str, float]]:
    """The candidate with the lowest mean end-to-end latency over ``seeds`` of ``config``
    (run on the engine directly, so it costs seconds), and every candidate's mean."""
    import baselines
    from llmsched_env.sim import simulate

    scores = {}
    for name in candidates:
        if name.partition(":")[0] not in baselines.available():
            continue
        policy = baselines.parse(name)
        scores[name] = float(np.mean([simulate(config, policy, seed=int(s)).summary["e2e_mean_s"] for s in seeds]))
    if not scores:
        raise ConfigError(f"bc.teacher='auto': none of {list(candidates)} is a known baseline; name the teacher")
    return min(scores, key=lambda n: scores[n]), scores


def collect(
    teacher: Policy,
    env: gym.Env,
    sim_seeds: Sequence[int],
    gamma: float,
    student: Any = None,
    progress: bool = False,
    label: str = "cloning",
) -> Demonstrations:
    """Play one episode per sim seed; record what was seen, the teacher's action and the returns.

    The teacher acts, or with ``student`` (an SB3 model) the student acts deterministically while
    the teacher labels each state (DAgger: the student meets its own mistakes, with the teacher's
    answer to them). A teacher with wake-ups (MLFQ) gets its decision epochs. ``progress``: a
    progress bar over the episodes with an estimate of the time left.
    """
    from tqdm import tqdm

    from baselines.agent import PolicyAgent

    from .portfolio import find_portfolio

    portfolio = find_portfolio(env)
    if portfolio is None:
        PolicyAgent(teacher).bind(env)  # the teacher's wake-ups reach the engine from the next reset
    admit = env.unwrapped.action_mode == "admit"  # type: ignore[attr-defined]
    pick = None if portfolio is None else portfolio.index_of(teacher)  # a portfolio agent's teacher: its pick
    observations: list[dict[str, np.ndarray]] = []
    actions: list[Any] = []
    masks: list[np.ndarray] = []
    returns: list[float] = []
    for seed in tqdm(sim_seeds, desc=label, unit="episode", disable=not progress, dynamic_ncols=True):
        observation, info = env.reset(options={"sim_seed": int(seed)})
        rewards: list[float] = []
        done = False
        while not done:
            action = policy_action(teacher, env) if pick is None else pick
            observations.append(observation)
            actions.append(action)
            if admit:
                masks.append(info["action_mask"])
            if student is not None:
                action = act(student, env, observation)
            observation, reward, terminated, truncated, info = env.step(action)
            rewards.append(float(reward))
            done = terminated or truncated
        to_go, episode_returns = 0.0, []
        for reward in reversed(rewards):
            to_go = reward + gamma * to_go
            episode_returns.append(to_go)
        returns.extend(reversed(episode_returns))
    stacked = {key: np.stack([o[key] for o in observations]) for key in observations[0]}
    return Demonstrations(
        observations=stacked,
        actions=np.asarray(actions, dtype=np.int64 if admit or pick is not None else np.float32),
        action_masks=np.stack(masks) if admit else None,
        returns=np.asarray(returns, dtype=np.float32),
    )


def merge(a: Demonstrations, b: Demonstrations) -> Demonstrations:
    """The pairs of both."""
    return Demonstrations(
        observations={k: np.concatenate([a.observations[k], b.observations[k]]) for k in a.observations},
        actions=np.concatenate([a.actions, b.actions]),
        action_masks=None if a.action_masks is None else np.concatenate([a.action_masks, b.action_masks]),  # type: ignore[list-item]
        returns=np.concatenate([a.returns, b.returns]),
    )


def _tensors(policy: Any, demos: Demonstrations) -> dict[str, Any]:
    device = policy.device
    return {
        "obs": {k: torch.as_tensor(v, device=device) for k, v in demos.observations.items()},
        "actions": torch.as_tensor(demos.actions, device=device),
        "masks": None if demos.action_masks is None else torch.as_tensor(demos.action_masks, device=device),
        "returns": torch.as_tensor(demos.returns, device=device),
    }


def _losses(policy: Any, data: dict[str, Any], index: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(imitation loss, value loss) on the pairs at ``index``, from one forward pass."""
    obs = {k: v[index] for k, v in data["obs"].items()}
    actions = data["actions"][index]
    latent_pi, latent_vf = policy.mlp_extractor(policy.extract_features(obs))
    if data["masks"] is None and getattr(policy, "rank_distribution", "gaussian") == "plackett-luce":
        # rank over orders: the Plackett-Luce likelihood of the teacher's order
        from .networks import plackett_luce_log_prob

        occupied = obs["mask"] > 0.5
        scores = policy.action_net(latent_pi)
        imitation = -(plackett_luce_log_prob(scores, actions.view(scores.shape), occupied) / occupied.sum(dim=1).clamp(min=1)).mean()
    elif data["masks"] is None and not isinstance(policy.action_space, spaces.Discrete):  # rank: the Gaussian means against the teacher's scores, occupied slots only
        occupied = obs["mask"]  # (B, K)
        means = policy.action_net(latent_pi).view(actions.shape[0], occupied.shape[1], -1)  # (B, K, columns)
        targets = actions.view(means.shape)  # preemption control: the columns of each slot's row
        imitation = (((means - targets) ** 2) * occupied.unsqueeze(-1)).sum() / (occupied.sum() * means.shape[2]).clamp(min=1.0)
        imitation = imitation + RANKING_COEF * _ranking_loss(means[..., 0], targets[..., 0], occupied)
    else:  # admit (masked) or portfolio: cross-entropy of the categorical on the teacher's picks
        distribution = policy._get_action_dist_from_latent(latent_pi)
        if data["masks"] is not None:
            distribution.apply_masking(data["masks"][index])
        imitation = -distribution.log_prob(actions).mean()
    values = policy.value_net(latent_vf).squeeze(-1)
    return imitation, torch.nn.functional.mse_loss(values, data["returns"][index])


def _ranking_loss(means: torch.Tensor, targets: torch.Tensor, occupied: torch.Tensor) -> torch.Tensor:
    """Mean of log(1 + exp(-(m_i - m_j) / T)) over occupied pairs (i, j) the teacher serves i first."""
    ordered = (targets.unsqueeze(2) > targets.unsqueeze(1)) & (occupied.unsqueeze(2) * occupied.unsqueeze(1) > 0)
    margins = (means.unsqueeze(2) - means.unsqueeze(1)) / RANKING_TEMPERATURE
    pairs = ordered.to(means.dtype)
    return (torch.nn.functional.softplus(-margins) * pairs).sum() / pairs.sum().clamp(min=1.0)


def imitation_loss(policy: Any, demos: Demonstrations, batch_size: int = 4096) -> float:
    """Mean imitation loss of ``policy`` over ``demos`` (no gradient)."""
    data = _tensors(policy, demos)
    total = 0.0
    with torch.no_grad():
        for start in range(0, len(demos), batch_size):
            index = torch.arange(start, min(start + batch_size, len(demos)), device=policy.device)
            total += float(_losses(policy, data, index)[0]) * len(index)
    return total / len(demos)


def behaviour_clone(
    policy: Any,
    demos: Demonstrations,
    *,
    epochs: int,
    batch_size: int,
    learning_rate: float,
    seed: int = 0,
    progress: bool = False,
) -> list[float]:
    """Fit ``policy`` (an SB3 policy) to ``demos``; returns the mean imitation loss of each epoch."""
    from tqdm import tqdm

    data = _tensors(policy, demos)
    optimizer = torch.optim.Adam(policy.parameters(), lr=learning_rate)
    generator = torch.Generator().manual_seed(seed)
    policy.set_training_mode(True)
    history = []
    for _ in tqdm(range(epochs), desc="fitting", unit="epoch", disable=not progress, dynamic_ncols=True):
        permutation = torch.randperm(len(demos), generator=generator).to(policy.device)
        total = 0.0
        for start in range(0, len(demos), batch_size):
            index = permutation[start : start + batch_size]
            imitation, value = _losses(policy, data, index)
            optimizer.zero_grad()
            (imitation + VALUE_COEF * value).backward()
            torch.nn.utils.clip_grad_norm_(policy.parameters(), 1.0)
            optimizer.step()
            total += imitation.item() * len(index)
        history.append(total / len(demos))
    policy.set_training_mode(False)
    return history
