"""Configs: the written-out default YAML, what ``load`` means, and config mistakes caught early."""

from __future__ import annotations

from pathlib import Path

import pytest

from llmsched_env.sim import ConfigError, EngineConfig, LinearCostModel, SimConfig, WorkloadConfig, load_config, simulate
from llmsched_env.sim.api import arrival_rate
from llmsched_env.sim.capacity import sustainable_rate

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
FIFTY_MS = LinearCostModel(intercept_ms=50.0, prefill_token_ms=0.0, decode_ms=0.0, decode_ctx_ms=0.0, name="50ms")


def test_default_yaml_is_the_default_config():
    assert load_config(CONFIGS / "sim" / "default.yaml") == SimConfig()


def test_yaml_mistakes_name_the_file_the_field_and_the_value(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("engine:\n  batching: lifo\n")
    with pytest.raises(ConfigError, match=r"engine\.batching='lifo' is invalid"):
        load_config(bad)
    bad.write_text("engine:\n  max_num_seq: 8\n")
    with pytest.raises(ConfigError, match="max_num_seq"):
        load_config(bad)


def test_sustainable_rate_of_a_hand_computed_engine():
    # 50 ms per iteration whatever the batch; 4-token outputs take 4 iterations (the prefill makes
    # the first token). One slot serves a request per 4 iterations: 1 / 0.2 s = 5 requests/s; two
    # slots serve two: 10 requests/s (measured between the 20th and 80th percentile completions,
    # where requests finishing in pairs shift the count by one: within 0.1 %).
    workload = WorkloadConfig(lengths="fixed", prompt_mean=8, output_mean=4)
    assert sustainable_rate(EngineConfig(max_num_seqs=1), workload, FIFTY_MS) == pytest.approx(5.0, rel=1e-9)
    assert sustainable_rate(EngineConfig(max_num_seqs=2), workload, FIFTY_MS) == pytest.approx(10.0, rel=1e-3)


def test_load_is_the_arrival_rate_over_the_sustainable_rate():
    config = SimConfig(
        engine=EngineConfig(max_num_seqs=2),
        workload=WorkloadConfig(lengths="fixed", prompt_mean=8, output_mean=4, num_requests=2000),
        load=0.5,
    )
    rate, capacity = arrival_rate(config, FIFTY_MS)
    assert capacity == pytest.approx(10.0, rel=1e-3) and rate == pytest.approx(0.5 * capacity, rel=1e-12)
    result = simulate(config, seed=0, cost_model=FIFTY_MS)
    assert result.summary["requests_per_s"] == pytest.approx(5.0, rel=0.05)


def test_a_token_budget_below_the_prompts_of_a_rule_that_cannot_chunk_is_an_error():
    config = SimConfig(engine=EngineConfig(batching="vllm"), workload=WorkloadConfig(lengths="sharegpt", num_requests=50))
    with pytest.raises(ConfigError, match=r"max_num_batched_tokens=2048 is invalid for batching='vllm'.*expected at least"):
        simulate(config)
    ok = SimConfig(engine=EngineConfig(batching="vllm", max_num_batched_tokens=8192), workload=config.workload)
    assert simulate(ok).summary["finished"] == 50
