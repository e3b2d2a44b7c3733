"""Preemption under KV pressure: recompute vs swap vs the cost-aware rule (and trained agents).

Runs ``configs/eval/preemption.yaml`` through ``llmsched-eval`` (small KV cache, long outputs, loads
0.7 and 0.9, 5 seeds; its console table gives mean/p99 e2e, TTFT, throughput with confidence
intervals), then prints what each policy spent on preemption: counts by mode and wasted work
(tokens prefilled again, bytes swapped out and back in).

    python benchmarks/bench_preemption.py                        # the three baselines
    python benchmarks/bench_preemption.py --policies vllm-recompute cost-aware models/agent.zip
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

import numpy as np

CONFIG = Path(__file__).resolve().parents[1] / "configs" / "eval" / "preemption.yaml"
WASTE = (
    ("preemptions_recompute", "recompute", 1.0),
    ("preemptions_swap", "swap", 1.0),
    ("preemptions_restart", "restart", 1.0),
    ("swap_fallbacks", "swap->recomp.", 1.0),
    ("recomputed_tokens", "recomputed ktok", 1e-3),
    ("swap_bytes", "swapped GB (x2)", 2e-9),  # out and back in
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--policies", nargs="+", help="policies (default: the config's)")
    args = parser.parse_args(argv)
    from eval.cli import main as eval_main

    with tempfile.TemporaryDirectory() as out:
        eval_args = ["--config", str(CONFIG), "--out", out, "--no-plots", "--no-tensorboard", "--no-requests"]
        if args.policies:
            eval_args += ["--policies", *args.policies]
        code = eval_main(eval_args)
        if code:
            return code
        records = json.loads((Path(out) / "results.json").read_text())
    cells: dict[tuple[float, str], dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for record in records:
        for key, _, _ in WASTE:
            cells[(record["load"], record["policy"])][key].append(float(record[key]))
    print("\nwasted work per run (mean over seeds)")
    header = f"{'load':>5}  {'policy':<18}" + "".join(f"{label:>17}" for _, label, _ in WASTE)
    print(header)
    print("-" * len(header))
    for (load, policy), values in sorted(cells.items()):
        row = "".join(f"{np.mean(values[key]) * scale:>17,.1f}" for key, _, scale in WASTE)
        print(f"{load:>5}  {policy:<18}{row}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
