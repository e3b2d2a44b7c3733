"""``llmsched-eval`` / ``python -m eval``: compare scheduling policies on the same workloads.

With no arguments it runs the built-in default (``configs/eval/default.yaml`` is the same config
written out): every baseline (and every agent shipped in ``models/``) on the scheduling-sensitive
scenarios of ``configs/scenarios/``, each at its own load, 5 seeds, and prints the leaderboard
(latency relative to FCFS per policy and scenario, with intervals and a geometric mean).
``--config`` reads a YAML eval config; flags override it.

Outputs go to ``--out`` (default ``eval_out/<name>``: ``eval_out/default`` for the default, and
for a grid given by flags alone a name from what differs, e.g. ``eval_out/chat-bursty_reasoning``
for ``--scenarios chat-bursty reasoning``; a rerun of the same config replaces the previous
outputs there, a different evaluation needs ``--overwrite`` or another folder; ``--resume`` instead
keeps the runs an interrupted evaluation of the same config finished there and runs only the
rest): ``results.json`` and ``results.csv`` (one record per
run, written as runs complete), ``runs/<n>.npz`` (per-request records), ``aggregate.csv`` (means,
95 % intervals, ratios), ``summary.md`` (the console tables), ``config.yaml`` (the resolved
config, reusable with ``--config``), ``capacity.json`` (with ``--capacity``), PNG plots in
``plots/`` and TensorBoard logs in ``tb/`` (``tensorboard --logdir <out>/tb``).

``--backend ray`` runs every run as a Ray task (the ``ray`` extra; a local Ray, or the cluster
of ``--ray-address``), with the same outputs (``eval/ray_runner.py``).

Exit codes: 0 done; 2 a mistake in the input (one-line message, no traceback); 130 interrupted
(Ctrl-C: the runs that finished are written and reported).
"""

from __future__ import annotations

import argparse
import dataclasses
import re
import shlex
import shutil
import sys
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import yaml

from llmsched_env.cli_args import ArgumentParser
from llmsched_env.sim.config import yaml_load
from llmsched_env.sim import available_hardware, available_length_presets
from llmsched_env.sim.cost import describe_hardware
from llmsched_env.sim.validation import ConfigError

from .aggregate import aggregate
from .capacity import CapacitySearch, search_capacity, short_run_warnings
from .config import BACKENDS, WORKLOAD_GRID_LOADS, EvalConfig, load_eval_config
from .policies import ALL_BASELINES, BUNDLED_AGENTS, MODELS_DIR, expand, find_reference
from .report import (
    aggregate_csv,
    capacity_table,
    grid_tables,
    leaderboard_tables,
    markdown,
    print_console,
    BOARD_LEGEND,
    scenario_slugs,
)
from .runner import RESULTS_JSON, ResultWriter, RunResult, build_grid, finished_cells, run_all, write_json

PROG = "llmsched-eval"
# Everything an evaluation writes; a rerun into the same folder removes these first.
OUTPUTS = ("results.json", "results.csv", "aggregate.csv", "summary.md", "config.yaml", "capacity.json")
OUTPUT_DIRS = ("runs", "plots", "tb")


def build_parser() -> argparse.ArgumentParser:
    p = ArgumentParser(
        prog=PROG,
        description=__doc__.split("\n\n")[1],
        epilog=f"Policies: baseline names with parameters ('trail:C=0.5'), trained models by path (.zip), "
        f"{ALL_BASELINES}, {BUNDLED_AGENTS}. See --list.",
    )
    p.add_argument("--config", metavar="YAML", help="eval config file (configs/eval/*.yaml)")
    p.add_argument("--policies", nargs="+", metavar="POLICY", help="policies to compare")
    p.add_argument("--reference", metavar="POLICY", help="policy the ratios are taken against (default fcfs)")
    p.add_argument("--scenarios", nargs="+", metavar="NAME", help="named scenarios (llmsched_env.scenarios), 'all' (the single-engine ones), 'leaderboard' (the default) or 'clusters' (cluster scenarios: the policies are then routers, default all-routers vs round-robin)")
    p.add_argument("--workloads", nargs="+", metavar="W", help="length presets or trace files (a grid of workloads instead of scenarios)")
    grid = p.add_mutually_exclusive_group()
    grid.add_argument("--loads", nargs="+", type=float, metavar="X", help="loads (fractions of capacity)")
    grid.add_argument("--rates", nargs="+", type=float, metavar="R", help="arrival rates (requests/s)")
    seeds = p.add_mutually_exclusive_group()
    seeds.add_argument("--num-seeds", type=int, metavar="N", help="seeds 0..N-1")
    seeds.add_argument("--seeds", nargs="+", type=int, metavar="S", help="these seeds (--seeds 42: seed 42 alone)")
    p.add_argument(
        "--hardware", nargs="*", metavar="H", help="model/GPU presets; with no value: list them (KV capacity, source) and exit"
    )
    p.add_argument("--systems", nargs="+", metavar="S", help="engine presets: vllm, orca, sarathi, fastertransformer")
    p.add_argument("--num-requests", type=int, metavar="N", help="requests per run")
    p.add_argument("--predictor", metavar="KIND", help="length predictor: oracle, lognormal, buckets, refining")
    p.add_argument("--slo-ttft", type=float, metavar="S", help="TTFT target (s) for SLO attainment")
    p.add_argument("--slo-tpot", type=float, metavar="S", help="TPOT target (s) for SLO attainment")
    p.add_argument(
        "--capacity",
        nargs="?",
        const="stable",
        choices=("stable", "slo"),
        help="also search each policy's capacity: highest load that is stable (the default, also with a bare --capacity) or meets the SLO",
    )
    p.add_argument("--capacity-requests", type=int, metavar="N", help="requests per capacity probe (default 4000)")
    p.add_argument("--slo-attainment", type=float, metavar="F", help="attainment the slo capacity needs (default 0.9)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="any config key, e.g. sim.engine.batching=vllm")
    p.add_argument("--jobs", type=int, metavar="N", help="worker processes (default: all cores; ray: the local Ray's CPUs, "
                   "or with --ray-address the most runs in flight)")
    p.add_argument("--backend", choices=BACKENDS, help="local: worker processes (default); ray: every run a Ray task (the ray extra)")
    p.add_argument("--ray-address", metavar="ADDR", help="ray: the cluster to run on (auto: the one `ray start` runs here; "
                   "default: start a local Ray)")
    p.add_argument("--out", metavar="DIR", help="output folder (default eval_out/<name>)")
    p.add_argument("--name", help="evaluation name (default: 'default', or what a grid of flags changes, e.g. chat-bursty_reasoning)")
    p.add_argument("--overwrite", action="store_true", help="replace the results of a different evaluation in the output folder")
    p.add_argument(
        "--resume", action="store_true", help="keep the runs an interrupted evaluation of the same config finished in the output folder; run the rest"
    )
    p.add_argument("--no-plots", action="store_true", help="skip the PNG plots")
    p.add_argument("--no-tensorboard", action="store_true", help="skip the TensorBoard logs")
    p.add_argument("--no-requests", action="store_true", help="do not keep per-request records (runs/*.npz)")
    p.add_argument("--list", action="store_true", help="list policies, presets and systems, then exit")
    return p


def _put(data: dict[str, Any], dotted: str, value: Any) -> None:
    """Set ``data[a][b][c] = value`` for ``dotted = "a.b.c"``, creating mappings on the way."""
    *path, last = dotted.split(".")
    for key in path:
        child = data.get(key)
        if not isinstance(child, dict):
            child = data[key] = {}
        data = child
    data[last] = value


def config_from_args(args: argparse.Namespace) -> EvalConfig:
    """The YAML config (or the built-in default) with the flags applied, validated."""
    if args.jobs is not None and args.jobs < 1:
        raise ConfigError(f"--jobs={args.jobs} is invalid: expected an integer >= 1 (leave --jobs out to use every core)")
    source = f"{args.config} with the command-line flags" if args.config else "command line"
    data: dict[str, Any] = {}
    if args.config:
        data = load_eval_config(args.config).to_dict()  # validates the file on its own first
    flags = {
        "scenarios": args.scenarios,
        "policies": args.policies,
        "reference": args.reference,
        "workloads": args.workloads,
        "hardware": args.hardware,
        "systems": args.systems,
        "jobs": args.jobs,
        "backend": args.backend,
        "ray_address": args.ray_address,
        "out": args.out,
        "name": args.name,
        "sim.workload.num_requests": args.num_requests,
        "num_requests": args.num_requests,
        "sim.predictor.kind": args.predictor,
        "sim.slo_ttft_s": args.slo_ttft,
        "sim.slo_tpot_s": args.slo_tpot,
    }
    if args.capacity is not None:
        if not isinstance(data.get("capacity"), dict):
            data["capacity"] = {}  # enabled, with the config's criterion or the default one
        if args.capacity:
            data["capacity"]["criterion"] = args.capacity
    capacity_flags = {"capacity.num_requests": args.capacity_requests, "capacity.slo_attainment": args.slo_attainment}
    if any(v is not None for v in capacity_flags.values()):
        if args.capacity is None and data.get("capacity") is None:
            raise ConfigError("--capacity-requests and --slo-attainment need --capacity (or capacity: in the config)")
        flags.update(capacity_flags)
    if args.seeds is not None:
        flags["seeds"] = list(args.seeds)
    if args.num_seeds is not None:
        flags["seeds"] = args.num_seeds
    if args.loads is not None:
        data.pop("rates", None)
        flags["loads"] = args.loads
    if args.rates is not None:
        data.pop("loads", None)
        flags["rates"] = args.rates
    if args.scenarios is None and any(v is not None for v in (args.workloads, args.hardware, args.systems)):
        data["scenarios"] = []  # a grid of workloads x hardware x systems
        if args.loads is None and args.rates is None and data.get("loads") is None and data.get("rates") is None:
            data["loads"] = list(WORKLOAD_GRID_LOADS)
    for key, value in flags.items():
        if value is not None:
            _put(data, key, value)
    for item in args.set:
        key, sep, text = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"--set {item!r} is invalid: expected KEY=VALUE, e.g. sim.engine.batching=vllm")
        try:
            _put(data, key.strip(), yaml_load(text))
        except yaml.YAMLError:
            raise ConfigError(f"--set {item!r}: the value is not valid YAML") from None
    for key, value in (("plots", args.no_plots), ("tensorboard", args.no_tensorboard), ("save_requests", args.no_requests)):
        if value:
            data[key] = False
    config = EvalConfig.from_dict(data, where=source)
    if args.name is None and args.out is None and not args.config and config.name == DEFAULT_NAME:
        config = dataclasses.replace(config, name=grid_name(config, EvalConfig.from_dict({})))
    return config


DEFAULT_NAME = "default"  # the built-in evaluation's name, and its folder eval_out/default


def grid_name(config: EvalConfig, default: EvalConfig) -> str:
    """The name of an evaluation given by flags alone: ``default`` for the built-in one, else what
    differs from it (its scenarios or workloads and its policies, e.g. ``chat-bursty_reasoning``
    or ``best_model_fcfs_trail``; ``custom`` when only loads, seeds or the like differ), so a grid
    of one's own gets its own folder and title instead of the main job's."""
    if _grid(config.to_dict()) == _grid(default.to_dict()):
        return DEFAULT_NAME
    parts: list[str] = []
    if config.scenarios != default.scenarios:
        parts += list(config.scenarios) or [w.label for w in config.workload_list()]
    if config.policies != default.policies:
        parts += [Path(p).stem if p.endswith(".zip") else p for p in config.policies]
    name = re.sub(r"[^A-Za-z0-9_.=+-]+", "-", "_".join(parts))[:60].strip("-_")
    return name or "custom"


def list_choices() -> str:
    """What can be evaluated: baselines, bundled agents, presets, systems."""
    from .policies import _baselines

    lines = ["baselines (name[:param=value,...]):"]
    try:
        registry = _baselines()
        lines += [f"  {name:12s} {registry.describe(name)}" for name in registry.available()]
    except ConfigError as err:
        lines.append(f"  ({err})")
    agents = sorted(p.name for p in MODELS_DIR.glob("*.zip"))
    lines.append(f"bundled agents ({BUNDLED_AGENTS}): " + (", ".join(agents) if agents else "none yet"))
    lines.append("workload presets: " + ", ".join(available_length_presets()) + " (or a trace file path)")
    lines.append("hardware: " + ", ".join(available_hardware()))
    try:
        from baselines.systems import SYSTEMS

        lines.append("systems (engine presets):")
        lines += [f"  {name:18s} {SYSTEMS[name][2]}" for name in sorted(SYSTEMS)]
    except ImportError:
        lines.append("systems: (the baselines package is not installed)")
    return "\n".join(lines)


def config_text(config: EvalConfig) -> str:
    """The resolved config as written to ``config.yaml`` (also what tells two evaluations apart)."""
    return yaml.safe_dump(config.to_dict(), sort_keys=False)


OUTPUT_OPTIONS = ("name", "out", "jobs", "backend", "ray_address", "plots", "tensorboard", "save_requests")  # not what is evaluated


def _grid(data: dict) -> dict:
    """What an evaluation evaluates: its config less the output options."""
    return {k: v for k, v in data.items() if k not in OUTPUT_OPTIONS}


def check_resumable(out: Path, config: EvalConfig) -> None:
    """``--resume``: ``out`` must hold an evaluation of the same grid as ``config``."""
    earlier = out / "config.yaml"
    if not earlier.is_file():
        raise ConfigError(
            f"--resume: out={str(out)!r} holds no earlier evaluation (no config.yaml): expected the folder of an "
            "interrupted evaluation, or run without --resume"
        )
    previous = yaml.safe_load(earlier.read_text()) or {}
    if _grid(previous) != _grid(config.to_dict()):
        raise ConfigError(
            f"--resume: out={str(out)!r} holds a different evaluation (its config.yaml differs from this one): "
            f"expected the same config (rerun with --config {earlier}) or another folder without --resume"
        )
    save = previous.get("save_requests", True)
    if save != config.save_requests:
        raise ConfigError(
            f"--resume: out={str(out)!r} was run with save_requests={save!r}, this one has {config.save_requests!r}: "
            "expected the same setting (--no-requests or not)"
        )


def prepare_out_dir(out: Path, config: EvalConfig | None = None, overwrite: bool = False) -> None:
    """Create the output folder, removing a previous evaluation's outputs (and nothing else).

    A folder holding a *different* evaluation (its ``config.yaml`` differs from ``config``'s) is
    kept unless ``overwrite``: a grid of one's own never silently replaces another's results (a
    rerun of the same config does replace them)."""
    if out.exists() and not out.is_dir():
        raise ConfigError(f"out={str(out)!r} is invalid: it is a file, expected a folder")
    if out.is_dir() and any(out.iterdir()):
        if not (out / RESULTS_JSON).exists() and not (out / "config.yaml").exists():
            raise ConfigError(
                f"out={str(out)!r} is invalid: the folder is not empty and holds no earlier evaluation; "
                "expected an empty or new folder"
            )
        earlier = out / "config.yaml"
        if config is not None and not overwrite and earlier.exists():
            previous = yaml.safe_load(earlier.read_text()) or {}
            if _grid(previous) != _grid(config.to_dict()):
                raise ConfigError(
                    f"out={str(out)!r} holds the results of a different evaluation (its config.yaml differs): "
                    "expected a new folder (--out DIR or --name NAME), or --overwrite to replace them"
                )
        for name in OUTPUTS:
            (out / name).unlink(missing_ok=True)
        for name in OUTPUT_DIRS:
            shutil.rmtree(out / name, ignore_errors=True)
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / ".write-test"
        probe.write_text("")
        probe.unlink()
    except OSError as err:
        raise ConfigError(f"out={str(out)!r} is invalid: the folder cannot be written ({err.strerror}); expected a writable folder") from None


def _header(config: EvalConfig, policies: list, reference: str, done: int, total: int, seconds: float, jobs: int) -> list[str]:
    sim, engine = config.sim, config.sim.engine
    xs = ", ".join(f"{x:g}" for x in config.xs) if config.xs else "each scenario's own"
    if config.scenarios:
        requests = f"{config.num_requests:,}" if config.num_requests else "each scenario's"
        return [
            f"{PROG}: {config.name}",
            f"policies: {', '.join(p.label for p in policies)} (reference {reference})",
            f"scenarios: {', '.join(config.scenarios)}; {requests} requests per run; {config.axis}s {xs}; "
            f"seeds {', '.join(map(str, config.seeds))}",
            f"{done} of {total} runs in {seconds:.1f} s on {jobs} process{'es' * (jobs != 1)}",
        ]
    workloads = ", ".join(w.label for w in config.workload_list())
    slo = ", ".join(
        f"{name} ≤ {value:g} s" for name, value in (("TTFT", sim.slo_ttft_s), ("TPOT", sim.slo_tpot_s)) if value is not None
    )
    predictor = sim.predictor.kind + (f"(sigma={sim.predictor.sigma:g})" if sim.predictor.kind == "lognormal" else "")
    limits = f"{engine.max_num_seqs} slots, {engine.max_num_batched_tokens}-token budget, "
    if config.systems:  # each system sets its own batching rule and limits
        systems, limits = "systems " + ", ".join(config.systems), ""
    else:
        systems = f"{engine.batching} batching"
    return [
        f"{PROG}: {config.name}",
        f"policies: {', '.join(p.label for p in policies)} (reference {reference})",
        f"workloads: {workloads}, {sim.workload.num_requests:,} requests per run, {sim.workload.arrival} arrivals; "
        f"{config.axis}s {xs}; seeds {', '.join(map(str, config.seeds))}",
        f"engine: {', '.join(config.hardware_list)}; {systems}; {limits}"
        f"{engine.preemption_mode} preemption; predictor {predictor}"
        + (f"; SLO {slo}" if slo else ""),
        f"{done} of {total} runs in {seconds:.1f} s on {jobs} process{'es' * (jobs != 1)}",
    ]


def evaluate(config: EvalConfig, console: bool = True, overwrite: bool = False, resume: bool = False) -> int:
    """Run an evaluation and write its outputs; returns the exit code (0, or 130 if interrupted).

    ``resume``: keep the runs an interrupted evaluation of the same config finished in the output
    folder and run only the others (the outputs are those of an uninterrupted evaluation; the
    capacity search, if any, runs again)."""
    policies = expand(config.policies)
    reference = find_reference(config.reference, policies)
    if config.backend == "ray":
        from .ray_runner import import_ray

        import_ray()  # a missing extra fails before the output folder is touched
    out = config.out_dir
    runs = build_grid(config, policies)
    finished: list[RunResult] = []
    if resume:
        check_resumable(out, config)
        finished = finished_cells(out, runs, config.save_requests)
    else:
        prepare_out_dir(out, config, overwrite)
    (out / "config.yaml").write_text(
        f"# resolved config of this evaluation; rerun with: {PROG} --config {out / 'config.yaml'}\n" + config_text(config)
    )
    writer = ResultWriter(out, config.save_requests, finished)
    done = {result.record["run"] for result in finished}
    todo = [run for run in runs if run.index not in done]
    if resume:
        print(f"{PROG}: resuming: {len(finished)} of {len(runs)} runs finished earlier, {len(todo)} to run", file=sys.stderr)
    jobs = config.workers  # worker processes (the header reports them)
    parallel = jobs  # what run_all gets: processes, or on Ray the most tasks in flight (0: all)
    start = time.perf_counter()
    started_ray = False
    if config.backend == "ray" and (todo or config.capacity is not None):
        from . import ray_runner

        started_ray = ray_runner.init(config.ray_address, config.jobs or None)
        jobs, parallel = config.jobs or ray_runner.cluster_cpus(), config.jobs
    try:
        completed = run_all(todo, parallel, writer.add, backend=config.backend) if todo else True
        if completed:
            writer.finish()
        searches: list[CapacitySearch] = []
        if completed and config.capacity is not None:

            def save(found: list[CapacitySearch]) -> None:
                write_json(out / "capacity.json", [s.to_dict() for s in found])

            searches, completed = search_capacity(config, policies, parallel, on_round=save, backend=config.backend)
            save(searches)
    finally:
        if started_ray:
            ray_runner.shutdown()
    seconds = time.perf_counter() - start
    livelocks = [r.record for r in writer.results if r.record.get("livelock")]
    if livelocks:
        runs_named = ", ".join(f"{rec['policy']} on {rec['workload']} seed {rec['seed']}" for rec in sorted(livelocks, key=lambda rec: rec["run"])[:5])
        print(
            f"{PROG}: {len(livelocks)} run{'s' * (len(livelocks) != 1)} stopped as a livelock (requests evicting each other "
            f"with none finishing; stability 'livelock', the requests left counted unfinished): {runs_named}"
            + (", ..." if len(livelocks) > 5 else ""),
            file=sys.stderr,
        )
    if writer.results or searches:
        report(config, writer, searches, policies, reference, len(runs), seconds, jobs, console)
    if not completed:
        print(
            f"{PROG}: interrupted: {len(writer.results)} of {len(runs)} runs finished; "
            f"what finished is written to {out} (--resume continues it)",
            file=sys.stderr,
        )
        return 130
    return 0


def report(
    config: EvalConfig,
    writer: ResultWriter,
    searches: list[CapacitySearch],
    policies: list,
    reference: str,
    total: int,
    seconds: float,
    jobs: int,
    console: bool,
) -> None:
    """Aggregate, print and write the tables, plots and TensorBoard logs."""
    out = config.out_dir
    cells = aggregate(writer.records, reference)
    tables = grid_tables(cells, reference, config.axis)
    compact = grid_tables(cells, reference, config.axis, compact=True)
    if searches and config.capacity is not None:
        capacity = capacity_table(searches, config.axis, config.capacity.criterion, config.capacity.num_requests)
        tables.append(capacity)
        compact.append(capacity)
    # a suite of scenarios prints its leaderboard; the per-scenario tables go to summary.md
    board = leaderboard_tables(cells, reference) if config.scenarios else []
    header = _header(config, policies, reference, len(writer.results), total, seconds, jobs)
    (out / "summary.md").write_text(markdown(board + tables, header, reference))
    (out / "aggregate.csv").write_text(aggregate_csv(cells, config.axis))
    slugs = scenario_slugs(list(dict.fromkeys([c.scenario for c in cells] + [s.scenario for s in searches])))
    latencies = pooled_latencies(writer.results)
    plot_files: list[Path] = []
    if config.plots:
        from .plots import write_plots

        plot_files = write_plots(cells, latencies, searches, config.axis, slugs, out / "plots")
    if config.tensorboard:
        from .tensorboard import write_tensorboard

        write_tensorboard(out / "tb", cells, latencies, searches, policies, reference, slugs, plot_files, config.axis)
    if searches and config.capacity is not None:
        for line in short_run_warnings(searches, config.capacity.num_requests):
            print(f"{PROG}: warning: {line}", file=sys.stderr)
    if console:
        if board:
            print_console(leaderboard_tables(cells, reference, compact=True), header, reference, BOARD_LEGEND.format(ref=reference))
            print(f"with intervals, and the per-scenario tables (TTFT, TPOT, throughput, SLO, stability): {out / 'summary.md'}")
        else:
            print_console(compact, header, reference)
            print(f"full tables (95 % intervals, p99 TTFT, TPOT, throughput, SLO attainment, preemptions): {out / 'summary.md'}")
        print(f"\nwrote {out}/: results.json, results.csv, aggregate.csv, summary.md"
              + (", plots/" if plot_files else "") + (", tb/" if config.tensorboard else ""))
        if config.tensorboard:
            step = "the load x 1000 (950 = load 0.95)" if config.axis == "load" else "the rate in milli-requests/s"
            print(f"view: tensorboard --logdir {shlex.quote(str(out / 'tb'))} (one run per policy; the step is {step})")


def pooled_latencies(results: list[RunResult]) -> dict[tuple, dict[str, np.ndarray]]:
    """Per-request latencies of each (scenario, x, policy), seeds pooled."""
    parts: dict[tuple, dict[str, list[np.ndarray]]] = {}
    for r in results:
        rec = r.record
        key = ((rec["workload"], rec["hardware"], rec["system"]), rec["load"] if rec["load"] is not None else rec["rate"], rec["policy"])
        for name, values in r.latencies.items():
            parts.setdefault(key, {}).setdefault(name, []).append(values)
    return {key: {name: np.concatenate(v) for name, v in d.items()} for key, d in parts.items()}


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.list:
            print(list_choices())
            return 0
        if args.hardware == []:  # a bare --hardware lists the presets
            print(describe_hardware())
            return 0
        if args.resume and args.overwrite:
            raise ConfigError("--resume and --overwrite are invalid together: expected one of them")
        return evaluate(config_from_args(args), overwrite=args.overwrite, resume=args.resume)
    except ConfigError as err:
        message = " ".join(str(err).split())  # one line
        print(f"{PROG}: error: {message}", file=sys.stderr)
        return 2
