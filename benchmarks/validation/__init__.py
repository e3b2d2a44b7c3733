"""Validation suite: reproduce the published results the simulator must agree with (issue 8).

    python -m benchmarks.validation                  # every case, report in validation_out/
    python -m benchmarks.validation --quick          # fewer seeds, shorter runs
    python -m benchmarks.validation --cases 1,5 --out /tmp/val

Each case runs the simulator in a published setting and writes the published figure, ours and a
verdict (pass / partial / fail, with the rule used; pending when a module it needs is absent)
into one markdown report with PNG plots (:mod:`benchmarks.validation.run`):

1. Li–Dai–Peng Theorem 2: stability boundary and backlog slope (``li_dai_peng.theorem2``)
2. Li–Dai–Peng Fig. 1: Orca / Sarathi bounded, vLLM / FasterTransformer growing (``li_dai_peng.figure1``)
3. Li–Dai–Peng §6.2: with a batch-size cap only Sarathi-128 is stable (``li_dai_peng.batch_cap``)
4. Li–Dai–Peng §5.4: the Rybko–Stolyar network (``li_dai_peng.rybko_stolyar``)
5. M/G/1: FCFS, SJF, SRPT against their formulas (``queueing.mg1``)
6. Trail vs vLLM-FCFS (``trail.trail``)
7. Sarathi-Serve vs vLLM capacity under a P99 TBT SLO (``sarathi.sarathi_vs_vllm``)
8. SSJF vs FCFS and the batch size (``ssjf.ssjf``)
9. Routing: random = N x M/G/1, JSQ between M/M/N and N x M/M/1 (``cluster.queueing_case``)
10. Mooncake traces: prefix-cache hit rate by cache size against the paper (``cluster.mooncake_case``)
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from .cluster import mooncake_case, queueing_case
from .common import CaseResult
from .li_dai_peng import batch_cap, figure1, rybko_stolyar, theorem2
from .queueing import mg1
from .sarathi import sarathi_vs_vllm
from .ssjf import ssjf
from .trail import trail

Case = Callable[[bool, Path, int], CaseResult]
CASES: dict[str, Case] = {
    "1": theorem2,
    "2": figure1,
    "3": batch_cap,
    "4": rybko_stolyar,
    "5": mg1,
    "6": trail,
    "7": sarathi_vs_vllm,
    "8": ssjf,
    "9": queueing_case,
    "10": mooncake_case,
}

__all__ = ["CASES", "CaseResult"]
