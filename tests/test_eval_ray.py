"""The Ray backend of llmsched-eval (eval/ray_runner.py): the same grid gives the same results as the
local backend, results stream in as runs finish, and an interrupted run keeps what finished and
resumes (``--resume``) to the results of an uninterrupted one.

The Ray tests share one local Ray session (2 CPUs) and skip when Ray is absent (the ``ray`` extra)."""

from __future__ import annotations

import json

import pytest

from eval.cli import main
from eval.config import EvalConfig
from eval.policies import expand
from eval.runner import ResultWriter, build_grid, run_all
from llmsched_env.sim.validation import ConfigError

GRID = ["--policies", "fcfs", "sjf", "--scenarios", "chat-a100-40gb", "--num-requests", "60", "--seeds", "0", "1",
        "--no-plots", "--no-tensorboard"]  # fmt: skip


@pytest.fixture(scope="module")
def local_ray():
    """One local Ray session for the module (Ray's start-up costs seconds)."""
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


def test_config_checks_the_backend():
    with pytest.raises(ConfigError, match="backend='spark'"):
        EvalConfig(backend="spark")
    with pytest.raises(ConfigError, match="ray_address='auto' needs backend='ray'"):
        EvalConfig(ray_address="auto")
    assert EvalConfig(backend="ray", ray_address="auto").ray_address == "auto"


def records_without_timing(path):
    return [{k: v for k, v in record.items() if k != "wall_s"} for record in json.loads(path.read_text())]


def test_ray_backend_gives_the_local_results(local_ray, tmp_path):
    assert main([*GRID, "--out", str(tmp_path / "local"), "--jobs", "2"]) == 0
    assert main([*GRID, "--out", str(tmp_path / "ray"), "--backend", "ray"]) == 0
    local, on_ray = records_without_timing(tmp_path / "local" / "results.json"), records_without_timing(tmp_path / "ray" / "results.json")
    assert len(local) == 4 and on_ray == local
    assert (tmp_path / "ray" / "summary.md").read_text().split("runs in")[0] == (tmp_path / "local" / "summary.md").read_text().split("runs in")[0]
    assert local_ray.is_initialized()  # the session it found was not ended


def test_ray_backend_streams_results_and_stops_on_interrupt(local_ray, tmp_path):
    config = EvalConfig.from_dict({"policies": ["fcfs", "sjf"], "scenarios": ["chat-a100-40gb"], "num_requests": 60, "seeds": 3})
    runs = build_grid(config, expand(config.policies))
    writer = ResultWriter(tmp_path, save_requests=True)
    seen: list[int] = []

    def on_result(run, result):
        writer.add(run, result)
        seen.append(run.index)
        if len(seen) == 2:
            assert len(json.loads((tmp_path / "results.json").read_text())) == 2  # written as runs finish
            raise KeyboardInterrupt

    assert run_all(runs, 1, on_result, backend="ray") is False  # one run in flight at a time
    assert len(seen) == 2 and len(writer.results) == 2
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == [f"{i:05d}.npz" for i in sorted(seen)]
    # the session still works after the cancelled tasks
    assert run_all(runs[:2], 0, lambda run, result: seen.append(run.index), backend="ray") is True


def test_an_interrupted_ray_evaluation_resumes_to_the_local_results(local_ray, tmp_path, monkeypatch, capsys):
    assert main([*GRID, "--out", str(tmp_path / "whole"), "--jobs", "1"]) == 0
    real_add = ResultWriter.add

    def add_then_interrupt(self, run, result):
        real_add(self, run, result)
        if len(self.results) == 2:
            raise KeyboardInterrupt  # Ctrl-C in the driver, while it waits for the tasks

    monkeypatch.setattr(ResultWriter, "add", add_then_interrupt)
    resumed = tmp_path / "resumed"
    assert main([*GRID, "--out", str(resumed), "--backend", "ray", "--jobs", "1"]) == 130
    assert len(json.loads((resumed / "results.json").read_text())) == 2
    monkeypatch.setattr(ResultWriter, "add", real_add)
    assert main([*GRID, "--out", str(resumed), "--backend", "ray", "--resume"]) == 0
    assert "resuming: 2 of 4 runs finished earlier, 2 to run" in capsys.readouterr().err
    assert records_without_timing(resumed / "results.json") == records_without_timing(tmp_path / "whole" / "results.json")


def test_without_ray_the_backends_say_how_to_install_it(monkeypatch, tmp_path, capsys):
    import sys

    import train
    from eval.policies import load_model
    from train.cli import main as train_main

    for name in ("ray", "ray.rllib", "train.rllib"):
        monkeypatch.setitem(sys.modules, name, None)  # what an install without the extra sees
    monkeypatch.delattr(train, "rllib", raising=False)  # imported by another test module
    assert main([*GRID, "--out", str(tmp_path / "eval"), "--backend", "ray"]) == 2
    assert 'pip install -e ".[ray]"' in capsys.readouterr().err and not (tmp_path / "eval").exists()
    assert train_main(["--backend", "rllib", "--out", str(tmp_path / "run")]) == 2
    assert 'pip install -e ".[ray]"' in capsys.readouterr().err
    (tmp_path / "checkpoint").mkdir()
    with pytest.raises(ConfigError, match=r'pip install -e "\.\[ray\]"'):
        load_model(f"rllib:{tmp_path / 'checkpoint'}")
