"""The scenario registry and the workload building blocks the scenarios need."""

from __future__ import annotations

import json
import math

import gymnasium as gym
import numpy as np
import pytest

import llmsched_env  # noqa: F401  (registers the envs)
from llmsched_env import scenarios
from llmsched_env.sim import ConfigError, EngineConfig, SimConfig, WorkloadConfig, simulate
from llmsched_env.sim.config import from_dict, load_yaml
from llmsched_env.sim.metrics import TimeSeries, backlog_trend
from llmsched_env.sim.predictors import PredictorConfig, make_predictor
from llmsched_env.sim.request import RequestBatch
from llmsched_env.sim.workload import generate, mean_lengths, sample_lengths

AZURE_CSV = "TIMESTAMP,ContextTokens,GeneratedTokens\n" + "".join(
    f"2023-11-16 18:00:{i:02d}.0000000,{10 + i},{1 + i}\n" for i in range(20)
)


def arrivals(cfg: WorkloadConfig, rate: float | None, seed: int) -> np.ndarray:
    return np.concatenate([b.arrival_time for b in generate(cfg, rate, seed)])


# -- the registry ------------------------------------------------------------------------------


def test_at_least_eight_scenarios_each_with_sources_and_a_description():
    names = scenarios.names()
    assert len(names) >= 8
    for required in ("chat-a100-40gb", "chat-bursty", "reasoning", "llama70b-2xa100", "code-long-prompt",
                     "agentic-multiturn", "mixed-slo", "default"):  # fmt: skip
        assert required in names
    for name in names:
        s = scenarios.get(name)
        assert s.name == name and s.sources and len(s.description) > 100 and s.summary
        assert isinstance(s.sim, SimConfig) and s.sim.load is not None
        assert s.env.episode_requests >= 500  # long enough for queues to form
    assert "default" not in scenarios.leaderboard() and len(scenarios.leaderboard()) >= 6


def test_every_scenario_yaml_loads_through_the_single_loader():
    for path in sorted(scenarios.SCENARIO_DIR.glob("*.yaml")):
        data = load_yaml(path)
        assert from_dict(scenarios.Scenario, data, str(path)) == scenarios.get(path.stem)
        # and a scenario survives the round trip through plain data
        assert from_dict(scenarios.Scenario, scenarios.get(path.stem).to_dict()) == scenarios.get(path.stem)


def test_sim_config_applies_overrides_and_keeps_the_evaluation_length():
    base = scenarios.get("chat-a100-40gb")
    config = scenarios.sim_config("chat-a100-40gb", load=0.9, max_num_seqs=64)
    assert config.load == 0.9 and config.engine.max_num_seqs == 64
    assert config.workload.num_requests == base.sim.workload.num_requests
    assert scenarios.sim_config("chat-a100-40gb", rate=2.0).load is None
    with pytest.raises(ConfigError, match="did you mean 'load'"):
        scenarios.sim_config("chat-a100-40gb", laod=0.9)
    with pytest.raises(ConfigError, match="did you mean 'reasoning'"):
        scenarios.get("reasonin")
    with pytest.raises(ConfigError, match="num_slots"):
        scenarios.sim_config("chat-a100-40gb", num_slots=8)


def test_gym_make_takes_a_scenario_and_flat_overrides():
    env = gym.make("llmsched/Serve-v2", scenario="mixed-slo", num_slots=16, num_requests=50)
    u = env.unwrapped
    assert u.num_slots == 16 and u.config.workload.num_requests == 50
    assert u.config.workload.lengths == "mixture" and u.config.class_names == ("interactive", "batch")
    obs, info = env.reset(seed=0)
    assert obs["requests"].shape[0] == 16
    default = gym.make("llmsched/Serve-v2").unwrapped
    assert default.scenario_name == "chat-a100-40gb" and default.config.engine.hardware == "llama2-7b/a100-40gb"
    v1 = gym.make("llmsched/Serve-v1").unwrapped
    assert v1.num_slots == 32 and v1.config.workload.num_requests == 200 and v1.config.engine.hardware == "llama2-7b/a100-poly"
    with pytest.raises(ConfigError, match="did you mean 'load'"):
        gym.make("llmsched/Serve-v2", laod=0.9)


def test_a40gb_capacity_comes_from_the_memory_model():
    from llmsched_env.sim import get_hardware

    # (0.9 x 40 GiB - 13.48 GB of weights) // (512 KiB x 4,096 tokens) = 11 requests of 256 blocks
    assert get_hardware("llama2-7b/a100-40gb").kv_capacity_blocks() == 11 * 256


# -- mixtures, PMFs, presets by path ------------------------------------------------------------


def test_mixture_draws_each_component_with_its_weight_and_class():
    cfg = WorkloadConfig(
        lengths="mixture",
        components=[
            {"weight": 3, "slo_class": "a", "lengths": "fixed", "prompt_mean": 10, "output_mean": 5},
            {"weight": 1, "slo_class": "b", "lengths": "fixed", "prompt_mean": 100, "output_mean": 50},
        ],
        num_requests=20_000,
    )
    assert cfg.class_names() == ("a", "b")
    assert mean_lengths(cfg) == pytest.approx((0.75 * 10 + 0.25 * 100, 0.75 * 5 + 0.25 * 50))
    batch = next(generate(cfg, 1.0, 7, chunk_size=20_000))
    is_b = batch.slo_class == 1
    assert np.all(batch.prompt_len[is_b] == 100) and np.all(batch.prompt_len[~is_b] == 10)
    assert is_b.mean() == pytest.approx(0.25, abs=0.01)
    # chunking and the component stream do not change the sequence
    small = np.concatenate([b.prompt_len for b in generate(cfg, 1.0, 7, chunk_size=333)])
    np.testing.assert_array_equal(small, batch.prompt_len)
    with pytest.raises(ConfigError, match="components"):
        WorkloadConfig(lengths="mixture")
    with pytest.raises(ConfigError, match=r"components\[0\].weight"):
        WorkloadConfig(lengths="mixture", components=[{"weight": 0, "lengths": "sharegpt"}])


def test_slo_classes_give_each_request_its_targets_and_per_class_attainment():
    cfg = SimConfig(
        workload=WorkloadConfig(
            lengths="mixture",
            num_requests=300,
            components=[{"weight": 1, "slo_class": "fast", "lengths": "sharegpt"}, {"weight": 1, "slo_class": "slow", "lengths": "sharegpt"}],
        ),
        slo_classes=[{"name": "fast", "ttft_s": 1e-6}, {"name": "slow", "ttft_s": 1e6}],
        load=0.5,
    )
    result = simulate(cfg, seed=1)
    s, rec = result.summary, result.records
    assert s["slo_attainment_fast"] == 0.0 and s["slo_attainment_slow"] == 1.0
    assert s["arrived_fast"] + s["arrived_slow"] == 300
    assert np.all(rec["ttft_slo_s"][rec["slo_class"] == 0] == 1e-6)
    with pytest.raises(ConfigError, match="slo_classes does not define"):
        SimConfig(workload=cfg.workload)


def test_pmf_lengths_in_servegens_format(tmp_path):
    path = tmp_path / "pmf.json"
    path.write_text(json.dumps({"components": [
        {"weight": 2, "input_tokens": "{10: 0.5, 20: 0.5}", "output_tokens": {"5": 1.0}},
        {"weight": 1, "prompt": {"100": 1}, "output": {"50": 0.25, "150": 0.75}},
    ]}))  # fmt: skip
    cfg = WorkloadConfig(lengths="pmf", pmf_path=str(path))
    # means: prompt 2/3 x 15 + 1/3 x 100, output 2/3 x 5 + 1/3 x 125
    assert mean_lengths(cfg) == pytest.approx((2 / 3 * 15 + 100 / 3, 2 / 3 * 5 + 125 / 3))
    prompt, output = sample_lengths(cfg, 60_000, 0)
    assert set(np.unique(prompt)) == {10, 20, 100} and set(np.unique(output)) == {5, 50, 150}
    assert prompt.mean() == pytest.approx(mean_lengths(cfg)[0], rel=0.02)
    assert np.all(output[prompt == 100] != 5)  # each component draws its own pair
    path.write_text("{}")
    load = __import__("llmsched_env.sim.workload", fromlist=["load_pmf_lengths"]).load_pmf_lengths
    load.cache_clear()
    with pytest.raises(ConfigError, match="pmf_path"):
        WorkloadConfig(lengths="pmf", pmf_path=str(path))


def test_a_length_preset_from_the_users_path(tmp_path):
    from llmsched_env.sim.workload import PRESET_DIR

    mine = tmp_path / "mine.json"
    mine.write_text((PRESET_DIR / "azure-conv.json").read_text())
    a = sample_lengths(WorkloadConfig(lengths=str(mine)), 1000, 3)
    b = sample_lengths(WorkloadConfig(lengths="azure-conv"), 1000, 3)
    np.testing.assert_array_equal(a[0], b[0])
    with pytest.raises(ConfigError, match="lengths"):
        WorkloadConfig(lengths=str(tmp_path / "missing.json"))


# -- seeded trace sampling ------------------------------------------------------------------------


def test_trace_rows_depend_on_the_seed_only_when_asked(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text(AZURE_CSV)
    file_order = WorkloadConfig(lengths="trace", trace_path=str(path), num_requests=5)
    assert [sample_lengths(file_order, 5, s)[0].tolist() for s in (0, 1)] == [[10, 11, 12, 13, 14]] * 2
    window = WorkloadConfig(lengths="trace", trace_path=str(path), num_requests=5, trace_order="window")
    starts = {int(sample_lengths(window, 5, s)[0][0]) for s in range(10)}
    assert len(starts) > 3  # seeds start at different rows
    rows = sample_lengths(window, 25, 4)[0]
    assert np.all((np.diff(rows) == 1) | (np.diff(rows) == -19))  # consecutive rows, cycling
    shuffled = WorkloadConfig(lengths="trace", trace_path=str(path), num_requests=500, trace_order="shuffle")
    p, o = sample_lengths(shuffled, 500, 2)
    np.testing.assert_array_equal(o, p - 9)  # rows stay whole
    assert len(set(p.tolist())) == 20 and not np.all(np.diff(p) == 1)
    with pytest.raises(ConfigError, match="trace_order"):
        WorkloadConfig(lengths="trace", arrival="trace", trace_path=str(path), trace_order="shuffle")


def test_trace_window_replays_paired_lengths_and_timestamps(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text(AZURE_CSV)
    cfg = WorkloadConfig(lengths="trace", arrival="trace", trace_path=str(path), num_requests=8, trace_order="window")
    for seed in range(6):
        batch = next(generate(cfg, None, seed))
        first = int(batch.prompt_len[0]) - 10  # the window's first row (row r has prompt 10 + r, arrives at r s)
        np.testing.assert_array_equal(batch.prompt_len, 10 + (first + np.arange(8)) % 20)
        # shifted to start at 0; a replay of the 20-s trace follows 20 s later, so the gaps stay 1 s
        np.testing.assert_allclose(batch.arrival_time, np.arange(8.0), atol=1e-9)


# -- arrival profiles --------------------------------------------------------------------------------


def test_a_profile_keeps_its_mean_rate_and_its_shape(tmp_path):
    path = tmp_path / "p.json"
    path.write_text(json.dumps({"bin_s": 10.0, "counts": [30, 0]}))  # 30 arrivals, then 10 s of none
    cfg = WorkloadConfig(arrival="profile", arrival_profile=str(path), num_requests=20_000)
    times = arrivals(cfg, 3.0, 0)  # the profile's mean rate is 1.5/s: time runs twice as fast
    assert (len(times) - 1) / times[-1] == pytest.approx(3.0, rel=0.02)
    # period 10 s of run time, on for 5 s: every arrival falls in one 5-s half of each period
    phase = np.sort(times % 10.0)
    gaps = np.diff(np.concatenate([phase, [phase[0] + 10.0]]))
    assert gaps.max() == pytest.approx(5.0, abs=0.05)
    assert np.all(np.diff(times) >= 0)
    np.testing.assert_array_equal(times, arrivals(cfg, 3.0, 0))
    assert not np.array_equal(times[:50], arrivals(cfg, 3.0, 1)[:50])  # seeded start in the profile


def test_the_azure_profile_is_bursty_at_the_minute_scale():
    cfg = WorkloadConfig(arrival="profile", arrival_profile="azure-conv", num_requests=19_000)
    times = arrivals(cfg, 5.53, 0)
    counts = np.bincount((times // 60).astype(int))[:-1]
    assert counts.var() / counts.mean() > 5  # Poisson would give 1; the trace gives 16


# -- predictions on long outputs -------------------------------------------------------------------------


def test_log_bins_keep_trails_accuracy_on_reasoning_lengths():
    prompt, output = sample_lengths(WorkloadConfig(lengths="servegen-deepseek-r1"), 40_000, 0)

    def relative_mae(cfg: PredictorConfig) -> tuple[float, float]:
        batch = RequestBatch(arrival_time=np.zeros(len(output)), prompt_len=prompt, output_len=output)
        make_predictor(cfg).annotate(batch, np.random.default_rng(0))
        owner = np.repeat(np.arange(len(output)), np.diff(batch.refresh_offsets))
        k = np.arange(batch.refresh_offsets[-1]) - batch.refresh_offsets[owner] + 1
        remaining = output[owner] - k * cfg.refresh_every
        initial = np.abs(batch.predicted_len - output).mean() / output.mean()
        refined = np.abs(batch.refresh_values - remaining).mean() / remaining.mean()
        return initial, refined

    log = relative_mae(PredictorConfig(kind="refining", bucket_scale="log", bucket_max=32768, num_buckets=60))
    assert log[0] == pytest.approx(0.179, abs=0.01) and log[1] == pytest.approx(0.148, abs=0.01)
    linear = relative_mae(PredictorConfig(kind="refining"))  # Trail's 0..512 bins on these outputs
    assert linear[0] > 0.6 and linear[1] > 0.6  # carry almost no information
    reasoning = scenarios.get("reasoning").sim.predictor
    assert (reasoning.bucket_scale, reasoning.num_buckets, reasoning.bucket_max) == ("log", 60, 32768)


# -- the stability verdict ---------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(3))
def test_stability_verdict_on_a_known_stable_bursty_case_and_a_known_unstable_one(seed):
    def verdict(load: float) -> str:
        cfg = SimConfig(
            engine=EngineConfig(hardware="llama2-7b/a100-40gb"),
            workload=WorkloadConfig(arrival="gamma", arrival_cv=3.0, num_requests=3000),
            load=load,
        )
        return simulate(cfg, seed=seed).summary["stability"]

    assert verdict(0.9) == "stable"  # Gamma CV 3 at load 0.9: stable in theory, bursts and all
    assert verdict(1.2) == "unstable"


def test_a_late_burst_of_arrivals_is_not_instability():
    # backlog that rises exactly with an arrival surplus late in the window
    t = np.linspace(0, 100, 200)
    excess = np.where(t > 60, (t - 60) * 0.5, 0.0)
    backlog = 10 + excess
    assert backlog_trend(t, backlog)[1] == "unstable"  # read alone it looks like growth
    assert backlog_trend(t, backlog, 0.0, excess)[1] == "stable"
    series = TimeSeries()
    series.add_arrival(1.5)
    assert series._arrivals_seen == 1 and not math.isnan(series.bin_s)


def test_the_one_run_cli_reports_seconds_and_takes_a_policy_and_a_scenario(capsys):
    from llmsched_env.__main__ import main

    assert main(["--scenario", "chat-a100-40gb", "--num-requests", "60", "--policy", "sjf"]) == 0
    out = capsys.readouterr().out
    assert "policy sjf" in out and " s, p50 " in out and " ms" not in out
    assert main(["--policy", "nope"]) == 2
    assert "baseline='nope'" in capsys.readouterr().err


def test_a_class_without_a_target_is_not_held_to_the_runs_target():
    from llmsched_env.sim.metrics import SLO, request_metrics, slo_met

    records = {
        "id": np.array([0, 1]), "arrival": np.array([0.0, 0.0]), "prompt_len": np.array([5, 5]), "output_len": np.array([1, 1]),
        "generated": np.array([1, 1]), "state": np.array([4, 4]), "first_scheduled": np.array([0.0, 0.0]),
        "first_token_time": np.array([5.0, 5.0]), "finish_time": np.array([5.0, 5.0]), "preemptions": np.zeros(2, int),
        "recompute_preemptions": np.zeros(2, int), "swap_preemptions": np.zeros(2, int), "restart_preemptions": np.zeros(2, int),
        "recomputed_tokens": np.zeros(2, int), "swapped_blocks": np.zeros(2, int), "predicted_len": np.ones(2),
        "slo_class": np.array([0, -1]), "ttft_slo_s": np.array([math.inf, math.inf]), "tpot_slo_s": np.array([math.inf, math.inf]),
    }  # fmt: skip
    # request 0 is of a class with no TTFT target (met); request 1 has no class: the run's 1 s target (missed)
    assert slo_met(request_metrics(records), SLO(ttft_s=1.0)).tolist() == [True, False]


def test_workload_kwargs_num_requests_is_the_episode_length_and_eval_flags_reach_scenarios():
    config, env = scenarios.resolve("chat-a100-40gb", workload_kwargs={"num_requests": 50})
    assert config.workload.num_requests == 50 and env.episode_requests == 50
    from eval.config import EvalConfig

    grid = EvalConfig.from_dict({"sim": {"predictor": {"kind": "oracle"}, "slo_ttft_s": 0.5}, "scenarios": ["chat-a100-40gb"]})
    (setting,) = grid.settings()
    assert setting.sim.predictor.kind == "oracle" and setting.sim.slo_ttft_s == 0.5
    with pytest.raises(ConfigError, match="sim.workload.arrival='gamma' is invalid with scenarios"):
        EvalConfig.from_dict({"sim": {"workload": {"arrival": "gamma"}}}).settings()


def test_an_older_training_config_keeps_its_env_defaults():
    from train.config import TrainConfig

    config = TrainConfig.from_dict({"env": "llmsched/Serve-v1", "env_kwargs": {"num_requests": 100}})
    assert config.scenario.name == "serve-v1" and config.scenario.env.slot_layout == "kv-first"
    assert config.scenario.sim.engine.hardware == "llama2-7b/a100-poly" and config.scenario.env.num_slots == 32
