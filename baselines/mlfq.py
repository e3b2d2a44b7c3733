"""MLFQ: FastServe's skip-join multi-level feedback queue (Wu et al. 2023), preemptive.

Wu, Zhong, Zhang, Huang, Liu and Jin, "Fast Distributed Inference Serving for Large Language
Models" (arXiv:2305.05920, 2023). FastServe does not know output lengths but knows the prompt, so it
schedules with a multi-level feedback queue whose entry point depends on the prompt:

* Levels ``0 .. levels-1``, level 0 served first. Level ``i`` has quantum
  ``base_quantum * quantum_ratio**i``; the last level has no quantum.
* Skip-join: a new request joins the highest-priority level whose quantum covers its first
  iteration (the prefill of its prompt), skipping the levels above, where it would only be demoted.
* A request is demoted one level once its service at the current level reaches the level's
  quantum, and its service count starts again from zero at the new level.
* Within a level, the requests of the last batch come first, then requests that have run before,
  then new arrivals, each group in arrival order: after every iteration FastServe puts the jobs of
  the batch back at the head of their (possibly new) queue and it appends arrivals at the tail, so
  a running job is not displaced by a job of its own level.
* Optional starvation prevention (``starve_s > 0``): a request that has not been served for
  ``starve_s`` seconds is promoted to level 0 with a fresh quantum.

Parameters follow FastServe's implementation (``MLFQ`` in ``fastserve/scheduler.py``,
github.com/LLMServe/FastServe): base quantum 10 ms, quantum ratio 2, levels added on demand,
starvation check promoting requests unserved for 3 s. FastServe counts the seconds of the
iterations a request took part in and demotes once that exceeds the quantum; here service is
counted in iterations (one per output token, the prefill counting as its own duration over that of
a lone decode iteration on ``hardware``'s cost model) and a request is demoted when it reaches the
quantum. On the default hardware a lone decode iteration takes 9.3 ms, so
``base_quantum = 1`` iteration is FastServe's 10 ms, and a 2,340-token prompt (ShareGPT's mean)
joins level 5 in both. Counting iterations keeps the quanta independent of the batch size and
lets the engine fast-forward between quantum expiries (``wakeup``).

Restart preemption. A request's service counts the output tokens a ``restart`` preemption threw
away (``Request.discarded_tokens``): the restart costs it its tokens, not its place in the queue,
as a preempted request keeps its place in vLLM's order. Counting only the tokens it holds would
send every restarted request back to level 0, ahead of the requests that evicted it, which it
then evicts in turn: with little KV the run never ends.

The starvation clock is read at decision epochs: a request counts as served at an epoch when it
was in the last batch, and is promoted at the first epoch after ``starve_s`` seconds without
service (FastServe checks every 1,000 iterations). This is the one piece of per-run state: the
policy keeps it for the requests it is shown and starts afresh when time goes backwards (a new run).
"""

from __future__ import annotations

import bisect
import dataclasses
import math
from typing import Sequence

from llmsched_env.sim.cost import CostModel, available_hardware, get_hardware
from llmsched_env.sim.request import Request, RequestState
from llmsched_env.sim.validation import ConfigError, check_choice, check_number, fail

from .base import Baseline, started

RUNNING = RequestState.RUNNING


@dataclasses.dataclass(frozen=True)
class MLFQ(Baseline):
    """FastServe's skip-join multi-level feedback queue (preemptive, length-agnostic)."""

    levels: int = 16  # FastServe adds levels on demand; with 16 the last is reached after 32,767 iterations
    base_quantum: float = 1.0  # iterations at level 0 (FastServe: 10 ms ~ one lone decode iteration)
    quantum_ratio: float = 2.0  # quantum growth from one level to the next (FastServe: 2)
    skip_join: bool = True  # False: every request joins level 0 (plain MLFQ)
    starve_s: float = 0.0  # promote requests unserved this long to level 0 (0: off; FastServe: 3 s)
    hardware: str = "llama2-7b/a100"  # cost model that prices a prompt's first iteration

    # derived in __post_init__
    _cost: CostModel = dataclasses.field(init=False, repr=False, compare=False)
    _quanta: tuple[float, ...] = dataclasses.field(init=False, repr=False, compare=False)
    _cum: tuple[int, ...] = dataclasses.field(init=False, repr=False, compare=False)
    _unit_s: float = dataclasses.field(init=False, repr=False, compare=False)
    # caches and per-run state (mutable containers inside the frozen object)
    _entry: dict = dataclasses.field(default_factory=dict, init=False, repr=False, compare=False)
    _last_served: dict = dataclasses.field(default_factory=dict, init=False, repr=False, compare=False)
    _promoted: dict = dataclasses.field(default_factory=dict, init=False, repr=False, compare=False)
    _clock: list = dataclasses.field(default_factory=lambda: [0.0], init=False, repr=False, compare=False)

    key = "mlfq"
    dynamic = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "levels", check_number("mlfq.levels", self.levels, low=1, high=64, integer=True))
        check_number("mlfq.base_quantum", self.base_quantum, low=0, low_open=True)
        check_number("mlfq.quantum_ratio", self.quantum_ratio, low=1, high=1000)
        if not isinstance(self.skip_join, bool):
            raise fail("mlfq.skip_join", self.skip_join, "true or false")
        check_number("mlfq.starve_s", self.starve_s, low=0)
        check_choice("mlfq.hardware", self.hardware, available_hardware())
        quanta = tuple(self.base_quantum * self.quantum_ratio**i for i in range(self.levels - 1))
        if not all(math.isfinite(q) for q in quanta):
            raise ConfigError(f"mlfq.levels={self.levels} with quantum_ratio={self.quantum_ratio}: quanta overflow")
        cum = [0]  # cum[i]: iterations a request entering level 0 afresh spends above level i
        for q in quanta:
            cum.append(cum[-1] + math.ceil(q))
        cost = get_hardware(self.hardware).cost
        object.__setattr__(self, "_cost", cost)
        object.__setattr__(self, "_quanta", quanta)
        object.__setattr__(self, "_cum", tuple(cum))
        object.__setattr__(self, "_unit_s", cost.iteration_time(0, 0, 0, 1, 1))  # a lone decode iteration

    # -- the queue as a function of a request's service ------------------------------------------
    def first_iteration(self, prompt_len: int) -> float:
        """Cost of the prefill of ``prompt_len`` tokens alone, in lone-decode iterations."""
        return self._cost.iteration_time(prompt_len, prompt_len * prompt_len, 0, 0, 0) / self._unit_s

    def entry(self, prompt_len: int) -> tuple[int, int]:
        """(level a new request joins, output tokens it produces there before its demotion)."""
        cached = self._entry.get(prompt_len)
        if cached is None:
            cost = self.first_iteration(prompt_len)
            cached = self._entry_for(cost if self.skip_join else 0.0, cost)
            self._entry[prompt_len] = cached
        return cached

    def _entry_for(self, join_cost: float, first_cost: float) -> tuple[int, int]:
        """Join the first level whose quantum covers ``join_cost``; the first token costs
        ``first_cost`` iterations of service there, each later token one."""
        last = self.levels - 1
        level = next((i for i, q in enumerate(self._quanta) if q >= join_cost), last)
        if level == last:
            return last, 0
        return level, 1 + max(0, math.ceil(self._quanta[level] - first_cost))

    def _position(self, r: Request) -> tuple[int, int, int]:
        """(entry level, tokens produced at it, tokens produced since entry) of ``r``."""
        service = _service(r)
        promoted = self._promoted.get(r.id) if self._promoted else None
        if promoted is not None:  # back at level 0 with a fresh quantum, every token one iteration
            level, tokens_there = self._entry_for(0.0, 1.0)
            return level, tokens_there, max(service - promoted, 0)
        level, tokens_there = self.entry(r.prompt_len)
        return level, tokens_there, service

    def level(self, r: Request) -> int:
        """The level ``r`` is in now."""
        entry, tokens_there, tokens = self._position(r)
        if entry == self.levels - 1 or tokens < tokens_there:
            return entry
        # past the entry level: cum[] counts the tokens spent at the levels below it
        x = tokens - tokens_there + self._cum[entry + 1]
        return min(bisect.bisect_right(self._cum, x) - 1, self.levels - 1)

    def _tokens_to_demotion(self, r: Request) -> int | None:
        entry, tokens_there, tokens = self._position(r)
        level = self.level(r)
        if level == self.levels - 1:
            return None
        boundary = tokens_there if level == entry else tokens_there + self._cum[level + 1] - self._cum[entry + 1]
        return boundary - tokens

    # -- the policy interface --------------------------------------------------------------------
    def priorities(self, requests: Sequence[Request], now: float) -> list[float]:
        if self.starve_s > 0:
            self._watch_starvation(requests, now)
        # three scores per level: the last batch, then requests that have run, then new arrivals
        return [3.0 * self.level(r) + (0.0 if r.state == RUNNING else 1.0 if started(r) else 2.0) for r in requests]

    def wakeup(self, requests: Sequence[Request], now: float) -> int | None:
        """Iterations until the first running request uses up its quantum."""
        wake: int | None = None
        for r in requests:
            if r.state == RUNNING and not r.in_prefill:
                left = self._tokens_to_demotion(r)
                if left is not None and left > 0 and (wake is None or left < wake):
                    wake = left
        return wake

    def _watch_starvation(self, requests: Sequence[Request], now: float) -> None:
        """Record who was served and promote requests unserved for ``starve_s`` seconds."""
        if now < self._clock[0]:  # a new run: request ids start again
            self._last_served.clear()
            self._promoted.clear()
        self._clock[0] = now
        last_served: dict[int, float] = {}
        promoted: dict[int, int] = {}
        for r in requests:
            if r.state == RUNNING:
                last = now
            else:
                last = self._last_served.get(r.id, r.arrival)
                if now - last >= self.starve_s:
                    promoted[r.id] = _service(r)
                    last = now
            last_served[r.id] = last
            if r.id not in promoted and r.id in self._promoted:
                promoted[r.id] = self._promoted[r.id]
        self._last_served.clear()
        self._last_served.update(last_served)
        self._promoted.clear()
        self._promoted.update(promoted)


def _service(r: Request) -> int:
    """Output tokens ``r`` has been served, counting those a restart preemption threw away: a
    restart loses the tokens, not the service, so it never lifts a request back to the top levels
    (vLLM keeps a preempted request's place in its order the same way). Counting only ``generated``
    let running requests evict each other endlessly under restart preemption, each victim coming
    back at level 0 ahead of the others."""
    return r.generated + r.discarded_tokens
