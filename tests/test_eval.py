"""The evaluation CLI: outputs, agreement with the simulator API, common random numbers,
TensorBoard tags, plots, statistics, capacity bisection, interrupts and bad input."""

from __future__ import annotations

import csv
import json
import math
import os
import sys
import types
from pathlib import Path

import numpy as np
import pytest

import baselines
from eval import EvalConfig, load_eval_config
from eval.aggregate import Cell, Metric, mean_ci, paired_ratio, t_quantile, winner
from eval.capacity import CapacitySearch, Probe, next_probes, probe_passes, record_probe
from eval.cli import main
from eval.config import DEFAULT_SIM, CapacityConfig
from llmsched_env.sim import FCFS, WorkloadConfig, simulate
from llmsched_env.sim.validation import ConfigError

REPO = Path(__file__).resolve().parents[1]
FIXTURES = Path(__file__).resolve().parent / "fixtures"
TINY = ["--workloads", "sharegpt", "--policies", "fcfs", "sjf", "--loads", "0.6", "0.9", "--num-seeds", "2", "--num-requests", "40"]


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory) -> Path:
    """The default evaluation shrunk to 2 policies x 2 loads x 2 seeds x 40 requests, on 2 processes."""
    out = tmp_path_factory.mktemp("eval") / "out"
    assert main(TINY + ["--jobs", "2", "--out", str(out)]) == 0
    return out


def load_records(out: Path) -> list[dict]:
    return json.loads((out / "results.json").read_text())


def same(a, b) -> bool:
    """Equal, with JSON's null standing for NaN."""
    if a is None or (isinstance(a, float) and math.isnan(a)):
        return b is None or (isinstance(b, float) and math.isnan(b))
    return a == b


# -- outputs ----------------------------------------------------------------------------------------


def test_outputs_exist_and_parse(tiny_run):
    records = load_records(tiny_run)
    assert len(records) == 2 * 2 * 2
    assert {(r["policy"], r["load"], r["seed"]) for r in records} == {
        (p, x, s) for p in ("fcfs", "sjf") for x in (0.6, 0.9) for s in (0, 1)
    }
    with open(tiny_run / "results.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == len(records)
    assert float(rows[0]["e2e_mean_s"]) == records[0]["e2e_mean_s"]
    summary = (tiny_run / "summary.md").read_text()
    assert "sharegpt · llama2-7b/a100 · load 0.9 · 2 seeds" in summary and "| sjf |" in summary
    with open(tiny_run / "aggregate.csv") as f:
        assert len(list(csv.DictReader(f))) == 2 * 2
    for name in ("latency_vs_load", "throughput_vs_load", "cdf"):
        assert (tiny_run / "plots" / f"sharegpt-{name}.png").is_file()
    assert len(list((tiny_run / "runs").glob("*.npz"))) == len(records)
    # the resolved config reads back as the config that ran
    config = load_eval_config(tiny_run / "config.yaml")
    assert config.policies == ("fcfs", "sjf") and config.loads == (0.6, 0.9) and config.seeds == (0, 1)
    assert config.sim.workload.num_requests == 40 and config.out == str(tiny_run)


def test_results_equal_the_simulator_api(tiny_run):
    for rec in load_records(tiny_run):
        config = DEFAULT_SIM.replace(workload=WorkloadConfig(lengths="sharegpt", num_requests=40), load=rec["load"])
        summary = simulate(config, baselines.parse(rec["policy"]), seed=rec["seed"]).summary
        assert set(summary) <= set(rec)
        for key, value in summary.items():
            assert same(value, rec[key]), (rec["policy"], rec["load"], rec["seed"], key)


def test_common_random_numbers_across_policies(tiny_run):
    runs = {}
    for rec in load_records(tiny_run):
        runs[(rec["policy"], rec["load"], rec["seed"])] = np.load(tiny_run / rec["requests_file"])
    for load in (0.6, 0.9):
        for seed in (0, 1):
            a, b = runs[("fcfs", load, seed)], runs[("sjf", load, seed)]
            for name in ("id", "arrival", "prompt_len", "output_len", "predicted_len"):
                np.testing.assert_array_equal(a[name], b[name])
    # ... and different seeds are different workloads
    assert not np.array_equal(runs[("fcfs", 0.9, 0)]["output_len"], runs[("fcfs", 0.9, 1)]["output_len"])


def test_tensorboard_tags(tiny_run):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    records = [r for r in load_records(tiny_run) if r["policy"] == "sjf" and r["load"] == 0.9]
    for policy in ("fcfs", "sjf"):
        acc = EventAccumulator(str(tiny_run / "tb" / policy), size_guidance={"histograms": 0, "scalars": 0})
        acc.Reload()
        tags = acc.Tags()
        for tag in ("e2e_mean_s/sharegpt", "ttft_p99_s/sharegpt", "output_tokens_per_s/sharegpt", "e2e_mean_s_vs_fcfs/sharegpt"):
            assert tag in tags["scalars"]
        assert {"e2e_s/sharegpt", "ttft_s/sharegpt"} <= set(tags["histograms"])
        assert [e.step for e in acc.Scalars("e2e_mean_s/sharegpt")] == [600, 900]
        assert "_hparams_/experiment" in acc.PluginTagToContent("hparams")
    # the scalar is the mean over seeds (stored as float32)
    last = acc.Scalars("e2e_mean_s/sharegpt")[-1].value
    assert last == pytest.approx(np.mean([r["e2e_mean_s"] for r in records]), rel=1e-6)
    plots = EventAccumulator(str(tiny_run / "tb" / "_plots"))
    plots.Reload()
    assert "plots/sharegpt-latency_vs_load" in plots.Tags()["images"]


def test_plots_are_valid_png(tiny_run):
    import matplotlib.image

    path = tiny_run / "plots" / "sharegpt-latency_vs_load.png"
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    image = matplotlib.image.imread(path)
    assert image.ndim == 3 and image.shape[0] > 100 and image.shape[1] > 100


def test_console_table_marks_winners(tiny_run, capsys):
    summary = (tiny_run / "summary.md").read_text()
    assert "★" in summary or "☆" in summary
    assert "×fcfs" in summary and "±" in summary


# -- statistics -------------------------------------------------------------------------------------


def test_t_quantiles():
    for df, expected in ((1, 12.7062047362), (2, 4.30265272975), (4, 2.77644510520), (29, 2.04522964213)):
        assert t_quantile(0.975, df) == pytest.approx(expected, abs=1e-8)


def test_mean_ci_by_hand():
    mean, hw = mean_ci([1.0, 2.0, 3.0])  # s = 1, n = 3
    assert mean == 2.0 and hw == pytest.approx(4.30265272975 / math.sqrt(3), rel=1e-9)
    assert mean_ci([5.0]) == (5.0, pytest.approx(math.nan, nan_ok=True))
    assert mean_ci([2.0, float("nan"), 4.0])[0] == 3.0  # NaN seeds are left out


def test_paired_ratio_by_hand():
    # per-seed ratios 2 and 4: geometric mean sqrt(8); log ratios ln2, 2ln2 with s = ln2/sqrt(2)
    ratio, low, high = paired_ratio({0: 2.0, 1: 8.0, 5: 1.0}, {0: 1.0, 1: 2.0})
    half = 12.7062047362 * (math.log(2) / math.sqrt(2)) / math.sqrt(2)
    assert ratio == pytest.approx(math.sqrt(8))
    assert (low, high) == (pytest.approx(math.exp(1.5 * math.log(2) - half)), pytest.approx(math.exp(1.5 * math.log(2) + half)))
    assert all(math.isnan(v) for v in paired_ratio({0: 0.0}, {0: 1.0}))  # not defined for zeros


def test_winner_and_significance():
    def cell(policy, values):
        c = Cell(("w", "h", None), 0.9, policy, values={"m": dict(enumerate(values))})
        c.mean["m"] = float(np.mean(values))
        return c

    lower = Metric("m", "m", "lower")
    # b beats a by exactly 1 on every seed: significant
    assert winner([cell("a", [3.0, 4.0, 5.0]), cell("b", [2.0, 3.0, 4.0])], lower) == ("b", True)
    # b is better on average but not on every seed: within noise
    assert winner([cell("a", [3.0, 4.0, 5.0]), cell("b", [1.0, 5.0, 4.5])], lower) == ("b", False)
    assert winner([cell("a", [3.0, 4.0, 5.0]), cell("b", [2.0, 3.0, 4.0])], Metric("m", "m", "higher")) == ("a", True)
    assert winner([cell("a", [1.0, 2.0]), cell("b", [1.0, 2.0])], lower) is None  # a tie
    assert winner([cell("a", [1.0, 2.0])], lower) is None


# -- capacity -------------------------------------------------------------------------------------------


def bisect(threshold: float, low=0.1, high=1.5, tolerance=0.02) -> CapacitySearch:
    """Drive a search with a synthetic criterion: passes iff x <= threshold."""
    search = CapacitySearch(("w", "h", None), "p", low, high)
    while probes := next_probes(search, tolerance):
        for x in probes:
            record_probe(search, Probe(x, x <= threshold, [], math.nan))
    return search


def test_capacity_bisection_by_hand():
    search = bisect(0.97)
    # ends, then 0.8 pass, 1.15 fail, 0.975 fail, 0.8875 pass, 0.93125 pass, 0.953125 pass, 0.9640625 pass
    assert [p.x for p in search.probes] == pytest.approx([0.1, 1.5, 0.8, 1.15, 0.975, 0.8875, 0.93125, 0.953125, 0.9640625])
    assert search.done and search.capacity == pytest.approx(0.9640625) and search.high == pytest.approx(0.975)
    assert search.note == ""
    below = bisect(0.05)
    assert math.isnan(below.capacity) and "low end" in below.note and len(below.probes) == 2
    above = bisect(2.0)
    assert above.capacity == 1.5 and "high end" in above.note


def test_probe_criteria():
    stable = CapacityConfig(criterion="stable")
    assert probe_passes([{"stability": "stable", "slo_attainment": 0.1}] * 2, stable)
    assert not probe_passes([{"stability": "stable"}, {"stability": "inconclusive"}], stable)
    slo = CapacityConfig(criterion="slo", slo_attainment=0.9)
    assert probe_passes([{"slo_attainment": 0.8}, {"slo_attainment": 1.0}], slo)  # mean 0.9
    assert not probe_passes([{"slo_attainment": 0.85}, {"slo_attainment": 0.94}], slo)


def test_capacity_search_end_to_end(tmp_path):
    out = tmp_path / "cap"
    argv = TINY[:5] + ["--loads", "0.9", "--num-seeds", "2", "--num-requests", "30", "--capacity", "slo"]
    argv += ["--capacity-requests", "60", "--set", "capacity.tolerance=0.3", "--jobs", "1", "--no-tensorboard", "--out", str(out)]
    assert main(argv) == 0
    searches = json.loads((out / "capacity.json").read_text())
    assert [s["policy"] for s in searches] == ["fcfs", "sjf"]
    for s in searches:
        assert s["done"] and s["probes"]
        assert s["capacity"] is None or 0.1 <= s["capacity"] <= 1.5
        passing = [p["x"] for p in s["probes"] if p["passed"]]
        if s["capacity"] is not None:
            assert s["capacity"] == max(passing)
    assert "capacity: highest load" in (out / "summary.md").read_text()
    assert (out / "plots" / "capacity.png").read_bytes()[:4] == b"\x89PNG"


# -- policies, workloads, interrupts ----------------------------------------------------------------------


def test_trained_model_hook(tmp_path, monkeypatch):
    agents = types.ModuleType("train.agents")
    agents.load_policy = lambda path: FCFS()  # stands in for an SB3 agent
    monkeypatch.setitem(sys.modules, "train.agents", agents)
    model = tmp_path / "my_agent.zip"
    model.write_bytes(b"PK")
    out = tmp_path / "out"
    argv = ["--policies", "fcfs", str(model), "--loads", "0.8", "--num-seeds", "1", "--num-requests", "30"]
    assert main(argv + ["--jobs", "1", "--no-plots", "--no-tensorboard", "--out", str(out)]) == 0
    by_policy = {r["policy"]: r for r in load_records(out)}
    assert by_policy["my_agent"]["policy_kind"] == "model"
    assert by_policy["my_agent"]["e2e_mean_s"] == by_policy["fcfs"]["e2e_mean_s"]


def test_model_without_training_package(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "train.agents", None)  # import fails
    model = tmp_path / "agent.zip"
    model.write_bytes(b"PK")
    assert main(["--policies", str(model), "--out", str(tmp_path / "o")]) == 2
    assert "train.agents.load_policy" in capsys.readouterr().err


def test_rates_and_trace_workload(tmp_path):
    out = tmp_path / "out"
    trace = str(FIXTURES / "azure_small.csv")
    argv = ["--policies", "fcfs", "--workloads", trace, "--rates", "2.0", "--num-seeds", "1", "--num-requests", "30"]
    assert main(argv + ["--jobs", "1", "--no-plots", "--no-tensorboard", "--out", str(out)]) == 0
    (rec,) = load_records(out)
    assert rec["workload"] == "azure_small" and rec["rate"] == 2.0 and rec["load"] is None
    assert rec["arrival_rate_per_s"] == 2.0 and rec["arrived"] == 30


def test_interrupt_keeps_finished_runs(tmp_path, monkeypatch, capsys):
    import eval.runner

    real = eval.runner.execute
    calls = []

    def flaky(run):
        calls.append(run)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(run)

    monkeypatch.setattr(eval.runner, "execute", flaky)
    out = tmp_path / "out"
    assert main(TINY + ["--jobs", "1", "--no-tensorboard", "--out", str(out)]) == 130
    assert len(load_records(out)) == 2
    assert "interrupted: 2 of 8 runs finished" in capsys.readouterr().err
    assert "| fcfs |" in (out / "summary.md").read_text()


def _interrupt_at(monkeypatch, call: int) -> list:
    """Make the grid's ``call``-th cell raise KeyboardInterrupt (Ctrl-C); returns the cells run."""
    import eval.runner

    real = eval.runner.execute
    calls: list = []

    def flaky(run):
        calls.append(run)
        if len(calls) == call:
            raise KeyboardInterrupt
        return real(run)

    monkeypatch.setattr(eval.runner, "execute", flaky)
    return calls


def _csv_without_timing(path: Path) -> list[dict]:
    with open(path) as f:
        return [{k: v for k, v in row.items() if not k.startswith("wall_s")} for row in csv.DictReader(f)]


def _without_timing(path: Path) -> str:
    return "\n".join(line for line in path.read_text().splitlines() if " runs in " not in line)


@pytest.mark.parametrize("extra", [[], ["--no-requests"]])
def test_resume_gives_the_results_of_an_uninterrupted_run(tmp_path, monkeypatch, capsys, extra):
    argv = TINY + ["--jobs", "1", "--no-tensorboard", "--no-plots", *extra]
    assert main(argv + ["--out", str(tmp_path / "whole")]) == 0
    _interrupt_at(monkeypatch, 4)
    resumed = tmp_path / "resumed"
    assert main(argv + ["--out", str(resumed)]) == 130
    assert "--resume continues it" in capsys.readouterr().err
    calls = _interrupt_at(monkeypatch, 0)
    assert main(argv + ["--out", str(resumed), "--resume"]) == 0
    assert len(calls) == 8 - 3  # only the cells that had not finished ran again
    assert "resuming: 3 of 8 runs finished earlier, 5 to run" in capsys.readouterr().err
    whole, again = load_records(tmp_path / "whole"), load_records(resumed)
    assert [{k: v for k, v in r.items() if k != "wall_s"} for r in whole] == [{k: v for k, v in r.items() if k != "wall_s"} for r in again]
    assert _csv_without_timing(tmp_path / "whole" / "aggregate.csv") == _csv_without_timing(resumed / "aggregate.csv")
    assert _without_timing(tmp_path / "whole" / "summary.md") == _without_timing(resumed / "summary.md")
    assert (resumed / "runs").exists() == (not extra)  # without requests, the resume data is gone once done


def test_resume_needs_the_same_evaluation(tmp_path, capsys):
    argv = ["--policies", "fcfs", "--loads", "0.5", "--num-seeds", "1", "--num-requests", "20", "--jobs", "1", "--no-tensorboard",
            "--workloads", "sharegpt"]  # fmt: skip
    assert main(argv + ["--out", str(tmp_path / "none"), "--resume"]) == 2
    assert "holds no earlier evaluation" in capsys.readouterr().err
    assert main(argv + ["--out", str(tmp_path / "a")]) == 0
    assert main(argv[:3] + ["0.6"] + argv[4:] + ["--out", str(tmp_path / "a"), "--resume"]) == 2
    assert "holds a different evaluation" in capsys.readouterr().err
    assert main(argv + ["--out", str(tmp_path / "a"), "--resume", "--overwrite"]) == 2
    assert main(argv + ["--out", str(tmp_path / "a"), "--resume"]) == 0  # nothing left to run
    assert "1 of 1 runs finished earlier, 0 to run" in capsys.readouterr().err


def test_ctrl_c_stops_the_workers_at_once(tmp_path):
    """A real Ctrl-C (SIGINT) with worker processes busy: exit 130 within seconds, no process left."""
    import signal
    import subprocess
    import time

    argv = ["--policies", "fcfs", "sjf", "--loads", "0.95", "--num-seeds", "2", "--num-requests", "300000", "--jobs", "2"]
    code = "import sys; from eval.cli import main; sys.exit(main(sys.argv[1:]))"
    process = subprocess.Popen(
        [sys.executable, "-c", code, *argv, "--no-plots", "--no-tensorboard", "--out", str(tmp_path / "out")],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, cwd=REPO,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )  # fmt: skip

    def children() -> list[int]:
        found = []
        for entry in Path("/proc").iterdir():
            try:
                if entry.name.isdigit() and int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == process.pid:
                    found.append(int(entry.name))
            except (OSError, ValueError, IndexError):
                pass
        return found

    workers: list[int] = []
    try:
        deadline = time.monotonic() + 60
        while len(children()) < 3 and time.monotonic() < deadline:  # two workers and the resource tracker
            time.sleep(0.1)
        workers = children()
        time.sleep(1.0)  # the workers are busy simulating
        process.send_signal(signal.SIGINT)
        start = time.monotonic()
        _, err = process.communicate(timeout=30)
        assert process.returncode == 130, err
        assert time.monotonic() - start < 10
        assert "stopping 2 worker processes" in err and "Traceback" not in err
        deadline = time.monotonic() + 10
        while any(Path(f"/proc/{pid}").exists() for pid in workers) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not any(Path(f"/proc/{pid}").exists() for pid in workers)
    finally:  # never leave the test's own processes behind
        for pid in [process.pid, *workers]:
            try:
                os.kill(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        process.wait()


def test_rerun_replaces_outputs_and_refuses_foreign_folders(tmp_path, capsys):
    out = tmp_path / "out"
    argv = ["--policies", "fcfs", "--loads", "0.5", "--num-seeds", "1", "--num-requests", "20", "--jobs", "1", "--no-tensorboard"]
    assert main(argv + ["--out", str(out)]) == 0
    assert main(argv + ["--no-plots", "--out", str(out)]) == 0
    assert not (out / "plots").exists()  # the earlier run's plots are gone
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    assert main(argv + ["--out", str(foreign)]) == 2
    assert (foreign / "notes.txt").read_text() == "keep me"


def test_all_baselines_expands_to_the_registry():
    from eval.policies import expand

    assert [e.label for e in expand(("all-baselines",))] == baselines.available()
    assert [e.label for e in expand(("fcfs", "all-baselines", "trail:C=0.5"))][-1] == "trail:C=0.5"


# -- configs and bad input -------------------------------------------------------------------------------


def test_default_yaml_is_the_builtin_default():
    assert load_eval_config(REPO / "configs" / "eval" / "default.yaml") == EvalConfig()
    for path in (REPO / "configs" / "eval").glob("*.yaml"):
        load_eval_config(path)  # every example is valid


@pytest.mark.parametrize(
    "argv, words",
    [
        (["--policies", "nosuch"], ["unknown policy 'nosuch'", "fcfs", "trail"]),
        (["--policies", "missing/agent.zip"], ["missing/agent.zip", "does not exist"]),
        (["--workloads", "/no/such/trace.csv"], ["trace file", "does not exist"]),
        (["--workloads", "nosuch"], ["workloads[0]='nosuch'", "sharegpt"]),
        (["--loads", "0.5", "-2"], ["loads[1]=-2.0"]),
        (["--set", "sim.engine.batching=fast"], ["sim.engine.batching='fast'", "sarathi"]),
        (["--set", "loadz=[1]"], ["unknown key(s) 'loadz'"]),
        (["--reference", "srpt", "--policies", "fcfs"], ["reference='srpt'"]),
        (["--hardware", "tpu"], ["hardware[0]='tpu'", "llama2-7b/a100"]),
        (["--capacity-requests", "100"], ["--capacity"]),
    ],
)
def test_bad_input_is_one_line_and_exit_2(argv, words, tmp_path, capsys):
    assert main(argv + ["--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("llmsched-eval: error: ") and err.count("\n") == 1 and "Traceback" not in err
    for word in words:
        assert word in err


@pytest.mark.parametrize(
    "text, words",
    [
        ("loads: [0.5\n", ["not valid YAML"]),
        ("loadz: [0.5]\n", ["unknown key(s) 'loadz'", "loads"]),
        ("seeds: -1\n", ["seeds=-1"]),
        ("sim: {workload: {num_requests: 0}}\n", ["num_requests=0"]),
        ("sim: {load: 0.5}\n", ["sim.load is set by the grid"]),
        ("loads: [0.5]\nrates: [2.0]\n", ["at most one of them"]),
        ("scenarios: [chat-a100-40gb, nope]\n", ["scenarios[1]", "scenario='nope'"]),
        ("capacity: {criterion: best}\n", ["capacity.criterion='best'"]),
        ("workloads: [{lengths: lognormal}]\n", ["workloads[0].name"]),
    ],
)
def test_bad_yaml_is_one_line_and_exit_2(text, words, tmp_path, capsys):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    assert main(["--config", str(path), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err and str(path) in err
    for word in words:
        assert word in err


@pytest.mark.parametrize("argv, words", [(["--loads", "abc"], ["--loads", "invalid"]), (["--loads", "0.5", "--rates", "1"], ["not allowed"])])
def test_flag_mistakes_are_one_line_and_exit_2(argv, words, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("llmsched-eval: error: ") and err.count("\n") == 1
    for word in words:
        assert word in err


def test_an_unwritable_out_folder_is_one_line_and_exit_2(tmp_path, capsys):
    blocked = tmp_path / "file"
    blocked.write_text("")
    assert main(["--policies", "fcfs", "--out", str(blocked / "sub")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("llmsched-eval: error: out=") and "cannot be written" in err and err.count("\n") == 1


def test_unreadable_trace_is_a_clear_error(tmp_path, capsys):
    trace = tmp_path / "broken.csv"
    trace.write_text("TIMESTAMP,ContextTokens,GeneratedTokens\nyesterday,ten,5\n")
    assert main(["--workloads", str(trace), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "broken.csv" in err and "line 2" in err


def test_list(capsys):
    assert main(["--list"]) == 0
    text = capsys.readouterr().out
    assert all(name in text for name in baselines.available()) and "vllm" in text and "sharegpt" in text


def test_bare_hardware_lists_the_presets_with_their_capacity(capsys):
    assert main(["--hardware"]) == 0
    text = capsys.readouterr().out
    assert "llama3-8b/a100-40gb" in text and "10,752" in text and "KV blocks" in text


@pytest.mark.slow
def test_the_real_default_runs(tmp_path, monkeypatch):
    """``llmsched-eval`` with no arguments (about a minute on two cores)."""
    monkeypatch.chdir(tmp_path)
    assert main([]) == 0
    records = load_records(tmp_path / "eval_out" / "default")
    from eval.policies import MODELS_DIR
    from llmsched_env import scenarios

    from eval.policies import home_scenario

    board = scenarios.leaderboard()
    agents = sum(home_scenario(p) in board for p in MODELS_DIR.glob("*.zip"))  # each on its own scenario
    assert len(records) == (len(baselines.available()) * len(board) + agents) * 5
    summary = (tmp_path / "eval_out" / "default" / "summary.md").read_text()
    assert "leaderboard: mean latency × fcfs" in summary and "geomean" in summary


def test_a_different_grid_never_silently_replaces_earlier_results(tmp_path, capsys):
    out = tmp_path / "out"
    argv = ["--workloads", "sharegpt", "--policies", "fcfs", "--loads", "0.5", "--num-seeds", "1", "--num-requests", "20",
            "--jobs", "1", "--no-tensorboard", "--no-plots", "--out", str(out)]  # fmt: skip
    assert main(argv) == 0
    assert main(argv) == 0  # the same evaluation again: replaced
    other = [a if a != "0.5" else "0.6" for a in argv]
    assert main(other) == 2
    assert "holds the results of a different evaluation" in capsys.readouterr().err
    assert json.loads((out / "results.json").read_text())[0]["load"] == 0.5  # untouched
    assert main(other + ["--overwrite"]) == 0
    assert json.loads((out / "results.json").read_text())[0]["load"] == 0.6
    with pytest.raises(SystemExit) as exit_:
        main(["--seeds", "42", "--num-seeds", "2"])  # one spelling at a time
    assert exit_.value.code == 2


def test_a_bundled_agent_of_a_scenario_grid_runs_on_its_own_scenario():
    from eval.config import EvalConfig
    from eval.policies import PolicyEntry
    from eval.runner import build_grid

    config = EvalConfig(scenarios=("chat-a100-40gb", "mixed-slo"), policies=("fcfs",), seeds=2)
    entries = [PolicyEntry("fcfs", "fcfs", "baseline"), PolicyEntry("agent", "a.zip", "model", home="mixed-slo")]
    runs = build_grid(config, entries)
    assert sorted({(r.policy.label, r.workload) for r in runs}) == [
        ("agent", "mixed-slo"), ("fcfs", "chat-a100-40gb"), ("fcfs", "mixed-slo")
    ]  # fmt: skip


# -- cluster scenarios: routers compared on replicas ----------------------------------------------


def test_a_cluster_grid_compares_routers_and_matches_the_cluster_directly(tmp_path):
    from baselines.routing import available_routers, make_router
    from llmsched_env import scenarios
    from llmsched_env.sim.cluster import Cluster

    config = EvalConfig(scenarios=("clusters",))
    assert set(config.scenarios) == set(scenarios.cluster_names())
    assert config.policies == ("all-routers",) and config.reference == "round-robin"  # the cluster defaults
    out = tmp_path / "c"
    args = ["--scenarios", "cluster-hetero", "--policies", "round-robin", "least-outstanding", "--num-seeds", "2"]
    assert main(args + ["--num-requests", "60", "--jobs", "1", "--out", str(out)]) == 0
    records = load_records(out)
    assert len(records) == 4 and {r["policy_kind"] for r in records} == {"router"}
    assert records[0]["hardware"] == "2x llama2-7b/a100 + 2x llama2-7b/h100" and records[0]["replicas"] == 4
    for rec in records:  # each run is exactly the cluster driven by the router
        cluster = scenarios.cluster_config("cluster-hetero", num_requests=60).replace(seed=rec["seed"])
        direct = Cluster(cluster, seed=rec["seed"]).run(make_router(rec["policy"])).summary
        assert rec["e2e_mean_s"] == pytest.approx(direct["e2e_mean_s"], rel=1e-12)
        assert rec["prefix_hit_rate_tokens"] == pytest.approx(direct["prefix_hit_rate_tokens"], rel=1e-12)
    assert "round-robin" in (out / "summary.md").read_text()
    assert len(available_routers()) == 7


def test_cluster_and_single_engine_scenarios_are_not_mixed_and_routers_need_clusters():
    from eval.policies import expand
    from eval.runner import build_grid

    with pytest.raises(ConfigError, match="separate grids"):
        EvalConfig(scenarios=("cluster-hetero", "chat-a100-40gb"))
    with pytest.raises(ConfigError, match="capacity search runs single engines"):
        EvalConfig(scenarios=("cluster-hetero",), capacity=CapacityConfig())
    with pytest.raises(ConfigError, match="need cluster scenarios"):
        build_grid(EvalConfig(scenarios=("chat-a100-40gb",)), expand(("fcfs", "least-kv")))
    with pytest.raises(ConfigError, match="compares routers; not routers: fcfs"):
        build_grid(EvalConfig(scenarios=("cluster-hetero",)), expand(("fcfs", "least-kv")))
    assert "cluster-hetero" not in EvalConfig(scenarios=("all",)).scenarios  # all: the single-engine ones
    with pytest.raises(ConfigError, match="router"):
        expand(("prefix-affinity:nope=1",))
