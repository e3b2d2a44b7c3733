"""The experiment runner: the grid of runs, parallel execution, and results streamed to disk.

Each :class:`Run` is one cell of the grid, one ``simulate(config, policy, seed=seed)`` call, and
:func:`execute` runs one cell wherever it is sent. Runs go to a pool of worker processes
(``spawn``: safe with torch-based agents) and their results are written as they complete
(``results.json``, ``results.csv``, ``runs/<n>.npz``), so an interrupted evaluation keeps
everything that finished. Ctrl-C cancels the runs not started, stops the workers at once (their
runs in progress are dropped) and returns what is done; :func:`finished_cells` reads the cells an
interrupted evaluation wrote back, so a resumed one runs only the rest. The ``ray`` backend sends
each cell to :func:`execute` as a Ray task instead (``eval/ray_runner.py``), with the same
callback.
"""

from __future__ import annotations

import csv
import json
import math
import multiprocessing
import os
import signal
import sys
import threading
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
LATENCIES_SUFFIX = ".latencies.npz"  # per-run latencies kept for a resume when requests are not saved
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

    def identity(self) -> dict[str, Any]:
        """The fields of its record that say which cell of the grid it is."""
        return {
            "run": self.index,
            "policy": self.policy.label,
            "policy_spec": self.policy.spec,
            "workload": self.workload,
            "hardware": self.hardware,
            "system": self.system,
            "load": self.x if self.axis == "load" else None,
            "rate": self.x if self.axis == "rate" else None,
            "seed": self.seed,
        }


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
    """Simulate one cell of the grid (in a worker process) and flatten its outcome."""
    start = time.perf_counter()
    result = _simulate(run)
    records = result.records
    assert records is not None  # the grid keeps records
    order = np.argsort(records["id"], kind="stable")
    requests = {name: values[order] for name, values in records.items()}
    latencies = latencies_of(requests)
    identity = run.identity()
    record: dict[str, Any] = {
        "run": run.index,
        "policy": run.policy.label,
        "policy_spec": run.policy.spec,
        "policy_kind": run.policy.kind,
        "workload": run.workload,
        "hardware": run.hardware,
        "system": run.system,
        "batching": run.config.engine.batching,
        "load": identity["load"],
        "rate": identity["rate"],
        "seed": run.seed,
        "num_requests": run.config.workload.num_requests,
        "predictor": run.config.predictor.kind,
    }
    if run.cluster is not None:
        record["replicas"] = run.cluster.num_replicas
    record.update(result.summary)
    record["wall_s"] = time.perf_counter() - start
    return RunResult(record, requests, latencies)


def latencies_of(requests: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """End-to-end and first-token latencies (s) of the finished requests of a run's records."""
    done = requests["state"] == int(RequestState.FINISHED)
    return {
        "e2e": requests["finish_time"][done] - requests["arrival"][done],
        "ttft": requests["first_token_time"][done] - requests["arrival"][done],
    }


def _ignore_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is handled once, by the parent


def run_all(
    runs: list[Run],
    jobs: int,
    on_result: Callable[[Run, RunResult], None],
    progress: str = "runs",
    backend: str = "local",
) -> bool:
    """Execute ``runs`` on ``jobs`` processes, calling ``on_result`` as each completes.

    ``backend="ray"``: every run a Ray task on the Ray session this process is connected to
    (``eval.ray_runner``), at most ``jobs`` in flight (0: all). Returns False if interrupted by
    Ctrl-C (runs not started are dropped; ``on_result`` has seen every run that finished). Errors
    in a run (e.g. a ConfigError) propagate.
    """
    from tqdm import tqdm

    bar = tqdm(total=len(runs), desc=progress, unit="run", file=sys.stderr, disable=None, dynamic_ncols=True)
    try:
        if backend == "ray":
            from .ray_runner import run_tasks

            return run_tasks(runs, execute, on_result, bar.update, max_in_flight=jobs)
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
    except BaseException as err:
        stop_workers(pool, interrupted=isinstance(err, KeyboardInterrupt))
        raise


def stop_workers(pool: ProcessPoolExecutor, interrupted: bool = True, grace_s: float = 5.0) -> None:
    """Stop ``pool`` now: cancel the runs not started and end its workers, runs in progress included
    (a dropped run is not in the results; a resumed evaluation runs it again). Says what it waits
    for; a second Ctrl-C cannot cut it short and leave a worker behind."""
    main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN) if main else None
    try:
        processes = list((getattr(pool, "_processes", None) or {}).values())  # the executor has no public handle
        if interrupted and processes:
            print(
                f"interrupted: stopping {len(processes)} worker process{'es' * (len(processes) != 1)} "
                "(their runs in progress are dropped)",
                file=sys.stderr,
                flush=True,
            )
        pool.shutdown(wait=False, cancel_futures=True)
        for process in processes:
            if process.is_alive():
                process.terminate()
        for process in processes:
            process.join(grace_s)
            if process.is_alive():
                process.kill()
                process.join()
        pool.shutdown(wait=True)  # the executor's own thread sees its workers gone and ends
    finally:
        if previous is not None:
            signal.signal(signal.SIGINT, previous)


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

    def __init__(self, out_dir: Path, save_requests: bool, finished: list[RunResult] | None = None) -> None:
        self.out_dir = out_dir
        self.save_requests = save_requests
        self.results: list[RunResult] = list(finished or [])
        (out_dir / RUNS_DIR).mkdir(parents=True, exist_ok=True)

    def add(self, run: Run, result: RunResult) -> None:
        if self.save_requests:
            name = f"{RUNS_DIR}/{run.index:05d}.npz"
            np.savez_compressed(self.out_dir / name, **result.requests)  # type: ignore[arg-type]  # numpy stubs
            result.record["requests_file"] = name
        else:  # only what a resumed evaluation needs besides the record (removed by finish())
            np.savez_compressed(self.out_dir / RUNS_DIR / f"{run.index:05d}{LATENCIES_SUFFIX}", **result.latencies)  # type: ignore[arg-type]
        result.requests = {}  # on disk now; keep only the latencies in memory
        self.results.append(result)
        self.flush()

    def finish(self) -> None:
        """The evaluation is complete: drop the resume data a run without requests kept."""
        if not self.save_requests:
            for path in (self.out_dir / RUNS_DIR).glob("*" + LATENCIES_SUFFIX):
                path.unlink()
            try:
                (self.out_dir / RUNS_DIR).rmdir()
            except OSError:
                pass  # not empty: something else is in there

    @property
    def records(self) -> list[dict[str, Any]]:
        return sorted((r.record for r in self.results), key=lambda rec: rec["run"])

    def flush(self) -> None:
        records = [{k: jsonable(v) for k, v in rec.items()} for rec in self.records]
        _atomic_write(self.out_dir / RESULTS_JSON, json.dumps(records, indent=1) + "\n")
        _atomic_write(self.out_dir / RESULTS_CSV, _csv_text(records))


def finished_cells(out_dir: Path, runs: list[Run], save_requests: bool) -> list[RunResult]:
    """The cells of ``runs`` that an earlier (interrupted) evaluation in ``out_dir`` finished.

    A cell counts when ``results.json`` holds its record, with the same identity (run index,
    policy, scenario, load or rate, seed), and its per-request file (or, without requests, its
    latencies) is on disk. Records come back as written, so a resumed evaluation's outputs are
    those of an uninterrupted one.
    """
    path = out_dir / RESULTS_JSON
    if not path.exists():
        return []
    by_index = {run.index: run for run in runs}
    found: list[RunResult] = []
    for rec in json.loads(path.read_text()):
        run = by_index.get(rec.get("run")) if isinstance(rec, dict) else None
        if run is None or any(rec.get(k) != v for k, v in run.identity().items()):
            continue
        if save_requests:
            name = rec.get("requests_file")
            file = out_dir / name if isinstance(name, str) else None
            if file is None or not file.is_file():
                continue
            with np.load(file) as data:
                requests = {k: data[k] for k in data.files}
            latencies = latencies_of(requests)
        else:
            file = out_dir / RUNS_DIR / f"{run.index:05d}{LATENCIES_SUFFIX}"
            if not file.is_file():
                continue
            with np.load(file) as data:
                latencies = {k: data[k] for k in data.files}
        found.append(RunResult(rec, {}, latencies))
    return found


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

