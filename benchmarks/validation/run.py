"""Run the validation cases and write one report: ``report.md``, ``summary.json`` and the PNG plots.

    python -m benchmarks.validation [--quick] [--cases 1,2,5] [--out DIR] [--workers N]
    python benchmarks/validation/run.py ...        (the same, as a script)

The exit status is 0 when every case ran (whatever its verdict: a fail is a finding, reported),
1 when a case raised an error (the report then shows the error as that case's verdict).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import traceback
from pathlib import Path

if not __package__:  # run as a script: make the repository root importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from benchmarks.machine import describe  # noqa: E402
from benchmarks.validation import CASES  # noqa: E402
from benchmarks.validation.common import CaseResult, table  # noqa: E402


def run_case(key: str, quick: bool, out: Path, workers: int) -> tuple[CaseResult, bool]:
    """Run one case; an exception becomes a failed result carrying the traceback."""
    start = time.perf_counter()
    try:
        result, ok = CASES[key](quick, out, workers), True
    except Exception:  # noqa: BLE001 - reported in the case's section, and in the exit status
        result = CaseResult(key=key, title=CASES[key].__name__, source="–", setting="–", published="–", ours="error",
                            verdict="fail", rule="the case raised an error", details="```\n" + traceback.format_exc() + "```")
        ok = False
    result.runtime_s = time.perf_counter() - start
    return result, ok


def write_report(results: list[CaseResult], out: Path, quick: bool, wall_s: float) -> Path:
    """``out/report.md`` (summary table, then one section per case) and ``out/summary.json``."""
    machine = describe()
    lines = [
        "# llmsched validation report",
        "",
        f"`python -m benchmarks.validation{' --quick' if quick else ''}`: {len(results)} case(s) in {wall_s:.0f} s on {machine}. "
        "Each case runs the simulator in a published setting and compares its figure with the published one; the verdict "
        "(pass / partial / fail, or pending when a module it needs is absent) follows the rule stated in its section.",
        "",
        "## Summary",
        "",
        table(["case", "published", "ours", "verdict", "runtime s"],
              [[f"{r.key}. {r.title}", r.published, r.ours, f"**{r.verdict}**", f"{r.runtime_s:.0f}"] for r in results]),
        "",
    ]
    for r in results:
        lines += [f"## Case {r.key}: {r.title}", "", f"Source: {r.source}.", "", f"Setting: {r.setting}.", "",
                  f"Published: {r.published}. Ours: {r.ours}.", "", f"**Verdict: {r.verdict}.** Rule: {r.rule.rstrip('.')}.", "", r.details, ""]
        lines += [f"![{name}]({name})\n" for name in r.plots]
    path = out / "report.md"
    path.write_text("\n".join(lines))
    summary = [{k: getattr(r, k) for k in ("key", "title", "source", "setting", "published", "ours", "verdict", "rule", "plots", "runtime_s")}
               for r in results]
    (out / "summary.json").write_text(json.dumps(summary, indent=1, ensure_ascii=False))
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Reproduce published results with the simulator and write a report.")
    parser.add_argument("--out", default="validation_out", help="output folder (default: validation_out/)")
    parser.add_argument("--quick", action="store_true", help="fewer seeds and shorter runs")
    parser.add_argument("--cases", default=",".join(CASES), help=f"comma-separated case numbers (default: all, {','.join(CASES)})")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="processes for independent runs")
    args = parser.parse_args(argv)
    keys = [k.strip() for k in args.cases.split(",") if k.strip()]
    unknown = [k for k in keys if k not in CASES]
    if unknown:
        parser.error(f"--cases: unknown case(s) {', '.join(unknown)}; expected some of {', '.join(CASES)}")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    results, all_ran = [], True
    for key in keys:
        result, ok = run_case(key, args.quick, out, max(args.workers, 1))
        all_ran &= ok
        results.append(result)
        print(f"case {key} ({result.title}): {result.verdict} in {result.runtime_s:.1f} s", flush=True)
    path = write_report(results, out, args.quick, time.perf_counter() - start)
    print(f"report: {path.resolve()}")
    return 0 if all_ran else 1


if __name__ == "__main__":
    sys.exit(main())
