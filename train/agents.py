"""Agents acting in ``llmsched/Serve-v1``: heuristics as env agents, trained models as policies.

* :func:`policy_action` turns an engine-side scheduling policy (``baselines``: a priority per
  request, lower served first) into the env's action, so a heuristic can act through the env
  (behaviour cloning, and tests that the env path matches the engine path).
* :func:`run_episode` plays one episode with a trained SB3 model acting deterministically (a
  portfolio agent, ``train.portfolio``, samples its picks, seeded by the workload).
* :func:`evaluate` and :func:`baseline_figures` give the figures the training logs as ``eval/*``:
  the agent through its env, and heuristics directly on the engine (``simulate``), both on the
  same workloads (common random numbers: ``reset(options={"sim_seed": n})`` serves exactly the
  requests of ``simulate(config, seed=n)``).
* :func:`load_policy` loads a saved model for ``llmsched-eval``: the returned
  :class:`TrainedAgent` has ``name`` and ``simulate(config, seed) -> SimResult``, which runs the env
  built by ``ServeEnv.from_config(config, **the env options the model was trained with)``.

A saved model carries what it was trained on in the attribute ``llmsched_info`` (saved inside the
SB3 ``.zip`` with the model, see :func:`attach_info`): the algorithm, the env id and kwargs, and the
agent's env options (``AGENT_OPTIONS``: slots, action mode, preemption control, reward, decision
interval).
"""

from __future__ import annotations

import json
import math
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import gymnasium as gym
import numpy as np

import llmsched_env  # noqa: F401  (registers the environments)
from llmsched_env.envs.serve import ServeEnv
from llmsched_env.sim import SimConfig, simulate
from llmsched_env.sim.api import SimResult
from llmsched_env.sim.policy import Policy
from llmsched_env.sim.slots import preempt_action
from llmsched_env.sim.validation import ConfigError

from .config import ALGOS, algo_class

INFO_KEY = "llmsched_info"  # model attribute (saved in the zip) describing its training env
AGENT_OPTIONS = (  # how the agent acts and what it sees
    "num_slots", "action_mode", "preemption_control", "reward", "decision_interval", "slot_layout", "waiting_slots",
)  # fmt: skip
LEGACY_ENVS = ("llmsched/Serve-v0", "llmsched/Serve-v1")  # the kv-first slot layout
METRICS = {  # eval/<name> -> summary key
    "e2e_mean": "e2e_mean_s",
    "e2e_p99": "e2e_p99_s",
    "ttft_mean": "ttft_mean_s",
    "throughput": "output_tokens_per_s",
}


# -- heuristics as env agents ---------------------------------------------------------------------


def policy_action(policy: Policy, env: gym.Env) -> np.ndarray | int:
    """The env action that makes the engine follow ``policy`` on the requests now in the slots
    (:meth:`baselines.agent.PolicyAgent.act`: in ``rank`` mode the slots' scores spread over
    [-1, 1] by the policy's order, with the policy's preemption modes when the env has preemption
    control; in ``admit`` mode the held request the policy ranks first, else *advance*)."""
    from baselines.agent import PolicyAgent

    return PolicyAgent(policy).act(env)


# -- model metadata -------------------------------------------------------------------------------


def agent_options(env_kwargs: dict[str, Any], env_id: str = "llmsched/Serve-v2") -> dict[str, Any]:
    """The env options that define how an agent acts (``AGENT_OPTIONS``), defaults filled in
    (``Serve-v0/v1`` show the ``kv-first`` slot layout, ``Serve-v2`` the ``queue`` one)."""
    import dataclasses

    from llmsched_env.scenarios import EnvOptions

    defaults = {**dataclasses.asdict(EnvOptions()), "decision_interval": 0, "slot_layout": default_layout(env_id)}
    return {key: env_kwargs.get(key, defaults[key]) for key in AGENT_OPTIONS}


SPACE_OPTIONS = ("num_slots", "action_mode", "preemption_control", "slot_layout", "waiting_slots")  # fix the spaces


def check_same_spaces(path: str | Path, options: dict[str, Any], where: str) -> None:
    """Raise ConfigError unless the model at ``path`` was made for env options (``options``,
    those of :data:`AGENT_OPTIONS`) that give the same observation and action spaces."""
    saved = read_info(path).get("agent_options") or {}
    differ = [key for key in SPACE_OPTIONS if key in saved and key in options and saved[key] != options[key]]
    if differ:
        raise ConfigError(
            f"{where} {str(path)!r} was made for " + ", ".join(f"{k}={saved[k]!r}" for k in differ)
            + ": expected an env with the same, this one has " + ", ".join(f"{k}={options[k]!r}" for k in differ)
        )


def default_layout(env_id: str) -> str:
    """The slot layout an env id shows unless told otherwise."""
    return "kv-first" if env_id.removeprefix("llmsched_env:") in LEGACY_ENVS else "queue"


def attach_info(model: Any, algo: str, env_id: str, scenario: Any, portfolio: Sequence[str] | None = None) -> None:
    """Record on ``model`` (saved in its zip by ``model.save``) what it was trained on: the
    algorithm, the env id, the scenario (a :class:`~llmsched_env.scenarios.Scenario`, or env
    keywords for the older envs), how the agent acts and what it sees (``AGENT_OPTIONS``) and, for
    a portfolio agent, its heuristics (``portfolio``)."""
    from llmsched_env.scenarios import Scenario

    if isinstance(scenario, Scenario):
        info = scenario_info(algo, env_id, scenario)
    else:
        info = {"algo": algo, "env_id": env_id, "env_kwargs": dict(scenario), "agent_options": agent_options(scenario, env_id)}
    if ALGOS[algo][2] == "portfolio":
        if not portfolio:
            raise ConfigError(f"portfolio={portfolio!r} is invalid for algo={algo!r}: expected the list of heuristics the agent picks from")
        info["portfolio"] = list(portfolio)
    setattr(model, INFO_KEY, info)


def scenario_info(algo: str, env_id: str, scenario: Any) -> dict[str, Any]:
    """What a trained agent records about its training: the algorithm, the env id, the scenario
    (a :class:`~llmsched_env.scenarios.Scenario`) and the agent's options (``AGENT_OPTIONS``)."""
    import dataclasses

    options = {**dataclasses.asdict(scenario.env), "decision_interval": scenario.sim.decision_interval}
    return {"algo": algo, "env_id": env_id, "scenario": scenario.name, "scenario_config": scenario.to_dict(),
            "agent_options": {key: options[key] for key in AGENT_OPTIONS}}  # fmt: skip


def read_info(path: str | Path) -> dict[str, Any]:
    """The ``llmsched_info`` of a saved model, read from the zip without loading the model."""
    try:
        with zipfile.ZipFile(path) as archive:
            data = json.loads(archive.read("data"))
    except (OSError, KeyError, zipfile.BadZipFile, json.JSONDecodeError) as err:
        raise ConfigError(f"model {str(path)!r} is not a stable-baselines3 model zip ({err})") from None
    info = data.get(INFO_KEY)
    if not isinstance(info, dict) or info.get("algo") not in ALGOS:
        raise ConfigError(f"model {str(path)!r} was not saved by llmsched-train (no {INFO_KEY} with a known algo)")
    return info


def is_router_model(info: dict[str, Any]) -> bool:
    """Whether a saved model (its ``llmsched_info``) routes requests across a cluster's replicas."""
    return str(info["env_id"]).removeprefix("llmsched_env:").startswith("llmsched/Cluster")


def load_model(path: str | Path, device: str = "cpu", env: Any = None) -> Any:
    """Load a model saved by ``llmsched-train`` with the right SB3 class."""
    info = read_info(path)
    model = algo_class(info["algo"]).load(str(path), env=env, device=device)
    model.policy.set_training_mode(False)  # acting only (resuming training switches it back)
    return model


# -- running a trained model ----------------------------------------------------------------------


def act(
    model: Any, env: gym.Env, observation: dict[str, np.ndarray], encoder: Any = None, rng: np.random.Generator | None = None
) -> np.ndarray | int:
    """The model's action. A portfolio agent (``env`` wrapped in :class:`train.portfolio.PortfolioWrapper`)
    samples its heuristic from its categorical with ``rng`` (its argmax without one). Otherwise the
    deterministic action: what ``model.predict(observation, deterministic=True)``
    gives (with the action mask in ``admit`` mode; up to float rounding, which can flip exact
    near-ties), from one forward pass of the actor.

    SB3's ``predict`` also switches the policy's training mode and builds the action distribution
    at every call, which is most of the cost when an agent steps through thousands of epochs of
    an evaluation; here the actor's output is used directly: the Gaussian mean clipped to the
    action space (``rank``), or the best valid logit (``admit``). And since the set encoder treats
    the slots as a set and ignores the empty ones (masked keys, zeroed tokens: mean 0 in ``rank``,
    masked logits in ``admit``), only the occupied slots, which come first, go through it. A test
    checks both modes against ``predict``. ``encoder`` replaces the policy's set encoder (e.g. its
    TorchScript trace, see :func:`trace_encoder`).
    """
    import torch

    u: Any = env.unwrapped
    policy = model.policy
    K = u.num_slots
    n = max(int(observation["mask"].sum()), 1)  # occupied slots (the first n rows)
    with torch.inference_mode():
        obs = {key: torch.as_tensor(value[:n] if key != "globals" else value, device=policy.device).unsqueeze(0)
               for key, value in observation.items()}
        if encoder is not None:
            features = encoder(obs)  # the observations are float32 already: SB3's preprocessing is a no-op
        else:
            features = policy.extract_features(obs)
            if isinstance(features, tuple):  # separate actor and critic extractors
                features = features[0]
        output = policy.action_net(policy.mlp_extractor.forward_actor(features))[0]
        if getattr(policy, "rank_distribution", "gaussian") == "plackett-luce":
            from .networks import PL_SQUASH

            output = torch.tanh(output / PL_SQUASH)  # what forward(deterministic=True) sends
        output = output.cpu().numpy()
    portfolio_model = isinstance(policy.action_space, gym.spaces.Discrete) and u.action_mode == "rank"
    if portfolio_model != isinstance(env.action_space, gym.spaces.Discrete) and u.action_mode == "rank":
        info = getattr(model, INFO_KEY, {}) or {}
        raise ConfigError(
            f"a portfolio agent (portfolio={info.get('portfolio')!r}) acts through train.portfolio.PortfolioWrapper(env, portfolio)"
            if portfolio_model
            else f"env action space {env.action_space} is a portfolio's: expected a portfolio agent (algo ppo_portfolio), got a rank-mode model"
        )
    if portfolio_model:
        if rng is None:  # a portfolio agent's pick: a heuristic of its portfolio
            return int(np.argmax(output))
        p = np.exp(output - output.max())
        return int(rng.choice(len(p), p=p / p.sum()))
    if u.action_mode == "admit":
        logits = np.full(u.action_space.n, -np.inf)
        logits[:n] = output[:n]
        logits[K] = output[n]  # advance
        if len(output) > n + 1:  # preemption control: a logit per mode for each occupied slot
            logits[preempt_action(K, 0, 0) : preempt_action(K, n, 0)] = output[n + 1 :]
        return int(np.argmax(np.where(u.action_masks(), logits, -np.inf)))
    space = u.action_space
    action = np.zeros(space.shape, dtype=np.float32)
    action[:n] = output.reshape((n,) + space.shape[1:])
    return np.clip(action, space.low, space.high)


def trace_encoder(model: Any) -> Any:
    """The actor's set encoder as a TorchScript trace (about twice as fast at batch size 1: the
    per-module Python overhead dominates such small networks), or None if it cannot be traced.

    The encoder has no data-dependent control flow, so the trace holds for any number of slots
    (a test compares it with the module on several).
    """
    import torch

    policy = model.policy
    if not policy.share_features_extractor:
        return None
    encoder = policy.features_extractor
    example = {key: torch.zeros((1,) + box.shape, device=policy.device) for key, box in policy.observation_space.spaces.items()}
    example["mask"][0, 0] = 1.0
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # newer torch deprecates tracing in favour of torch.export
            return torch.jit.trace(encoder, (example,), strict=False, check_trace=False)
    except Exception:  # noqa: BLE001 - an encoder that cannot be traced runs as it is
        return None


def run_episode(model: Any, env: gym.Env, sim_seed: int, encoder: Any = None) -> dict[str, Any]:
    """Play the workload of ``sim_seed`` to the end with ``model``; returns the final ``info``.

    A portfolio agent samples its picks from a generator seeded by ``sim_seed``: the same model on
    the same workload gives the same run."""
    from .portfolio import find_portfolio

    rng = np.random.default_rng([int(sim_seed), 7]) if find_portfolio(env) is not None else None
    return play_episode(env, sim_seed, lambda observation: act(model, env, observation, encoder, rng))


def play_episode(env: gym.Env, sim_seed: int, policy: Callable[[dict[str, np.ndarray]], Any]) -> dict[str, Any]:
    """Play the workload of ``sim_seed`` to the end, ``policy(observation)`` giving each action;
    returns the final ``info``."""
    observation, info = env.reset(options={"sim_seed": sim_seed})
    done = False
    while not done:
        observation, _, terminated, truncated, info = env.step(policy(observation))
        done = terminated or truncated
    return info


def evaluate(model: Any, env: gym.Env, seeds: Sequence[int]) -> dict[str, float]:
    """Mean over the workloads of ``seeds`` of each ``METRICS`` figure, the agent acting."""
    summaries = [run_episode(model, env, seed)["summary"] for seed in seeds]
    return mean_metrics(summaries)


def baseline_figures(config: SimConfig, names: Sequence[str], seeds: Sequence[int]) -> dict[str, dict[str, float]]:
    """For each baseline spec, the mean ``METRICS`` over ``seeds`` of ``simulate(config, ...)``."""
    import baselines

    return {
        name: mean_metrics([simulate(config, baselines.parse(name), seed=seed).summary for seed in seeds])
        for name in names
    }


def mean_metrics(summaries: Sequence[dict[str, Any]], metrics: dict[str, str] = METRICS) -> dict[str, float]:
    """Mean over ``summaries`` of each figure ``metrics`` names (eval name -> summary key; NaN
    where a summary lacks the key)."""
    return {name: float(np.mean([s.get(key, np.nan) for s in summaries])) for name, key in metrics.items()}


@dataclass
class TrainedAgent:
    """A trained model as an ``llmsched-eval`` policy: it runs its own env over any SimConfig."""

    name: str
    model: Any
    options: dict[str, Any]  # the env options it was trained with (AGENT_OPTIONS)
    encoder: Any = None  # the traced set encoder (faster acting), or None
    portfolio: tuple[str, ...] | None = None  # a portfolio agent's heuristics (train.portfolio), else None

    def simulate(self, config: SimConfig, seed: int) -> SimResult:
        """Run ``config``'s workload of ``seed`` with the model acting (deterministically; a
        portfolio agent samples its picks, seeded by ``seed``).

        Gives what :func:`llmsched_env.sim.simulate` gives for a heuristic: the per-request records
        and the summary (with the same extra keys).
        """
        env = ServeEnv.from_config(config, **self.options)
        acting: gym.Env = env
        if self.portfolio is not None:
            from .portfolio import PortfolioWrapper

            acting = PortfolioWrapper(env, self.portfolio)
        return episode_result(env, run_episode(self.model, acting, seed, self.encoder), self.name, seed)


def episode_result(env: ServeEnv, info: dict[str, Any], name: str, seed: int) -> SimResult:
    """What :func:`llmsched_env.sim.simulate` gives for a heuristic (the per-request records and the
    summary, with the same extra keys) from an agent's finished episode in ``env``."""
    summary = dict(info["summary"])
    engine = env.engine
    assert engine is not None
    summary["arrival_rate_per_s"] = math.nan if env.rate is None else float(env.rate)
    summary["capacity_per_s"] = math.nan if env.capacity is None else float(env.capacity)
    summary["iterations"] = engine.stats.iterations
    summary["events"] = engine.stats.stretches
    summary["swap_fallbacks"] = engine.stats.swap_fallbacks
    return SimResult(
        config=env.config,
        policy=name,
        seed=int(seed),
        rate=env.rate,
        capacity=env.capacity,
        summary=summary,
        records=env.records.to_arrays(),
        stats=engine.stats,
        series=env.series,
    )


def load_policy(path: str | Path, device: str = "cpu") -> TrainedAgent:
    """A model saved by ``llmsched-train`` as a policy for ``llmsched-eval`` (named after its file).

    Sets torch to one thread: the networks are small, and evaluations run one process per core.
    """
    import torch

    torch.set_num_threads(1)
    path = Path(path)
    info = read_info(path)
    model = load_model(path, device=device)
    if is_router_model(info):
        raise ConfigError(f"model {str(path)!r} is a routing agent ({info['env_id']}): load it with train.router.load_policy")
    options = dict(info["agent_options"])
    options.setdefault("slot_layout", default_layout(info["env_id"]))  # models saved before the option
    portfolio = tuple(info["portfolio"]) if "portfolio" in info else None
    return TrainedAgent(name=path.name.removesuffix(".zip"), model=model, options=options, encoder=trace_encoder(model), portfolio=portfolio)
