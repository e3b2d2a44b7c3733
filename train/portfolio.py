"""A portfolio agent: at each decision epoch the agent picks which heuristic orders the queue.

:class:`PortfolioWrapper` turns a ``rank``-mode ``llmsched/Serve-v2`` env into one whose action is
``Discrete(M)``: action ``m`` makes the engine follow the ``m``-th heuristic of the portfolio (its
order of the requests in the slots, as :class:`baselines.agent.PolicyAgent` turns it into rank
scores) until the next epoch. The observation, the reward and the episode are the env's.

Why this formulation. In ``rank`` mode an agent's exploration is a perturbation of every slot's
score: most perturbations give an order no heuristic would pick, and the one comparison that
decides the next admission is lost among 64 others. A portfolio agent explores among orders that
are each sensible, and the credit of one pick is one categorical choice. Mixing heuristics is
itself a policy: a request waiting behind short ones under Trail gets its turn when the agent
picks FCFS (an aging effect no single heuristic of the portfolio has), and the agent learns when
each order pays, from the state. Its policy is stochastic (a distribution over the heuristics):
it acts by sampling, seeded by the workload's simulation seed so that a run is reproducible
(:func:`train.agents.run_episode`).

Wake-ups. A heuristic with its own decision epochs (MLFQ's quantum expiries) gets them whichever
heuristic the agent picks: the wrapper installs the earliest wake-up of the portfolio's members.
A stateful heuristic (MLFQ's starvation clock) sees the requests only at the epochs it is picked.
"""

from __future__ import annotations

from typing import Any, Sequence

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from llmsched_env.sim.validation import ConfigError

#: the default portfolio: the size-based order on refined predictions, the prompt-aware MLFQ,
#: shortest predicted first and arrival order
DEFAULT_PORTFOLIO = ("trail", "mlfq", "sjf", "fcfs")


def check_portfolio(names: Sequence[str], where: str = "portfolio") -> tuple[str, ...]:
    """The portfolio as a tuple of baseline specs, each checked (a clear error names the bad one)."""
    import baselines

    if isinstance(names, str) or not isinstance(names, Sequence) or len(names) < 2:
        raise ConfigError(f"{where}={names!r} is invalid: expected a list of at least 2 baseline names, e.g. {list(DEFAULT_PORTFOLIO)}")
    for name in names:
        try:
            baselines.parse(name)
        except ConfigError as err:
            raise ConfigError(f"{where}: {err}") from None
        if str(name).partition(":")[0] in baselines.ORACLES:
            raise ConfigError(f"{where}: {name!r} reads the true output lengths (an oracle): expected heuristics a server can run")
    twice = sorted({n for n in names if list(names).count(n) > 1})
    if twice:
        raise ConfigError(f"{where}={list(names)!r} names {', '.join(map(repr, twice))} twice: expected distinct baselines")
    return tuple(str(n) for n in names)


class _EarliestWakeup:
    """The earliest of several policies' wake-ups (``wakeup(requests, now) -> iterations | None``)."""

    def __init__(self, sources: Sequence[Any]) -> None:
        self.sources = list(sources)

    def __call__(self, requests: Any, now: float) -> int | None:
        times = [t for t in (source(requests, now) for source in self.sources) if t is not None]
        return min(times) if times else None


class PortfolioWrapper(gym.Wrapper):
    """``Discrete(M)`` actions over a rank-mode Serve env: action ``m`` follows heuristic ``m``."""

    def __init__(self, env: gym.Env, portfolio: Sequence[str] = DEFAULT_PORTFOLIO) -> None:
        super().__init__(env)
        import baselines
        from baselines.agent import PolicyAgent

        u: Any = env.unwrapped
        if getattr(u, "action_mode", None) != "rank":
            raise ConfigError(f"portfolio agents act through action_mode='rank' (got action_mode={getattr(u, 'action_mode', None)!r})")
        self.portfolio = check_portfolio(portfolio)
        self.policies = [baselines.parse(name) for name in self.portfolio]
        self.agents = [PolicyAgent(policy) for policy in self.policies]
        wakeups = [p.wakeup for p in self.policies if getattr(p, "wakeup", None) is not None]
        if wakeups:
            u.set_wakeup(wakeups[0] if len(wakeups) == 1 else _EarliestWakeup(wakeups))
        self.action_space = spaces.Discrete(len(self.policies))

    def index_of(self, policy: Any) -> int:
        """The portfolio index of a heuristic (a spec or a parsed baseline), for behaviour cloning."""
        import baselines

        target = baselines.parse(policy) if isinstance(policy, str) else policy
        for i, member in enumerate(self.policies):
            if member == target:
                return i
        raise ConfigError(f"bc.teacher={getattr(target, 'name', target)!r} is not in the portfolio {list(self.portfolio)}: a portfolio agent clones one of its heuristics")

    def step(self, action: Any):
        return self.env.step(self.scores(action))

    def scores(self, action: Any) -> np.ndarray:
        """The rank-mode action of the heuristic ``action`` picks, on the requests now in the slots."""
        value = np.asarray(action)
        if value.size != 1 or not np.issubdtype(value.dtype, np.number) or not np.isfinite(value).all():
            raise ConfigError(f"action={action!r} is invalid: expected one integer in [0, {self.action_space.n - 1}] (portfolio)")
        choice = int(value.reshape(()))
        if choice != value.reshape(()) or not 0 <= choice < self.action_space.n:
            raise ConfigError(f"action={action!r} is invalid: expected one integer in [0, {self.action_space.n - 1}] (portfolio)")
        return self.agents[choice].act(self.env)


def find_portfolio(env: gym.Env) -> PortfolioWrapper | None:
    """The :class:`PortfolioWrapper` in ``env``'s wrapper chain, or None."""
    while isinstance(env, gym.Wrapper):
        if isinstance(env, PortfolioWrapper):
            return env
        env = env.env
    return None
