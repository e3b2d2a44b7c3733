"""Fuzz the simulator: random configurations, random and adversarial actions, invariants checked.

Three parts, each on configurations drawn from one seed:

* ``Serve-v2``: random engines (batching rule, slots, token budget, block size, a KV cache from
  tiny to roomy, preemption mode, admission preemption, prefix caching), workloads, loads,
  predictors and agent options (rank or admit mode, preemption control, decision interval, a time
  limit), driven by random or adversarial actions (extreme scores, evicting everyone by restart,
  never admitting, always preempting). After every step: the engine's invariants (KV and swap
  within capacity, holders and counters consistent), every request accounted for exactly once by
  id (in the system or recorded), tokens never going backwards but by a restart and never past
  the true length, a finite reward, the observation inside its space.
* ``AgentNetwork-v1``: the presets with random run lengths, rates and predictors, random and
  extreme scores; the same checks on every engine.
* ``simulate()`` with every baseline on random configurations: every request recorded once
  (finished, unfinished or rejected).

Every run is bounded in wall time: one that goes over is reported as a hang, one the engine stops
as a livelock is counted (a verdict, not a violation). A share of the episodes and runs is
repeated to check determinism (same seed, same actions: the same run). Prints the steps,
configurations, runs, violations (each with its configuration, to reproduce) and the machine.

    python benchmarks/fuzz.py                    # about 100k env steps
    python benchmarks/fuzz.py --steps 1000000    # the long form
    python benchmarks/fuzz.py --steps 2000 --seed 7
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

if not __package__:  # run as a script: make the repository root importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import gymnasium as gym  # noqa: E402

import baselines  # noqa: E402
import llmsched_env  # noqa: E402,F401  (registers the envs)
from benchmarks.machine import describe  # noqa: E402
from llmsched_env.sim import COMPILED, EngineConfig, SimConfig, WorkloadConfig, simulate  # noqa: E402
from llmsched_env.sim.request import RequestState  # noqa: E402
from llmsched_env.sim.validation import ConfigError  # noqa: E402

LIVE_STATES = (RequestState.WAITING, RequestState.RUNNING, RequestState.PAUSED, RequestState.SWAPPED)
ACTION_KINDS = ("random", "extreme", "evict-all", "lowest-first", "constant")


@dataclasses.dataclass(frozen=True)
class Violation:
    part: str
    config: dict[str, Any]
    what: str


@dataclasses.dataclass
class Tally:
    """What a fuzz run did and found."""

    env_steps: int = 0
    episodes: int = 0
    network_steps: int = 0
    network_episodes: int = 0
    sim_runs: int = 0
    livelocks: int = 0
    truncated: int = 0
    cut: int = 0  # episodes cut at the step limit (the env's TimeLimit safety net)
    rejected_configs: int = 0  # drawn configurations the validation refused (a clear error)
    refusals: dict[str, int] = dataclasses.field(default_factory=dict)  # their messages' openings
    determinism_checks: int = 0
    violations: list[Violation] = dataclasses.field(default_factory=list)


# -- configurations ------------------------------------------------------------------------------


def budget(rng: np.random.Generator, batching: str) -> int:
    """A token budget; the rules that cannot chunk a prefill need one above most prompts."""
    return int(rng.choice([512, 2048, 8192] if batching == "sarathi" else [8192, 32768]))


def serve_config(rng: np.random.Generator) -> dict[str, Any]:
    """Keywords of a random Serve-v2 episode."""
    batching = str(rng.choice(["sarathi", "orca", "vllm", "static"]))
    engine = {
        "batching": batching,
        "max_num_seqs": int(rng.choice([2, 8, 32, 256])),
        "max_num_batched_tokens": budget(rng, batching),
        "num_gpu_blocks": int(rng.choice([120, 300, 1000, 3000])),
        "preemption_mode": str(rng.choice(["recompute", "swap", "restart"])),
        "admission_preemption": bool(rng.random() < 0.3),
    }
    kwargs: dict[str, Any] = {
        "num_requests": int(rng.integers(5, 60)),
        "load": float(rng.choice([0.5, 0.9, 1.3])),
        "workload": str(rng.choice(["sharegpt", "arxiv-summarization", "azure-code", "azure-conv"])),
        "predictor": str(rng.choice(["oracle", "lognormal", "buckets", "refining"])),
        "num_slots": int(rng.choice([4, 16, 64])),
        "action_mode": str(rng.choice(["rank", "admit"])),
        "preemption_control": bool(rng.random() < 0.4),
        "decision_interval": int(rng.choice([0, 0, 1, 7])),
        "engine_kwargs": {"block_size": int(rng.choice([8, 16])), "watermark": float(rng.choice([0.0, 0.01, 0.1]))},
        **engine,
    }
    if rng.random() < 0.2:
        kwargs["max_time_s"] = float(rng.choice([0.05, 5.0, 60.0]))
    if rng.random() < 0.15:
        kwargs["engine_kwargs"]["enable_prefix_caching"] = True
        kwargs["workload_kwargs"] = {"prefix": "system-prompt"}
    return kwargs


def sim_config(rng: np.random.Generator) -> SimConfig:
    """A random configuration for ``simulate()``."""
    batching = str(rng.choice(["sarathi", "orca", "vllm", "static"]))
    engine = EngineConfig(
        batching=batching,
        max_num_seqs=int(rng.choice([2, 16, 256])),
        max_num_batched_tokens=budget(rng, batching),
        num_gpu_blocks=int(rng.choice([150, 400, 2000, 8000])),
        preemption_mode=str(rng.choice(["recompute", "swap", "restart"])),
        admission_preemption=bool(rng.random() < 0.3),
        block_size=int(rng.choice([8, 16])),
    )
    workload = WorkloadConfig(lengths=str(rng.choice(["sharegpt", "azure-code", "azure-conv"])), num_requests=int(rng.integers(10, 300)))
    return SimConfig(engine=engine, workload=workload, load=float(rng.choice([0.5, 0.9, 1.2])), seed=int(rng.integers(0, 1 << 20)))


# -- actions -------------------------------------------------------------------------------------


def make_actor(env: Any, kind: str, rng: np.random.Generator) -> Callable[[], Any]:
    """A function giving the next action of ``kind`` for ``env`` (unwrapped)."""
    space = env.action_space
    if isinstance(space, gym.spaces.Discrete):
        n, K = int(space.n), env.num_slots

        def admit() -> Any:
            mask = env.action_masks()
            if kind == "random":
                return int(rng.integers(0, n))  # invalid ones are replaced and flagged
            if kind in ("evict-all", "extreme") and n > K + 1:
                valid = np.flatnonzero(mask[K + 1 :])
                if valid.size:
                    return int(K + 1 + valid[rng.integers(0, valid.size)])  # always preempt someone
            if kind == "lowest-first":
                return int(np.flatnonzero(mask)[-1])
            return K  # advance (never admitting unless forced)

        return admit
    shape = space.shape

    def rank() -> Any:
        if kind == "random":
            return rng.uniform(-1.0, 1.0, shape).astype(np.float32)
        if kind == "extreme":
            return rng.choice([-1.0, 1.0], shape).astype(np.float32)
        if kind == "evict-all" and len(shape) == 2:
            action = np.full(shape, -1.0, dtype=np.float32)
            action[:, 1] = 1.0  # evict every holder
            action[:, 4] = 1.0  # by restart
            return action
        if kind == "lowest-first":
            return -np.linspace(-1.0, 1.0, int(np.prod(shape)), dtype=np.float32).reshape(shape)
        return np.zeros(shape, dtype=np.float32)

    return rank


# -- checks --------------------------------------------------------------------------------------


class ServeChecks:
    """Invariants after every step of one Serve episode."""

    def __init__(self) -> None:
        self.tokens: dict[int, tuple[int, int]] = {}  # id -> (generated, restarts) last seen

    def __call__(self, env: Any, observation: Any, reward: float) -> str | None:
        engine = env.engine
        try:
            engine.check_invariants()
        except AssertionError as err:
            return f"engine invariant: {err}"
        if not math.isfinite(reward):
            return f"reward {reward!r} is not finite"
        if not env.observation_space.contains(observation):
            return "observation outside its space"
        recorded = env.records.columns["id"]
        live = [] if env._finished else [r.id for r in engine.live]  # at the end, the unfinished are recorded too
        seen = recorded + live
        if len(set(seen)) != len(seen):
            return "a request is both recorded and in the system, or recorded twice"
        if len(seen) != engine.arrived:
            return f"{engine.arrived} requests arrived, {len(seen)} accounted for (recorded or in the system)"
        for r in engine.live:
            if r.state not in LIVE_STATES:
                return f"request {r.id} in the system in state {r.state}"
            if not 0 <= r.generated < r.output_len:
                return f"request {r.id} generated {r.generated} of {r.output_len} tokens while in the system"
            before = self.tokens.get(r.id)
            if before is not None and before[1] == r.restart_preemptions and r.generated < before[0]:
                return f"request {r.id}'s tokens went back from {before[0]} to {r.generated} without a restart"
            self.tokens[r.id] = (r.generated, r.restart_preemptions)
        return None


def run_serve_episode(
    kwargs: dict[str, Any], kind: str, seed: int, wall_s: float, max_steps: int
) -> tuple[int, dict[str, Any], str | None, list[Any]]:
    """One episode, cut after ``max_steps`` steps as the env's ``TimeLimit`` would (its
    ``max_episode_steps``, the safety net against agents that never let a request finish);
    returns (steps, last info, violation or None, the actions taken)."""
    env = gym.make("llmsched/Serve-v2", disable_env_checker=True, **kwargs).unwrapped
    rng = np.random.default_rng(seed)
    actor = make_actor(env, kind, rng)
    checks = ServeChecks()
    observation, info = env.reset(seed=seed)
    if not env.observation_space.contains(observation):
        return 0, info, "reset observation outside its space", []
    actions: list[Any] = []
    start = time.perf_counter()
    steps = 0
    while True:
        action = actor()
        actions.append(action)
        observation, reward, terminated, truncated, info = env.step(action)
        steps += 1
        problem = checks(env, observation, reward)
        if problem is not None:
            return steps, info, f"step {steps}: {problem}", actions
        if terminated or truncated:
            summary = info.get("summary", {})
            if summary and summary["arrived"] != summary["finished"] + summary["unfinished"] + summary["rejected"]:
                return steps, info, f"summary does not add up: {summary['arrived']} arrived", actions
            return steps, info, None, actions
        if steps >= max_steps:
            info["cut"] = True
            return steps, info, None, actions
        if time.perf_counter() - start > wall_s:
            return steps, info, f"hang: episode still running after {wall_s:g} s of wall time ({steps} steps)", actions


def replay_serve(kwargs: dict[str, Any], seed: int, actions: list[Any]) -> dict[str, Any]:
    env = gym.make("llmsched/Serve-v2", disable_env_checker=True, **kwargs).unwrapped
    env.reset(seed=seed)
    info: dict[str, Any] = {}
    for action in actions:
        _, _, terminated, truncated, info = env.step(action)
        if terminated or truncated:
            break
    return info


def run_network_episode(kwargs: dict[str, Any], kind: str, seed: int, wall_s: float, max_steps: int) -> tuple[int, str | None]:
    env = gym.make("llmsched/AgentNetwork-v1", disable_env_checker=True, **kwargs).unwrapped
    rng = np.random.default_rng(seed)
    actor = make_actor(env, "extreme" if kind == "evict-all" else kind, rng)
    observation, _ = env.reset(seed=seed)
    start, steps = time.perf_counter(), 0
    while True:
        observation, reward, terminated, truncated, _ = env.step(actor())
        steps += 1
        if not math.isfinite(reward):
            return steps, f"step {steps}: reward {reward!r} is not finite"
        if not env.observation_space.contains(observation):
            return steps, f"step {steps}: observation outside its space"
        for engine in env.network.engines:
            try:
                engine.check_invariants()
            except AssertionError as err:
                return steps, f"step {steps}: engine invariant: {err}"
        if terminated or truncated or steps >= max_steps:
            return steps, None
        if time.perf_counter() - start > wall_s:
            return steps, f"hang: episode still running after {wall_s:g} s ({steps} steps)"


def check_simulate(config: SimConfig, policy: str, wall_s: float) -> tuple[str | None, dict[str, Any]]:
    """One ``simulate()`` run in a bounded loop; returns (violation or None, summary)."""
    from llmsched_env.sim.api import build_engine
    from llmsched_env.sim.request import RecordBuffer

    records = RecordBuffer()
    engine, _, _ = build_engine(config, baselines.parse(policy), on_record=records.append)
    start, n = time.perf_counter(), 0
    while engine.advance():
        n += 1
        if n % 512 == 0 and time.perf_counter() - start > wall_s:
            return f"hang: simulate() still running after {wall_s:g} s ({engine.stats.preemptions} preemptions)", {}
    engine.finish_run()
    arrays = records.to_arrays()
    ids = arrays["id"]
    if len(ids) != len(set(ids.tolist())) or len(ids) != engine.arrived:
        return f"{engine.arrived} requests arrived, {len(ids)} records ({len(set(ids.tolist()))} distinct ids)", {}
    if engine.kv_blocks_used_max > engine.num_blocks:
        return f"KV peaked at {engine.kv_blocks_used_max} of {engine.num_blocks} blocks", {}
    result = simulate(config, baselines.parse(policy))
    s = result.summary
    if s["finished"] + s["unfinished"] + s["rejected"] != engine.arrived:
        return "simulate() summary does not add up", s
    if s["finished"] != int(np.count_nonzero(arrays["state"] == RequestState.FINISHED)):
        return "simulate() and the step-by-step engine disagree (not deterministic)", s
    return None, s


# -- the run ------------------------------------------------------------------------------------


def refuse(tally: Tally, err: ConfigError) -> None:
    tally.rejected_configs += 1
    key = str(err).split(":")[0][:70]
    tally.refusals[key] = tally.refusals.get(key, 0) + 1



def fuzz(
    steps: int,
    seed: int,
    episode_wall_s: float = 120.0,
    sim_every: int = 3,
    network_every: int = 3,
    repeat_every: int = 10,
    max_episode_steps: int = 20_000,
    out: Any = print,
) -> Tally:
    """Run until ``steps`` Serve env steps; every ``sim_every``-th episode also a simulate() run per
    baseline, every ``network_every``-th an AgentNetwork episode, every ``repeat_every``-th a replay."""
    rng = np.random.default_rng(seed)
    tally = Tally()
    policies = baselines.available()
    while tally.env_steps < steps:
        episode = tally.episodes
        kwargs = serve_config(rng)
        kind = ACTION_KINDS[episode % len(ACTION_KINDS)]
        ep_seed = int(rng.integers(0, 1 << 30))
        try:
            n, info, problem, actions = run_serve_episode(kwargs, kind, ep_seed, episode_wall_s, max_episode_steps)
        except ConfigError as err:
            refuse(tally, err)  # a clear error on a drawn combination (e.g. a cache smaller than the prompts)
            continue
        except Exception as err:  # noqa: BLE001 - anything else is a crash to report
            tally.violations.append(Violation("serve", {**kwargs, "actions": kind, "seed": ep_seed}, f"crash: {err!r}"))
            continue
        tally.episodes += 1
        tally.env_steps += n
        summary = info.get("summary", {})
        tally.livelocks += int(summary.get("livelock", 0))
        tally.truncated += int(summary.get("unfinished", 0) > 0)
        tally.cut += int(info.get("cut", False))
        if problem is not None:
            tally.violations.append(Violation("serve", {**kwargs, "actions": kind, "seed": ep_seed}, problem))
        elif repeat_every and episode % repeat_every == 0:
            tally.determinism_checks += 1
            again = replay_serve(kwargs, ep_seed, actions)
            if json.dumps(again.get("summary", {}), sort_keys=True, default=str) != json.dumps(summary, sort_keys=True, default=str):
                tally.violations.append(Violation("serve", {**kwargs, "actions": kind, "seed": ep_seed}, "replay differs"))
        if network_every and episode % network_every == 0:
            nkw = {
                "preset": str(rng.choice(["rybko-stolyar", "coding-agents"])),
                "num_jobs": None if rng.random() < 0.2 else int(rng.integers(1, 30)),
                "max_time_s": float(rng.choice([0.01, 30.0, 300.0])),
                "rate_scale": float(rng.choice([0.5, 1.0, 2.0])),
                "num_slots": int(rng.choice([4, 16])),
            }
            try:
                m, problem = run_network_episode(nkw, kind, ep_seed, episode_wall_s, max_episode_steps)
                tally.network_steps += m
                tally.network_episodes += 1
                if problem is not None:
                    tally.violations.append(Violation("network", {**nkw, "actions": kind, "seed": ep_seed}, problem))
            except ConfigError as err:
                refuse(tally, err)
            except Exception as err:  # noqa: BLE001
                tally.violations.append(Violation("network", {**nkw, "actions": kind, "seed": ep_seed}, f"crash: {err!r}"))
        if sim_every and episode % sim_every == 0:
            config = sim_config(rng)
            for policy in policies:
                try:
                    problem, s = check_simulate(config, policy, episode_wall_s)
                except ConfigError as err:
                    refuse(tally, err)
                    break
                except Exception as err:  # noqa: BLE001
                    problem, s = f"crash: {err!r}", {}
                tally.sim_runs += 1
                tally.livelocks += int(s.get("livelock", 0))
                if problem is not None:
                    tally.violations.append(Violation("simulate", {"config": config.to_dict(), "policy": policy}, problem))
        if episode and episode % 200 == 0:
            out(f"  ... {tally.env_steps:,} env steps, {tally.episodes:,} episodes, {len(tally.violations)} violations")
    return tally


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=100_000, help="Serve env steps to run (default 100,000)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the configurations and actions")
    parser.add_argument("--episode-wall-s", type=float, default=120.0, help="wall seconds after which a run counts as a hang")
    parser.add_argument(
        "--max-episode-steps", type=int, default=20_000, help="cut an episode here, as the env's TimeLimit does at 100,000 (default 20,000)"
    )
    parser.add_argument("--sim-every", type=int, default=3, help="a simulate() run per baseline every N episodes")
    parser.add_argument("--network-every", type=int, default=3, help="an AgentNetwork episode every N episodes")
    parser.add_argument("--repeat-every", type=int, default=10, help="replay every N-th episode to check determinism")
    args = parser.parse_args(argv)
    if args.steps < 1:
        parser.error(f"--steps={args.steps} is invalid: expected an integer >= 1")
    print(f"machine: {describe()}; simulator {'compiled' if COMPILED else 'pure Python'}")
    start = time.perf_counter()
    tally = fuzz(
        args.steps, args.seed, args.episode_wall_s, args.sim_every, args.network_every, args.repeat_every, args.max_episode_steps
    )
    seconds = time.perf_counter() - start
    print(
        f"fuzz (seed {args.seed}): {tally.env_steps:,} Serve-v2 steps over {tally.episodes:,} configurations, "
        f"{tally.network_steps:,} AgentNetwork-v1 steps over {tally.network_episodes:,}, {tally.sim_runs:,} simulate() runs "
        f"over every baseline, {tally.determinism_checks:,} replays; {tally.livelocks} runs stopped as livelocks, "
        f"{tally.truncated} episodes with requests left unfinished ({tally.cut} cut at {args.max_episode_steps:,} steps), {tally.rejected_configs} drawn configurations refused "
        f"with a ConfigError; {seconds:.0f} s"
    )
    if tally.refusals:
        print("refused: " + "; ".join(f"{key} ({n})" for key, n in sorted(tally.refusals.items(), key=lambda kv: -kv[1])[:6]))
    print(f"violations: {len(tally.violations)}")
    for v in tally.violations[:50]:
        print(f"  [{v.part}] {v.what}\n      {v.config}")
    return 1 if tally.violations else 0


if __name__ == "__main__":
    sys.exit(main())
