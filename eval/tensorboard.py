"""TensorBoard logs of an evaluation, so ``tensorboard --logdir DIR/tb`` shows the comparison.

One run per policy (``tb/<policy>``), where ``<scenario>`` is the workload (plus the hardware and
system where the grid has several), and the step is the load in per mille (0.95 -> 950) or the
rate in milli-requests/s:

* scalars ``<metric>/<scenario>``: the mean over seeds of each headline metric
  (``aggregate.HEADLINE``), ``<metric>_vs_<reference>/<scenario>`` for the ratio metrics,
  ``stable_fraction/<scenario>`` and, with a capacity search, ``capacity/<scenario>`` (step 0);
* histograms ``e2e_s/<scenario>`` and ``ttft_s/<scenario>``: per-request latencies, seeds pooled;
* hparams: the policy (label, kind, spec) with the headline metrics at the highest load (and the
  capacities) as its metrics, for the HPARAMS dashboard.

The plots go in one more run, ``tb/_plots``, as images ``plots/<file name>``. Every run also
carries a text ``about`` that says how to read the step (TensorBoard's x axis has no unit).
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np

from .aggregate import HEADLINE, RATIO_KEYS, Cell
from .capacity import CapacitySearch
from .policies import PolicyEntry

PLOTS_RUN = "_plots"


def step(x: float) -> int:
    """TensorBoard step of a load (per mille) or rate (milli-requests/s)."""
    return int(round(x * 1000))


def step_note(axis: str) -> str:
    """How to read the step of these runs, for TensorBoard's text tab."""
    if axis == "load":
        return "The step (x axis) is the load in per mille: step 950 is load 0.95 (arrival rate / the engine's capacity)."
    return "The step (x axis) is the arrival rate in milli-requests per second: step 2500 is 2.5 requests/s."


def run_name(label: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.=,:-]+", "-", label)


def write_tensorboard(
    tb_dir: Path,
    cells: list[Cell],
    latencies: dict[tuple, dict[str, np.ndarray]],
    searches: list[CapacitySearch],
    policies: list[PolicyEntry],
    reference: str,
    slugs: dict[tuple, str],
    plot_files: list[Path],
    axis: str = "load",
) -> None:
    from torch.utils.tensorboard import SummaryWriter
    from torch.utils.tensorboard.summary import hparams

    for policy in policies:
        writer = SummaryWriter(log_dir=str(tb_dir / run_name(policy.label)))
        writer.add_text("about", step_note(axis), 0)
        final: dict[str, float] = {}  # hparams metrics: each tag's value at the highest x
        for cell in sorted((c for c in cells if c.policy == policy.label), key=lambda c: c.x):
            slug = slugs[cell.scenario]
            scalars = {f"{m.key}/{slug}": cell.mean.get(m.key, math.nan) for m in HEADLINE}
            for key in RATIO_KEYS:
                scalars[f"{key}_vs_{reference}/{slug}"] = cell.ratio.get(key, (math.nan,) * 3)[0]
            scalars[f"stable_fraction/{slug}"] = cell.count("stable") / len(cell.seeds)
            for tag, value in scalars.items():
                if math.isfinite(value):
                    writer.add_scalar(tag, value, step(cell.x))
                    final[tag] = value
            for name in ("e2e", "ttft"):
                values = latencies.get((cell.scenario, cell.x, cell.policy), {}).get(name)
                if values is not None and values.size:
                    writer.add_histogram(f"{name}_s/{slug}", values, step(cell.x))
        for search in searches:
            if search.policy == policy.label and math.isfinite(search.capacity):
                tag = f"capacity/{slugs[search.scenario]}"
                writer.add_scalar(tag, search.capacity, 0)
                final[tag] = search.capacity
        file_writer = writer.file_writer
        assert file_writer is not None  # created with the writer
        for summary in hparams({"policy": policy.label, "kind": policy.kind, "spec": policy.spec}, final):
            file_writer.add_summary(summary)  # the run itself is the session (no sub-run)
        writer.close()

    if plot_files:
        import matplotlib.image

        writer = SummaryWriter(log_dir=str(tb_dir / PLOTS_RUN))
        for path in plot_files:
            image = matplotlib.image.imread(path)  # float RGBA in [0, 1]
            writer.add_image(f"plots/{path.stem}", image, 0, dataformats="HWC")
        writer.close()
