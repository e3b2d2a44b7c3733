"""Fit the arrival-rate profiles shipped in llmsched_env/sim/data/arrivals/ from real traces.

A profile is the trace's request count in each ``--bin-s``-second bin. ``arrival='profile'``
replays it as a Poisson process whose rate follows the counts (time-scaled so the mean rate is the
run's, from a seeded random offset, cycling), which keeps the trace's burstiness at the bin's time
scale and above without shipping the trace.

The counts of a bin are the trace's intensity plus Poisson noise; a Poisson process driven by the
raw counts would add that noise a second time. So the counts are shrunk towards their mean,
``mean + s (count - mean)``, with ``s`` chosen so that the model's index of dispersion (variance /
mean of the arrival counts in a window) equals the trace's in windows of ``--match-s`` seconds:
for a Cox process with that intensity, IoD_model(w) = 1 + s^2 IoD_trace(w) exactly when w is a
whole number of bins, so ``s^2 = (IoD - 1) / IoD``. The script writes the profile with the
trace's statistics and the model's (IoD in 1, 10 and 60 s windows and the IAT CV, averaged over 20
seeded draws of the model at the trace's rate) and prints both.

    PYTHONPATH=. python benchmarks/fit_arrival_profiles.py [--data DIR] [--bin-s 10] [--match-s 60]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from benchmarks.fit_length_presets import AZURE, to_json
from llmsched_env.sim.traces import read_trace
from llmsched_env.sim.workload import PROFILE_DIR, WorkloadConfig, generate

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO.parent / "shared" / "data" / "traces"
WINDOWS_S = (1.0, 10.0, 60.0)

PROFILES = {
    "azure-conv": dict(
        file="azure_llm_2023_conv.csv.gz",
        description="Azure LLM inference trace 2023, conversation service: its request rate over the hour, "
        "in 10-second bins (Poisson noise removed, see the fit)",
        origin="github.com/Azure/AzurePublicDataset data/AzureLLMInferenceTrace_conv.csv",
        **AZURE,
    ),
    "azure-code": dict(
        file="azure_llm_2023_code.csv.gz",
        description="Azure LLM inference trace 2023, coding service: its request rate over the hour, "
        "in 10-second bins (Poisson noise removed, see the fit); on/off traffic",
        origin="github.com/Azure/AzurePublicDataset data/AzureLLMInferenceTrace_code.csv",
        **AZURE,
    ),
}


def dispersion(times: np.ndarray, window_s: float) -> float:
    """Variance / mean of the arrival counts in consecutive windows (1 for Poisson)."""
    counts = np.bincount((times // window_s).astype(np.int64))[: int(times[-1] // window_s)]  # whole windows
    return float(counts.var() / counts.mean())


def stats(times: np.ndarray) -> dict:
    gaps = np.diff(times)
    out = {f"iod_{w:g}s": round(dispersion(times, w), 3) for w in WINDOWS_S}
    out.update(iat_cv=round(float(gaps.std() / gaps.mean()), 3), mean_rate=round((len(times) - 1) / float(times[-1]), 4))
    return out


def fit(name: str, spec: dict, data: Path, bin_s: float, match_s: float) -> dict:
    trace = read_trace(data / spec["file"])
    assert trace.arrival_time is not None
    t = trace.arrival_time
    bins = int(np.ceil((t[-1] + 1e-9) / bin_s))
    counts = np.bincount((t // bin_s).astype(np.int64), minlength=bins).astype(np.float64)
    iod = dispersion(t, match_s)
    shrink = float(np.sqrt((iod - 1.0) / iod))
    smoothed = counts.mean() + shrink * (counts - counts.mean())
    source = {k: spec[k] for k in ("file", "origin", "commit", "license", "citation")}
    return dict(
        name=name,
        description=spec["description"],
        source=source,
        fitted_by="benchmarks/fit_arrival_profiles.py",
        fit=dict(bin_s=bin_s, match_iod_s=match_s, shrink=round(shrink, 4)),
        stats=dict(rows=len(t), span_s=round(float(t[-1]), 3), trace=stats(t)),
        bin_s=bin_s,
        counts=[round(float(c), 3) for c in np.maximum(smoothed, 0.0)],
    )


def check(name: str, seeds: int = 20) -> dict:
    profile = json.loads((PROFILE_DIR / f"{name}.json").read_text())
    rate = profile["stats"]["trace"]["mean_rate"]
    draws = []
    for seed in range(seeds):
        cfg = WorkloadConfig(arrival="profile", arrival_profile=name, num_requests=profile["stats"]["rows"])
        times = np.concatenate([b.arrival_time for b in generate(cfg, rate, seed)])
        draws.append(stats(times))
    model = {key: round(float(np.mean([d[key] for d in draws])), 3) for key in draws[0]}
    print(f"{name}: {len(profile['counts'])} bins of {profile['bin_s']:g} s")
    print(f"  {'':12}{'trace':>10}{'model':>10}")
    for key, value in profile["stats"]["trace"].items():
        print(f"  {key:12}{value:10.3f}{model[key]:10.3f}")
    return model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="folder with the trace files")
    parser.add_argument("--bin-s", type=float, default=10.0, help="profile resolution (s)")
    parser.add_argument("--match-s", type=float, default=60.0, help="window (s) whose index of dispersion the model matches")
    parser.add_argument("--check-only", action="store_true")
    args = parser.parse_args()
    for name, spec in PROFILES.items():
        if not args.check_only:
            profile = fit(name, spec, args.data, args.bin_s, args.match_s)
            PROFILE_DIR.mkdir(parents=True, exist_ok=True)
            (PROFILE_DIR / f"{name}.json").write_text(to_json(profile))
            print(f"wrote {PROFILE_DIR / (name + '.json')}")
        model = check(name)
        if not args.check_only:  # record the model's own figures next to the trace's
            profile = json.loads((PROFILE_DIR / f"{name}.json").read_text())
            profile["stats"]["model"] = model
            (PROFILE_DIR / f"{name}.json").write_text(to_json(profile))


if __name__ == "__main__":
    main()
