"""The validation suite (benchmarks/validation): the M/G/1 formulas on hand-computed cases, the
token accounting the cases rely on, the robust verdicts of the fast cases, and the report."""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # benchmarks/ is not an installed package: import it from the checkout
    sys.path.insert(0, str(ROOT))

import baselines  # noqa: E402
from benchmarks.validation import CASES, cluster, li_dai_peng, queueing, run  # noqa: E402
from benchmarks.validation.common import token_backlog  # noqa: E402
from benchmarks.validation.sarathi import TokenGaps, run_with_gaps  # noqa: E402
from llmsched_env.sim import (  # noqa: E402
    EngineConfig,
    LinearCostModel,
    RequestBatch,
    SimConfig,
    WorkloadConfig,
    get_hardware,
)
from llmsched_env.sim.engine import Engine  # noqa: E402
from llmsched_env.sim.request import RecordBuffer  # noqa: E402
from llmsched_env.sim.workload import sample_lengths  # noqa: E402


def constant(ms: float, prefill_token_ms: float = 0.0) -> LinearCostModel:
    return LinearCostModel(intercept_ms=ms, prefill_token_ms=prefill_token_ms, decode_ms=0.0, decode_ctx_ms=0.0, name="constant")


def batch(arrival: list[float], prompt: list[int], output: list[int]) -> RequestBatch:
    return RequestBatch(
        arrival_time=np.asarray(arrival, dtype=float),
        prompt_len=np.asarray(prompt, dtype=np.int64),
        output_len=np.asarray(output, dtype=np.int64),
        predicted_len=np.asarray(output, dtype=float),
    )


# ------------------------------------------------------------------------------------------------
# Case 5: the formulas


def test_mg1_formulas_two_point_distribution_by_hand():
    # sizes 1 and 2 (c = 1) with probability 1/2, lambda = 0.4: E[S] = 1.5, rho = 0.6, E[S^2] = 2.5
    f = queueing.mg1_means(np.array([1, 2]), np.array([0.5, 0.5]), 0.4, 1.0)
    assert f["rho"] == pytest.approx(0.6)
    assert f["fcfs"] == pytest.approx(1.5 + 0.4 * 2.5 / (2 * 0.4))  # 2.75
    # SJF (Cobham): W0 = 0.5; T(1) = 1 + 0.5 / (1 x 0.8) = 1.625; T(2) = 2 + 0.5 / (0.8 x 0.4) = 3.5625
    assert f["sjf"] == pytest.approx((1.625 + 3.5625) / 2)
    # SRPT: T(1) = 0.25 + 1 = 1.25; T(2) = (1.0 / 0.8) / 0.8 + (1 + 1 / 0.8) = 3.8125
    assert f["srpt"] == pytest.approx((1.25 + 3.8125) / 2)


def test_mg1_formulas_agree_for_one_job_size():
    # every job the same size: no order helps, and SRPT never preempts (an arrival is never shorter)
    k, p, lam, c = np.arange(1, 6), np.array([0, 0, 0, 0, 1.0]), 0.1, 1.0
    f = queueing.mg1_means(k, p, lam, c)
    md1 = 5 + lam * 25 / (2 * (1 - lam * 5))
    assert f["fcfs"] == pytest.approx(md1)
    assert f["sjf"] == pytest.approx(md1)
    assert f["srpt"] == pytest.approx(md1)


def test_length_pmf_is_the_workload_length_distribution():
    lattice = queueing.COARSE
    k, p = queueing.length_pmf(lattice.output_mean, queueing.SIGMA, lattice.cap)
    assert p.sum() == pytest.approx(1.0)
    config, _, _ = queueing.mg1_config(lattice, 1000)
    prompt, output = sample_lengths(config.workload, 200_000, 0)
    assert np.all(prompt == 1)
    counts = np.bincount(output, minlength=lattice.cap + 1)[1:] / len(output)
    assert output.mean() == pytest.approx(p @ k, rel=0.01)
    assert counts[0] == pytest.approx(p[0], abs=0.003)  # lengths below 1.5 round to 1
    assert counts[-1] == pytest.approx(p[-1], abs=0.002)  # the clipped tail


# ------------------------------------------------------------------------------------------------
# Case 5: the engine


def test_srpt_with_one_slot_is_non_preemptive_and_eviction_makes_it_preemptive():
    # A: 100 tokens at t=0; B: 5 tokens at 0.045; 10 ms per iteration whatever the batch
    cost, config = constant(10.0), EngineConfig(max_num_seqs=1, num_gpu_blocks=10**6)
    records = RecordBuffer()
    Engine(config, cost, 10**6, [batch([0.0, 0.045], [1, 1], [100, 5])], baselines.parse("srpt"), on_record=records.append).run()
    finish = dict(zip(records.columns["id"], records.columns["finish_time"]))
    assert finish[0] == pytest.approx(1.0) and finish[1] == pytest.approx(1.05)  # B waited for A: no slot preemption

    records = RecordBuffer()
    engine = Engine(config, cost, 10**6, [batch([0.0, 0.045], [1, 1], [100, 5])], baselines.parse("srpt"), on_record=records.append)
    queueing.run_preemptive(engine)
    c = records.columns
    finish, preempted = dict(zip(c["id"], c["finish_time"])), dict(zip(c["id"], c["preemptions"]))
    # B preempts A at the boundary after its arrival (0.05) and runs 5 iterations; A resumes for free
    assert finish[1] == pytest.approx(0.10)
    assert finish[0] == pytest.approx(1.05)
    assert preempted == {0: 1, 1: 0}


def test_mg1_simulation_matches_the_formulas():
    lattice, seeds, n = queueing.COARSE, range(3), 5000
    k, p = queueing.length_pmf(lattice.output_mean, queueing.SIGMA, lattice.cap)
    _, _, rate = queueing.mg1_config(lattice, n)
    f = queueing.mg1_means(k, p, rate, lattice.iteration_s)
    for policy, formula, tolerance in (("fcfs", "fcfs", 0.15), ("sjf", "sjf", 0.08), ("srpt-preemptive", "srpt", 0.08)):
        mean = np.mean([queueing.mg1_run((policy, lattice, s, n))[0] for s in seeds])
        assert mean == pytest.approx(f[formula], rel=tolerance), policy
    assert f["srpt"] < f["sjf"] < f["fcfs"]


# ------------------------------------------------------------------------------------------------
# Cases 1-4


def test_token_backlog_counts_prefill_and_decode_work():
    hw = get_hardware(li_dai_peng.HARDWARE)
    engine = Engine(li_dai_peng.engine("sarathi", 512, 10), hw.cost, 10**6, [batch([0.0], [100], [101])])
    engine.advance()  # idle: jumps to the arrival
    assert token_backlog(engine) == 200  # m_p + m_d = 100 + 100
    engine.advance()  # the prefill iteration (emits the first token)
    assert token_backlog(engine) == 100
    engine.advance()  # the decodes, fast-forwarded to the end
    assert token_backlog(engine) == 0 and not engine.live


def test_theorem2_boundary_and_slope():
    assert li_dai_peng.LAMBDA_STAR == pytest.approx(16.71, abs=0.01)  # the paper's figure
    horizon = 200.0
    over = li_dai_peng.boundary_run(("sarathi", 1.2, 0, horizon))
    drift = 1.2 * li_dai_peng.LAMBDA_STAR * 200 - li_dai_peng.THROUGHPUT
    assert li_dai_peng.slope(over[:, 0], over[:, 1], horizon / 2) == pytest.approx(drift, rel=0.15)
    under = li_dai_peng.boundary_run(("sarathi", 0.85, 0, horizon))
    assert abs(li_dai_peng.slope(under[:, 0], under[:, 1], horizon / 2)) < 0.25 * abs(0.85 * li_dai_peng.LAMBDA_STAR * 200 - li_dai_peng.THROUGHPUT)
    # whole prefills cannot fill the budget: Orca serves less than b / t_b under overload
    orca = li_dai_peng.boundary_run(("orca", 1.2, 0, horizon))
    served = 1.2 * li_dai_peng.LAMBDA_STAR * 200 - li_dai_peng.slope(orca[:, 0], orca[:, 1], horizon / 2)
    assert served < 0.9 * li_dai_peng.THROUGHPUT


def test_fig1_orca_and_sarathi_bounded_fastertransformer_grows():
    rate = li_dai_peng.FIG1_LOAD * li_dai_peng.FIG1_LAMBDA_STAR
    for system, grows in (("sarathi", False), ("orca", False), ("fastertransformer", True)):
        times, backlog, _ = li_dai_peng.fig1_run((system, 0))
        growth = li_dai_peng.slope(times, backlog, li_dai_peng.FIG1_HORIZON / 2)
        assert (growth > li_dai_peng.GROWTH * rate) == grows, system


def test_batch_cap_only_sarathi_128_is_stable():
    rate = 1 / li_dai_peng.S62_INTERVAL
    for rule, budget, stable in (("sarathi", 128, True), ("sarathi", 256, False), ("vllm", 512, False)):
        times, backlog, at_end = li_dai_peng.s62_run((rule, budget, 300.0))
        assert (li_dai_peng.slope(times, backlog, 150.0) <= li_dai_peng.GROWTH * rate) == stable, (rule, budget)
    assert at_end > 100  # vLLM piles up requests beyond the 100 slots


def test_network_case_is_pending_without_the_network_module(monkeypatch, tmp_path):
    monkeypatch.setattr(li_dai_peng, "network_available", lambda: False)
    result = li_dai_peng.rybko_stolyar(True, tmp_path, 1)
    assert result.verdict == "pending" and result.plots == []


# ------------------------------------------------------------------------------------------------
# Case 7: token gaps


def test_token_gaps_by_hand_with_a_vllm_prefill_stall():
    # A: prompt 1, 10 tokens at t=0; B: prompt 50, 2 tokens at 0.0305; t = 10 ms + 1 ms per prefill token
    cost = constant(10.0, prefill_token_ms=1.0)
    config = EngineConfig(batching="vllm", max_num_seqs=8, num_gpu_blocks=10**6)
    gaps = TokenGaps()
    engine = Engine(config, cost, 10**6, [batch([0.0, 0.0305], [1, 50], [10, 2])], on_build=gaps.on_build)
    while True:
        t0, it0 = engine.now, engine.iteration
        if not engine.advance():
            break
        gaps.after(engine, t0, it0)
    # A: tokens at 0.011, 0.021, 0.031; B's prefill-only iteration (60 ms) stalls it; then 0.101, 0.111 ... 0.161
    assert gaps.count == 9 + 1
    assert sorted(gaps.values)[-1] == pytest.approx(0.07)
    assert gaps.quantile(0.99) == pytest.approx(0.07)
    assert gaps.quantile(0.5) == pytest.approx(0.01)


def test_token_gaps_same_with_and_without_fast_forward():
    for name in ("sarathi", "vllm"):
        config, policy = baselines.systems.system_config(name, SimConfig(workload=WorkloadConfig(num_requests=150), rate=1.0))
        fast, records = run_with_gaps(config, policy, 0)
        step, _ = run_with_gaps(config.replace(engine=dataclasses.replace(config.engine, fast_forward=False)), policy, 0)
        expected = int(np.sum(records["output_len"] - 1))
        assert fast.count == step.count == expected
        for q in (0.5, 0.9, 0.99):
            assert fast.quantile(q) == pytest.approx(step.quantile(q), rel=1e-9)


# ------------------------------------------------------------------------------------------------
# The report


def test_report_for_one_case(tmp_path):
    assert run.main(["--quick", "--cases", "3", "--out", str(tmp_path), "--workers", "1"]) == 0
    report = (tmp_path / "report.md").read_text()
    assert "## Case 3" in report and "| 3. §6.2" in report and "**pass**" in report
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert [s["key"] for s in summary] == ["3"] and summary[0]["verdict"] == "pass"
    assert all((tmp_path / name).exists() for name in summary[0]["plots"])


def test_unknown_case_is_an_error(tmp_path):
    with pytest.raises(SystemExit):
        run.main(["--cases", "99", "--out", str(tmp_path)])


# ------------------------------------------------------------------------------------------------
# Cases 9-10: clusters


def test_routing_formulas_by_hand():
    assert cluster.erlang_c(1, 0.7) == pytest.approx(0.7)  # one server: the arrival waits iff busy
    assert cluster.erlang_c(2, 1.0) == pytest.approx(1 / 3)  # rho = 1/2: P(wait) = 2 rho^2 / (1 + rho)
    f = cluster.formulas(1)
    assert f["mmn"] == pytest.approx(f["mm1"])
    es = cluster.MEAN_TOKENS * cluster.ITERATION_S
    assert f["random"] == pytest.approx(f["mm1"] - cluster.RHO * cluster.ITERATION_S / (2 * (1 - cluster.RHO)))
    assert f["random"] < f["mm1"] and es < f["mmn"]


def test_random_routing_matches_mg1_and_jsq_lies_between_the_bounds():
    f = cluster.formulas(2)
    random = np.mean([cluster.routing_run(("random", 2, s, 3000)) for s in range(3)])
    jsq = np.mean([cluster.routing_run(("least-outstanding", 2, s, 3000)) for s in range(3)])
    assert random == pytest.approx(f["random"], rel=0.12)
    assert f["mmn"] < jsq < 0.8 * f["mm1"]


def test_prefix_replay_hit_rate_and_lru_by_hand():
    chains = [[0, 1, 2], [0, 1, 3], [4]]
    assert cluster.replay_hit_rate(chains, None) == (2 / 7, 0)
    # 3 blocks: the second request evicts block 2 (the tail of the first), the third evicts 3
    assert cluster.replay_hit_rate(chains, 3) == (2 / 7, 2)
    assert cluster.replay_hit_rate([[0, 1], [2, 3], [0, 1]], 2) == (0.0, 4)


def test_mooncake_case_is_pending_without_the_trace(tmp_path):
    assert cluster.mooncake_case(True, tmp_path, 1, path=tmp_path / "absent.jsonl.gz").verdict == "pending"


def test_unbounded_token_rate_by_hand():
    # second request: 2 cached blocks of 512 -> 1024 tokens; third: its partial block (100 tokens)
    chains = [[0, 1, 2], [0, 1, 3], [0]]
    assert cluster.unbounded_token_rate(chains, [1100, 1300, 100]) == pytest.approx((1024 + 100) / 2500)


def test_mooncake_case_verdict_follows_the_rule(tmp_path, monkeypatch):
    """A trace whose reuse is far from Table 2 fails the ratio check; the case cannot pass by construction."""
    rows = [{"timestamp": i, "input_length": 512, "output_length": 1, "hash_ids": [i]} for i in range(50)]
    path = tmp_path / "t.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows))
    res = cluster.mooncake_case(True, tmp_path, 1, path=path, synthetic_path=path)
    assert res.verdict in ("partial", "fail") and "0.0%" in res.ours
    # a trace with exactly the published reuse and small footprint passes the ratio check for that trace
    monkeypatch.setitem(cluster.PUBLISHED_CACHE_RATIO, "synthetic", 0.0)
    monkeypatch.setitem(cluster.PUBLISHED_CACHE_RATIO, "conversation", 0.0)
    assert cluster.mooncake_case(True, tmp_path, 1, path=path, synthetic_path=path).verdict == "partial"


# ------------------------------------------------------------------------------------------------
# Whole cases (slow): the verdicts the report states


@pytest.mark.slow
@pytest.mark.parametrize("key, allowed", [
    ("1", {"pass"}), ("2", {"partial", "pass"}), ("3", {"pass"}), ("4", {"pass", "pending"}), ("5", {"pass"}),
    ("6", {"partial", "pass"}), ("7", {"partial", "pass"}), ("8", {"partial", "pass"}), ("9", {"pass"}),
    # against the Mooncake paper's figures when both traces are here, pending without them
    ("10", {"pass"} if cluster.MOONCAKE.exists() and cluster.MOONCAKE_SYNTHETIC.exists() else {"pending"}),
])
def test_case_verdicts(key, allowed, tmp_path):
    quick = key != "9"  # the routing case's quick run is too short for its exact comparison (the report runs it full)
    assert CASES[key](quick, tmp_path, 2).verdict in allowed
