"""Job-level metrics of agent networks: what :mod:`llmsched_env.sim.metrics` defines per request,
defined here per *job* (a workflow of calls). Call-level and engine-level figures are
``metrics.summarize`` over each engine's calls; the backlog series, its slope and the stability
verdict are ``metrics.TimeSeries`` / ``metrics.backlog_trend``, applied to jobs in the system.

Per job (FINISHED jobs): job completion time ``jct = finish_time - arrival`` (seconds, tool-call
delays included).

Per run (``job_summary``; keys carry their units):

* ``jobs_arrived``, ``jobs_finished``, ``jobs_failed`` (a call could never be served: its KV does
  not fit its engine), ``jobs_unfinished`` (still inside at the end; reported, never dropped).
* ``jct_{mean,p50,p90,p99}_s`` over finished jobs (NaN if none; numpy's linear percentiles).
* ``jobs_per_s`` = finished jobs / duration.
* ``jobs_in_system_mean`` (time average; Little's law: arrival rate x mean time in the system),
  ``jobs_backlog_slope_per_s`` and ``stability``: the slope of the jobs-in-system series over the
  second half of the arrival period and the verdict of :func:`~llmsched_env.sim.metrics.backlog_trend`.
* Per class ``c``: ``class/<c>/jobs_arrived``, ``.../jobs_finished``, ``.../jobs_per_s``,
  ``.../jct_mean_s``, ``.../jct_p90_s``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from ..metrics import PERCENTILES, TimeSeries
from ..request import RequestState
from ..validation import check_positive, fail

NAN = math.nan
FINISHED = int(RequestState.FINISHED)
REJECTED = int(RequestState.REJECTED)

#: Fields of a job record (one row per job that arrived).
JOB_RECORD_FIELDS: tuple[str, ...] = (
    "id",  # int, in arrival order
    "cls",  # int, index of its class
    "arrival",  # s
    "finish_time",  # s: finished, or the arrival of the call that failed (NaN if unfinished)
    "state",  # RequestState value: FINISHED, REJECTED (failed) or WAITING (unfinished)
    "stages_done",  # stages completed
)


@dataclass
class JobRecordBuffer:
    """Column buffers of job records (lists while a run goes on)."""

    columns: dict[str, list] = field(default_factory=lambda: {name: [] for name in JOB_RECORD_FIELDS})

    def append(self, job: Any) -> None:
        """Record a :class:`~llmsched_env.sim.network.jobs.Job` that left the system or is still inside."""
        c = self.columns
        c["id"].append(job.id)
        c["cls"].append(job.cls)
        c["arrival"].append(job.arrival)
        c["finish_time"].append(job.finish_time)
        c["state"].append(int(job.state))
        c["stages_done"].append(len(job.plan) if job.state == FINISHED else job.stage)

    def __len__(self) -> int:
        return len(self.columns["id"])

    def to_arrays(self) -> dict[str, np.ndarray]:
        """Numpy columns, rows in job id (arrival) order."""
        order = np.argsort(np.asarray(self.columns["id"], dtype=np.int64), kind="stable")
        out = {}
        for name, values in self.columns.items():
            dtype = np.float64 if name in ("arrival", "finish_time") else np.int64
            out[name] = np.asarray(values, dtype=dtype)[order]
        return out


def job_completion_times(records: dict[str, np.ndarray]) -> np.ndarray:
    """``finish_time - arrival`` of the FINISHED jobs (seconds), in record order."""
    done = np.asarray(records["state"]) == FINISHED
    return np.asarray(records["finish_time"], dtype=np.float64)[done] - np.asarray(records["arrival"], dtype=np.float64)[done]


def _percentiles(values: np.ndarray) -> dict[str, float]:
    """``{"p50": ..., "p90": ..., "p99": ...}`` (NaN for no values)."""
    qs = [q for _, q in PERCENTILES]
    values_at = np.percentile(values, qs).tolist() if values.size else [NAN] * len(qs)
    return {label: float(v) for (label, _), v in zip(PERCENTILES, values_at)}


def job_summary(
    records: dict[str, np.ndarray],
    series: TimeSeries | None,
    *,
    duration: float,
    class_names: Sequence[str],
) -> dict[str, float | int | str]:
    """The job-level run summary (see the module docstring for every key)."""
    check_positive("duration", duration)
    missing = [name for name in JOB_RECORD_FIELDS if name not in records]
    if missing:
        raise fail("records", sorted(records), f"all job record fields; missing {missing}")
    state = np.asarray(records["state"])
    cls = np.asarray(records["cls"])
    jct = job_completion_times(records)
    finished = int(np.count_nonzero(state == FINISHED))
    out: dict[str, float | int | str] = {
        "duration_s": float(duration),
        "jobs_arrived": int(state.size),
        "jobs_finished": finished,
        "jobs_failed": int(np.count_nonzero(state == REJECTED)),
        "jobs_unfinished": int(np.count_nonzero((state != FINISHED) & (state != REJECTED))),
        "jct_mean_s": float(jct.mean()) if jct.size else NAN,
    }
    for label, value in _percentiles(jct).items():
        out[f"jct_{label}_s"] = value
    out["jobs_per_s"] = finished / duration
    if series is not None:
        s = series.summary(duration)
        out["jobs_in_system_mean"] = s["in_system_mean"]
        out["jobs_backlog_slope_per_s"] = s["backlog_slope_per_s"]
        out["stability"] = s["stability"]
    else:
        out.update(jobs_in_system_mean=NAN, jobs_backlog_slope_per_s=NAN, stability="inconclusive")
    finished_cls = cls[state == FINISHED]
    for c, name in enumerate(class_names):
        times = jct[finished_cls == c]
        out[f"class/{name}/jobs_arrived"] = int(np.count_nonzero(cls == c))
        out[f"class/{name}/jobs_finished"] = int(times.size)
        out[f"class/{name}/jobs_per_s"] = times.size / duration
        out[f"class/{name}/jct_mean_s"] = float(times.mean()) if times.size else NAN
        out[f"class/{name}/jct_p90_s"] = _percentiles(times)["p90"]
    return out
