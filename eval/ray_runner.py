"""The Ray backend of the evaluation runner: every run of the grid a Ray task.

``llmsched-eval --backend ray`` starts a local Ray (``--jobs`` CPUs, default all) or, with
``--ray-address ADDR``, joins a running cluster (``ray start --head`` on one machine, ``ray start
--address HEAD:6379`` on the others, then ``--ray-address auto`` on a node of it). Each run is
``eval.runner.execute`` (a module-level function: Ray's workers import it by name) in a Ray
worker, one CPU each; the results come back to this process, which writes them as they complete
through the same callback as the local pool, so the progress bar, the streamed outputs and an
interrupted run behave as on the local backend, and the same seeds give the same records (only
``wall_s`` is a measurement).

Every node needs the project installed (``pip install -e ".[ray]"``) and the data its runs read
(trace files, trained models) at the same paths. Ray is imported only when this backend runs.
"""

from __future__ import annotations

import sys
from typing import Any, Callable, TypeVar

from train.ray_session import import_ray, init  # noqa: F401  (init: the CLI's entry to the session)

Run = TypeVar("Run")  # eval.runner's Run and RunResult (this module depends on nothing of it)
Result = TypeVar("Result")


def run_tasks(
    runs: list[Run],
    execute: Callable[[Run], Result],
    on_result: Callable[[Run, Result], None],
    tick: Callable[[], Any],
    max_in_flight: int = 0,
) -> bool:
    """``execute(run)`` for every run as a Ray task on the connected cluster (at most
    ``max_in_flight`` at once; 0: all submitted, Ray queues them for free CPUs), calling
    ``on_result`` (then ``tick``) here as each completes. Ctrl-C (KeyboardInterrupt) and an error
    in a run cancel the tasks not finished and propagate."""
    ray = import_ray()
    task = ray.remote(num_cpus=1, max_retries=0)(execute)
    queue = list(reversed(runs))
    limit = max_in_flight or len(runs)
    pending: dict[Any, Run] = {}
    try:
        while queue or pending:
            while queue and len(pending) < limit:
                run = queue.pop()
                pending[task.remote(run)] = run
            done, _ = ray.wait(list(pending), num_returns=1)
            for ref in done:
                run = pending.pop(ref)
                on_result(run, ray.get(ref))
                tick()
        return True
    except BaseException as err:
        if isinstance(err, KeyboardInterrupt) and pending:
            print(f"interrupted: cancelling {len(pending)} Ray task{'s' * (len(pending) != 1)} (their runs in progress are dropped)",
                  file=sys.stderr, flush=True)  # fmt: skip
        for ref in pending:
            ray.cancel(ref, force=True)
        raise


def cluster_cpus() -> int:
    """The CPUs of the connected Ray cluster (what the header reports as its workers)."""
    ray = import_ray()
    return int(ray.cluster_resources().get("CPU", 1))


def shutdown() -> None:
    import_ray().shutdown()
