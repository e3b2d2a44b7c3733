"""The experiment runner: the grid of runs, parallel execution, and results streamed to disk.

Each :class:`Run` is one ``simulate(config, policy, seed=seed)`` call. Runs go to a pool of worker
processes (``spawn``: safe with torch-based agents) and their results are written as they
complete (``results.json``, ``results.csv``, ``runs/<n>.npz``), so an interrupted evaluation keeps
everything that finished. Ctrl-C cancels the runs not started and returns what is done.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import math
import multiprocessing
import os
import signal
import sys
import time
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from llmsched_env.sim import RequestState, SimConfig, simulate
from llmsched_env.sim.validation import ConfigError

from .config import EvalConfig
from .policies import PolicyEntry, build

RESULTS_JSON = "results.json"
RESULTS_CSV = "results.csv"
RUNS_DIR = "runs"
LATENCIES = ("e2e", "ttft")  # per-request latencies kept in memory for CDFs and histograms


@dataclass(frozen=True)
class Run:
    """One simulation of the grid."""

    index: int
    policy: PolicyEntry
    workload: str
    hardware: str
    system: str | None
    axis: str  # "load" or "rate"
    x: float
    seed: int
    config: SimConfig  # complete: engine, workload, load or rate, seed
    cluster: Any = None  # a cluster scenario's ClusterConfig, complete (the policy is then a router)

    @property
    def scenario(self) -> tuple[str, str, str | None]:
        return (self.workload, self.hardware, self.system)


@dataclass
class RunResult:
    """What a run returns: its flat record and the per-request arrays."""

    record: dict[str, Any]  # identifying fields + every metric of the summary
    requests: dict[str, np.ndarray]  # every per-request record field, sorted by request id
    latencies: dict[str, np.ndarray]  # e2e and ttft (s) of finished requests


def with_x(sim: Any, axis: str, x: float, seed: int) -> Any:
    """``sim`` (a SimConfig or ClusterConfig) at load or rate ``x`` with ``seed``."""
    changes = {"load": x, "rate": None} if axis == "load" else {"load": None, "rate": x}
    return sim.replace(seed=seed, **changes)


def build_grid(config: EvalConfig, policies: list[PolicyEntry]) -> list[Run]:
    """Every run of the evaluation, policies innermost so paired runs finish close together."""
    routers = [p.label for p in policies if p.kind == "router"]
    if config.is_cluster_grid and len(routers) != len(policies):
        others = [p.label for p in policies if p.kind != "router"]
        raise ConfigError(f"policies: a grid of cluster scenarios compares routers; not routers: {', '.join(others)}")
    if not config.is_cluster_grid and routers:
        raise ConfigError(f"policies: {', '.join(routers)} route requests across replicas; they need cluster scenarios (--scenarios clusters)")
    runs: list[Run] = []
    for setting in config.settings():
        for x in config.grid_xs(setting):
            for seed in config.seeds:
                sim = with_x(setting.sim, config.axis, x, seed)
                cluster = None if setting.cluster is None else with_x(setting.cluster, config.axis, x, seed)
                for policy in policies:
                    if config.scenarios and policy.home is not None and policy.home != setting.label:
                        continue  # a bundled agent is evaluated on the scenario it was trained on
                    runs.append(Run(len(runs), policy, setting.label, setting.hardware, setting.system, config.axis, x, seed, sim, cluster))
    return runs


def _simulate(run: Run) -> Any:
    """The run's result: the engine driven by a heuristic, a trained agent through its
    environment (train.agents), or a cluster behind a router (llmsched_env.sim.cluster)."""
    policy = build(run.policy)
    if run.cluster is not None:
        from llmsched_env.sim.cluster import Cluster

        return Cluster(run.cluster, seed=run.seed).run(policy)
    runner = getattr(policy, "simulate", None)
    return runner(run.config, run.seed) if runner is not None else simulate(run.config, policy, seed=run.seed)


def execute(run: Run) -> RunResult:
    """Simulate one run (in a worker process) and flatten its outcome."""
    start = time.perf_counter()
    result = _simulate(run)
    records = result.records
    assert records is not None  # the grid keeps records
    order = np.argsort(records["id"], kind="stable")
    requests = {name: values[order] for name, values in records.items()}
    done = requests["state"] == int(RequestState.FINISHED)
    latencies = {
        "e2e": requests["finish_time"][done] - requests["arrival"][done],
        "ttft": requests["first_token_time"][done] - requests["arrival"][done],
    }
    record: dict[str, Any] = {
        "run": run.index,
        "policy": run.policy.label,
        "policy_spec": run.policy.spec,
        "policy_kind": run.policy.kind,
        "workload": run.workload,
        "hardware": run.hardware,
        "system": run.system,
        "batching": run.config.engine.batching,
        "load": run.x if run.axis == "load" else None,
        "rate": run.x if run.axis == "rate" else None,
        "seed": run.seed,
        "num_requests": run.config.workload.num_requests,
        "predictor": run.config.predictor.kind,
    }
    if run.cluster is not None:
        record["replicas"] = run.cluster.num_replicas
    record.update(result.summary)
    record["wall_s"] = time.perf_counter() - start
    return RunResult(record, requests, latencies)


def _ignore_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is handled once, by the parent


def run_all(
    runs: list[Run],
    jobs: int,
    on_result: Callable[[Run, RunResult], None],
    progress: str = "runs",
) -> bool:
    """Execute ``runs`` on ``jobs`` processes, calling ``on_result`` as each completes.

    Returns False if interrupted by Ctrl-C (runs not started are dropped; ``on_result`` has seen
    every run that finished). Errors in a run (e.g. a ConfigError) propagate.
    """
    from tqdm import tqdm

    bar = tqdm(total=len(runs), desc=progress, unit="run", file=sys.stderr, disable=None, dynamic_ncols=True)
    try:
        if jobs <= 1 or len(runs) <= 1:
            for run in runs:
                on_result(run, execute(run))
                bar.update()
            return True
        return _run_pool(runs, jobs, on_result, bar.update)
    except KeyboardInterrupt:
        return False
    finally:
        bar.close()


def _run_pool(runs: list[Run], jobs: int, on_result: Callable[[Run, RunResult], None], tick: Callable[[], Any]) -> bool:
    context = multiprocessing.get_context("spawn")
    pool = ProcessPoolExecutor(max_workers=min(jobs, len(runs)), mp_context=context, initializer=_ignore_sigint)
    pending: dict[Future, Run] = {}
    try:
        pending = {pool.submit(execute, run): run for run in runs}
        while pending:
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            for future in done:
                run = pending.pop(future)
                on_result(run, future.result())
                tick()
        pool.shutdown()
        return True
    except BaseException:
        pool.shutdown(wait=False, cancel_futures=True)  # workers finish their current run and exit
        raise


# -- streaming results ------------------------------------------------------------------------------


def jsonable(value: Any) -> Any:
    """JSON-safe scalars: numpy types to Python, NaN and infinities to null."""
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    return value


class ResultWriter:
    """Writes results as they arrive: one JSON/CSV record per run, per-request arrays per run.

    ``results.json`` and ``results.csv`` are rewritten atomically after every run, so they are
    complete and parseable whenever the evaluation stops.
    """

    def __init__(self, out_dir: Path, save_requests: bool) -> None:
        self.out_dir = out_dir
        self.save_requests = save_requests
        self.results: list[RunResult] = []
        if save_requests:
            (out_dir / RUNS_DIR).mkdir(parents=True, exist_ok=True)

    def add(self, run: Run, result: RunResult) -> None:
        if self.save_requests:
            name = f"{RUNS_DIR}/{run.index:05d}.npz"
            np.savez_compressed(self.out_dir / name, **result.requests)  # type: ignore[arg-type]  # numpy stubs
            result.record["requests_file"] = name
        result.requests = {}  # on disk now; keep only the latencies in memory
        self.results.append(result)
        self.flush()

    @property
    def records(self) -> list[dict[str, Any]]:
        return sorted((r.record for r in self.results), key=lambda rec: rec["run"])

    def flush(self) -> None:
        records = [{k: jsonable(v) for k, v in rec.items()} for rec in self.records]
        _atomic_write(self.out_dir / RESULTS_JSON, json.dumps(records, indent=1) + "\n")
        _atomic_write(self.out_dir / RESULTS_CSV, _csv_text(records))


def _csv_text(records: list[dict[str, Any]]) -> str:
    import io

    buffer = io.StringIO()
    fields = list(dict.fromkeys(k for rec in records for k in rec))
    writer = csv.DictWriter(buffer, fieldnames=fields, lineterminator="\n")
    writer.writeheader()
    for rec in records:
        writer.writerow({k: "" if v is None else v for k, v in rec.items()})
    return buffer.getvalue()


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def write_json(path: Path, data: Any) -> None:
    """Write ``data`` (nested dicts/lists of scalars) as JSON with NaN as null."""

    def clean(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: clean(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [clean(v) for v in value]
        return jsonable(value)

    _atomic_write(path, json.dumps(clean(data), indent=1) + "\n")

