"""The job generator of an agent network: jobs (workflow instances) drawn class by class in
chunks, their calls, and the merged arrival stream.

Random streams (:mod:`llmsched_env.sim.streams`): class ``i`` draws its arrivals, lengths, delays
and predictions from its own children of the run's seed, so changing one class leaves the jobs of
the others unchanged.
"""

from __future__ import annotations

import heapq
import math

import numpy as np

from ..predictors import PredictorConfig, make_predictor
from ..request import RequestBatch, RequestState
from ..streams import child, generator
from ..workload import sample_lengths
from .config import Buffer, NetworkConfig, WorkflowClass

JOB_CHUNK = 256  # jobs drawn at a time per class
_INF = math.inf
# the child streams of class i of a run's seed: (i, key)
_ARRIVALS, _LENGTHS, _DELAYS, _PREDICTIONS = range(4)


class Job:
    """One workflow instance. ``plan[s][k]`` = (prompt, output, delay, predicted output, refreshed
    predictions or None) of call ``k`` of stage ``s``, drawn when the job is generated."""

    __slots__ = ("id", "cls", "arrival", "plan", "state", "stage", "pending", "stage_end", "finish_time")

    def __init__(self, cls: int, arrival: float, plan: list) -> None:
        self.id = -1  # set when released, in arrival order
        self.cls = cls
        self.arrival = arrival
        self.plan = plan
        self.state = RequestState.WAITING  # FINISHED, REJECTED (a call could never be served)
        self.stage = 0  # current stage
        self.pending = 0  # calls of the current stage not finished
        self.stage_end = 0.0  # latest finish among the current stage's calls so far
        self.finish_time = math.nan


class Call:
    """What ``Request.meta`` holds for a network call: its job and buffer."""

    __slots__ = ("job", "buffer")

    def __init__(self, job: Job, buffer: Buffer) -> None:
        self.job = job
        self.buffer = buffer


class _ClassStream:
    """Jobs of one class in arrival order, drawn ``JOB_CHUNK`` at a time (vectorised)."""

    def __init__(self, index: int, wf: WorkflowClass, predictor_config: PredictorConfig, seed: int, max_time: float) -> None:
        self.index, self.wf, self.seed, self.max_time = index, wf, seed, max_time
        self.predictor = make_predictor(predictor_config)
        self.rng_gap = generator(seed, index, _ARRIVALS)
        self.rng_delay = generator(seed, index, _DELAYS)
        self.rng_pred = generator(seed, index, _PREDICTIONS)
        self.chunk = 0
        self.last = 0.0
        self.drawn = 0
        self.jobs: list[Job] = []
        self.pos = 0
        self.exhausted = False
        self.cut = False  # some arrivals fell at or after the time limit
        self._refill()

    @property
    def next_arrival(self) -> float:
        return self.jobs[self.pos].arrival if not self.exhausted else _INF

    def pop(self) -> Job:
        job = self.jobs[self.pos]
        self.pos += 1
        if self.pos == len(self.jobs):
            self._refill()
        return job

    def _refill(self) -> None:
        wf = self.wf
        self.jobs, self.pos = [], 0
        if self.cut:  # the last chunk reached the time limit: arrival times only grow
            self.exhausted = True
            return
        if wf.arrival_times is not None:
            times = np.asarray(wf.arrival_times[self.drawn : self.drawn + JOB_CHUNK], dtype=np.float64)
        else:
            assert wf.rate is not None
            times = self.last + np.cumsum(self.rng_gap.standard_exponential(JOB_CHUNK) / wf.rate)
        drawn = len(times)
        times = times[times < self.max_time]  # jobs arriving at or after the time limit never enter
        self.cut = len(times) < drawn
        n = len(times)
        if n == 0:
            self.exhausted = True
            return
        self.drawn += n
        self.last = float(times[-1])
        columns = []  # per stage, per call: lists over the n jobs
        previous = np.zeros(n, dtype=np.int64)  # prompt + output tokens of the previous stage
        for s, stage in enumerate(wf.stages):
            calls, total = [], np.zeros(n, dtype=np.int64)
            for k, call in enumerate(stage):
                own, output = sample_lengths(call.workload, n, child(self.seed, self.index, _LENGTHS, s, k, self.chunk))
                prompt = own + np.floor(call.context * previous).astype(np.int64)
                delay = wf.delay.sample(self.rng_delay, n) if s > 0 else np.zeros(n)
                batch = RequestBatch(arrival_time=np.zeros(n), prompt_len=prompt, output_len=output)
                self.predictor.annotate(batch, self.rng_pred)
                assert batch.predicted_len is not None
                refresh: list = [None] * n
                if batch.refresh_offsets is not None and batch.refresh_values is not None:
                    offsets, values = batch.refresh_offsets.tolist(), batch.refresh_values
                    refresh = [values[a:b].tolist() if b > a else None for a, b in zip(offsets[:-1], offsets[1:])]
                calls.append(list(zip(prompt.tolist(), output.tolist(), delay.tolist(), batch.predicted_len.tolist(), refresh)))
                total += prompt + output
            columns.append(calls)
            previous = total
        self.chunk += 1
        for j, t in enumerate(times.tolist()):
            self.jobs.append(Job(self.index, t, [[calls[j] for calls in stage] for stage in columns]))


class _JobSource:
    """All classes' jobs merged in arrival order, numbered as they are released."""

    def __init__(self, config: NetworkConfig, seed: int) -> None:
        self.streams = [_ClassStream(i, wf, config.predictor, seed, config.max_time) for i, wf in enumerate(config.classes)]
        self.left = config.num_jobs if config.num_jobs is not None else -1  # -1: no job limit
        self.released = 0
        self._heap = [(s.next_arrival, s.index) for s in self.streams if not s.exhausted]
        heapq.heapify(self._heap)

    @property
    def next_arrival(self) -> float:
        return self._heap[0][0] if self._heap and self.left != 0 else _INF

    def pop(self) -> Job:
        _, c = heapq.heappop(self._heap)
        stream = self.streams[c]
        job = stream.pop()
        if not stream.exhausted:
            heapq.heappush(self._heap, (stream.next_arrival, c))
        job.id = self.released
        self.released += 1
        self.left -= 1
        return job
