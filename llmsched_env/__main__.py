"""``python -m llmsched_env``: run one simulation and print its summary.

With no arguments it simulates the default engine (Llama-2-7B on one A100, Sarathi-style chunked
prefill, 256 slots, 2,048-token budget) serving 1,000 ShareGPT-like requests at load 0.9 under
FCFS (``--policy`` picks a baseline). Flags override the config; ``--config`` reads a YAML file
(see ``configs/``) and ``--scenario`` a named scenario. Times are in seconds.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from importlib.metadata import entry_points

from .cli_args import ArgumentParser
from .sim import SimConfig, available_hardware, available_length_presets, load_config, simulate
from .sim.engine_config import BATCHING_RULES
from .sim.validation import ConfigError

#: the entry-point group of the packages that turn a ``--policy`` spec into a policy
POLICY_PARSERS = "llmsched.policies"


def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(prog="python -m llmsched_env", description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", help="YAML run config (engine/workload/predictor sections)")
    parser.add_argument("--scenario", help="a named scenario (llmsched_env.scenarios: " + ", ".join(_scenario_names()) + ")")
    parser.add_argument("--load", type=float, help="arrival rate as a fraction of the engine's capacity")
    parser.add_argument("--rate", type=float, help="arrival rate in requests/s (overrides --load)")
    parser.add_argument("--workload", help="length preset: " + ", ".join(available_length_presets()))
    parser.add_argument("--num-requests", type=int, help="requests in the run")
    parser.add_argument("--hardware", help="model/GPU preset: " + ", ".join(available_hardware()))
    parser.add_argument("--batching", choices=BATCHING_RULES, help="batching rule")
    parser.add_argument("--preemption", choices=("recompute", "swap", "restart"), help="preemption mode")
    parser.add_argument("--seed", type=int, help="master seed")
    parser.add_argument("--policy", default="fcfs", help="a baseline, e.g. trail or 'trail:C=0.5' (default fcfs)")
    parser.add_argument("--json", action="store_true", help="print the whole summary as JSON")
    return parser


def _scenario_names() -> list[str]:
    from . import scenarios

    return scenarios.names()


def config_from_args(args: argparse.Namespace) -> SimConfig:
    import dataclasses

    if args.config and args.scenario:
        raise ConfigError("--config and --scenario: give one of them")
    if args.scenario:
        from . import scenarios

        config = scenarios.sim_config(args.scenario)
    else:
        config = load_config(args.config) if args.config else SimConfig()
    engine, workload = config.engine, config.workload
    if args.hardware is not None:
        engine = dataclasses.replace(engine, hardware=args.hardware)
    if args.batching is not None:
        engine = dataclasses.replace(engine, batching=args.batching)
    if args.preemption is not None:
        engine = dataclasses.replace(engine, preemption_mode=args.preemption)
    if args.workload is not None:
        workload = dataclasses.replace(workload, lengths=args.workload)
    if args.num_requests is not None:
        workload = dataclasses.replace(workload, num_requests=args.num_requests)
    changes: dict = {"engine": engine, "workload": workload}
    if args.load is not None:
        changes["load"] = args.load
        changes["rate"] = None
    if args.rate is not None:
        changes["rate"] = args.rate
    if args.seed is not None:
        changes["seed"] = args.seed
    return config.replace(**changes)


def format_summary(result) -> str:
    s = result.summary
    c = result.config

    def sec(key: str) -> str:
        """Seconds, like every other figure of the project (TPOT with more digits)."""
        value = s[key]
        if isinstance(value, float) and math.isnan(value):
            return "nan"
        return f"{value:,.4f} s" if key.startswith("tpot") else f"{value:,.2f} s"

    rate = "trace timing" if result.rate is None else f"{result.rate:.3f} req/s"
    capacity = "" if result.capacity is None else f" (capacity {result.capacity:.3f} req/s)"
    lines = [
        f"engine    {c.engine.hardware}, {c.engine.batching} batching, {c.engine.max_num_seqs} slots, "
        f"{c.engine.max_num_batched_tokens}-token budget, {c.engine.preemption_mode} preemption",
        f"workload  {c.workload.num_requests:,} {c.workload.lengths} requests, {c.workload.arrival} arrivals at "
        f"{rate}{capacity}, policy {result.policy}, seed {result.seed}",
        "",
        f"requests  {s['finished']:,} finished, {s['unfinished']:,} unfinished, {s['rejected']:,} rejected",
        f"e2e       mean {sec('e2e_mean_s')}, p50 {sec('e2e_p50_s')}, p90 {sec('e2e_p90_s')}, p99 {sec('e2e_p99_s')}",
        f"TTFT      mean {sec('ttft_mean_s')}, p50 {sec('ttft_p50_s')}, p99 {sec('ttft_p99_s')}",
        f"TPOT      mean {sec('tpot_mean_s')}, p50 {sec('tpot_p50_s')}, p99 {sec('tpot_p99_s')}",
        f"through   {s['output_tokens_per_s']:,.1f} output tokens/s, {s['requests_per_s']:.3f} requests/s",
        f"KV        mean utilisation {s['kv_utilization_mean']:.1%}, {s['preemptions']:,} preemptions",
        f"backlog   mean {s['in_system_mean']:.1f} requests, slope {s['backlog_slope_per_s']:+.4f}/s, {s['stability']}",
    ]
    return "\n".join(lines)


def _policy(spec: str):
    """A policy by spec, built by the policy package registered under the entry-point group
    :data:`POLICY_PARSERS` (the project registers ``baselines.parse``): the simulator's command
    line reaches the baselines through the installed package's metadata, never by importing a
    layer above it."""
    parsers = entry_points(group=POLICY_PARSERS)
    if "baselines" not in parsers.names:
        raise ConfigError(f"--policy needs the baselines package (entry point group {POLICY_PARSERS!r}), which is not installed")
    return parsers["baselines"].load()(spec)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        config = config_from_args(args)
        policy = _policy(args.policy)
        start = time.perf_counter()
        result = simulate(config, policy)
        elapsed = time.perf_counter() - start
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(result.summary, indent=2, default=float))
    else:
        print(format_summary(result))
        print(f"\nsimulated {result.summary['duration_s']:,.1f} s of serving in {elapsed:.2f} s of wall time")
    return 0


if __name__ == "__main__":
    sys.exit(main())
