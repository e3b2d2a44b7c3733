"""Tests for llmsched_env/sim/cost.py: iteration-time models, KV capacity, hardware presets."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from llmsched_env.sim.cost import (
    A100_80GB,
    CODELLAMA_34B,
    LLAMA2_7B,
    LLAMA2_70B,
    MODEL_SPECS,
    CostModel,
    GPUSpec,
    HardwarePreset,
    LinearCostModel,
    ModelSpec,
    ProfileCostModel,
    StaircaseCostModel,
    available_hardware,
    describe_hardware,
    get_hardware,
    kv_capacity_blocks,
)
from llmsched_env.sim.cost import _on_grid
from llmsched_env.sim.validation import ConfigError

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
FIT_SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "fit_cost_models.py"
MS = 1e-3


def approx(x: float):
    return pytest.approx(x, rel=1e-12)


# --- LinearCostModel ---------------------------------------------------------------------------
def test_llama2_7b_a100_exact_times():
    cost = get_hardware("llama2-7b/a100-poly").cost
    # One 512-token prefill (no prior context) + 32 decodes reading 32 x 1024 tokens, fit "B":
    # 6.899 + 0.06442*512 + 4.587e-6*512^2 + 0.09929*32 + 2.723e-4*32768
    # = 6.899 + 32.98304 + 1.202454528 + 3.17728 + 8.9227264 ms
    assert cost.iteration_time(512, 512**2, 0, 32, 32 * 1024) == approx(53.184500928 * MS)
    # Chunked prefill: a 256-token chunk after 1024 prior tokens, no decodes; f = 32 x 1.39e-7 ms.
    # 6.899 + 0.06442*256 + 4.587e-6*65536 + 4.448e-6*262144
    assert cost.iteration_time(256, 256**2, 256 * 1024, 0, 0) == approx(
        (6.899 + 16.49152 + 0.300613632 + 1.166016512) * MS
    )
    # Two chunks in one batch: P, sum c^2 and sum c*prior add up.
    t = cost.iteration_time(100 + 300, 100**2 + 300**2, 100 * 50 + 300 * 0, 2, 3000)
    expected = 6.899 + 0.06442 * 400 + 4.587e-6 * 100_000 + 4.448e-6 * 5000 + 0.09929 * 2 + 2.723e-4 * 3000
    assert t == approx(expected * MS)
    # Decode-only batch: the decode-only fit 9.15 + 0.07077*D + 2.73e-4*KV.
    assert cost.iteration_time(0, 0, 0, 32, 32 * 1024) == approx((9.15 + 2.26464 + 8.945664) * MS)
    assert cost.iteration_time(0, 0, 0, 1, 512) == approx((9.15 + 0.07077 + 0.139776) * MS)


def test_llama2_7b_h100_and_70b_exact_times():
    h100 = get_hardware("llama2-7b/h100-poly").cost
    assert h100.iteration_time(512, 512**2, 0, 32, 32768) == approx(
        (5.489 + 0.01958 * 512 + 3.377e-6 * 262144 + 0.03586 * 32 + 1.671e-4 * 32768) * MS
    )
    assert h100.iteration_time(0, 0, 0, 64, 64 * 2048) == approx((5.803 + 0.03009 * 64 + 1.675e-4 * 131072) * MS)
    big = get_hardware("llama2-70b/a100-tp2-poly").cost
    assert big.iteration_time(1024, 1024**2, 1024 * 512, 8, 8000) == approx(
        (45.62 + 0.3229 * 1024 + 9.512e-6 * 1024**2 + 9.075e-6 * 1024 * 512 + 0.2804 * 8 + 1.131e-4 * 8000) * MS
    )
    assert big.iteration_time(0, 0, 0, 1, 100) == approx((55.11 + 0.1831 + 1.153e-4 * 100) * MS)


def test_h100_is_faster_than_a100_for_every_batch_shape():
    a100, h100 = get_hardware("llama2-7b/a100").cost, get_hardware("llama2-7b/h100").cost
    batches = [(0, 0, 0, 1, 10), (0, 0, 0, 128, 512_000), (4096, 4096**2, 0, 0, 0), (512, 512**2, 512 * 2048, 64, 9000)]
    for batch in batches:
        assert h100.iteration_time(*batch) < a100.iteration_time(*batch)


def test_without_decode_only_coefficients_the_mixed_formula_is_used_everywhere():
    cost = LinearCostModel(intercept_ms=2.0, prefill_token_ms=0.1, decode_ms=0.5, decode_ctx_ms=0.01)
    assert cost.iteration_time(0, 0, 0, 4, 100) == approx((2.0 + 2.0 + 1.0) * MS)
    assert cost.iteration_time(10, 100, 0, 4, 100) == approx((2.0 + 1.0 + 2.0 + 1.0) * MS)
    assert cost.decode_affine(4) == (approx(4.0 * MS), approx(0.01 * MS))


def test_decode_only_list_from_yaml_is_accepted_and_stored_as_tuple():
    cost = LinearCostModel(1.0, 0.1, 0.2, 0.01, decode_only_ms=[3.0, 0.5, 0.02])
    assert cost.decode_only_ms == (3.0, 0.5, 0.02)
    assert cost.iteration_time(0, 0, 0, 2, 10) == approx((3.0 + 1.0 + 0.2) * MS)
    hash(cost)  # frozen and hashable


# --- StaircaseCostModel ------------------------------------------------------------------------
def test_staircase_steps_at_128_and_129_tokens():
    cost = get_hardware("codellama-34b/a100").cost
    assert isinstance(cost, StaircaseCostModel)
    assert cost.iteration_time(0, 0, 0, 1, 5000) == approx(46.75 * MS)  # 11.28 + 35.47
    assert cost.iteration_time(100, 10_000, 0, 28, 999) == approx(46.75 * MS)  # 128 tokens
    assert cost.iteration_time(100, 10_000, 0, 29, 999) == approx(82.22 * MS)  # 129 tokens
    assert cost.iteration_time(256, 0, 0, 0, 0) == approx(82.22 * MS)
    assert cost.iteration_time(257, 0, 0, 0, 0) == approx(117.69 * MS)
    assert cost.iteration_time(4096, 0, 0, 0, 0) == approx((11.28 + 32 * 35.47) * MS)
    # Context does not enter: decode_affine's slope is zero.
    assert cost.decode_affine(200) == (approx(82.22 * MS), 0.0)


def test_staircase_custom_steps():
    cost = StaircaseCostModel(base_ms=1.0, step_ms=2.0, step_tokens=10, name="toy")
    assert [cost.iteration_time(p, 0, 0, 0, 0) / MS for p in (1, 10, 11, 20, 21)] == [
        approx(3.0),
        approx(3.0),
        approx(5.0),
        approx(5.0),
        approx(7.0),
    ]


# --- ProfileCostModel ---------------------------------------------------------------------------
TOY = ProfileCostModel(
    linear_ms=(1.0, 1.0, 2.0, 3.0),  # at 8, 8, 16, 24 tokens
    decode_ms=(0.5, 0.1, 0.001, 0.002),
    prefill_ms=(0.2, 0.01, 1e-4, 1e-5),
    decode_batching_overhead=0.1,
    prefill_batching_overhead=0.1,
    kv_granularity=64,
    name="toy",
)


def test_profile_model_hand_computed_times():
    # Decode-only, 2 decodes reading 200 tokens: 2 tokens -> table entry (2 + 7) // 8 = 1 (1.0 ms);
    # mean context 100 + 31.5 (expected rounding up to 64); x1.1 for a batch of more than one decode:
    # (0.5 + 0.1*2 + 0.001*2*131.5 + 0.002*131.5) * 1.1 = 1.3486
    assert TOY.iteration_time(0, 0, 0, 2, 200) == pytest.approx((1.0 + 1.3486) * MS, rel=1e-12)
    # One 10-token chunk after 100 prior tokens: 10 tokens -> entry 2 (2.0 ms); prior rounded up to 128:
    # 0.2 + 0.01*10 + 1e-4*100 + 1e-5*10*128 = 0.3228
    assert TOY.iteration_time(10, 100, 1000, 0, 0) == pytest.approx((2.0 + 0.3228) * MS, rel=1e-12)
    # Beyond the table (40 tokens = entry 5): extrapolated by the mean step of the last quarter
    # (entries 2..3: 1.0 per entry), 3.0 + 1.0 * 2; no prior context.
    assert TOY.iteration_time(40, 1600, 0, 0, 0) == pytest.approx((5.0 + 0.2 + 0.4 + 0.16) * MS, rel=1e-12)
    # Two chunks (3 tokens after 0, 4 after 10) + 1 decode reading 50: 8 tokens -> entry 1; Vidur's one
    # chunk of sqrt(9 + 16) = 5 tokens after kv ~ sum(c*prior)/5 + 31.5 = 39.5, x1.1 for two prefills:
    # (0.2 + 0.05 + 1e-4*25 + 1e-5*5*39.5) * 1.1 = 0.2799225; one decode (no overhead), m' = 50 + 31.5:
    # 0.5 + 0.1 + 0.001*81.5 + 0.002*81.5 = 0.8445
    assert TOY.iteration_time(7, 25, 40, 1, 50) == pytest.approx((1.0 + 0.2799225 + 0.8445) * MS, rel=1e-12)
    base, per_ctx = TOY.decode_affine(2)
    assert base == pytest.approx((1.0 + (0.5 + 0.2 + 0.001 * 2 * 31.5 + 0.002 * 31.5) * 1.1) * MS, rel=1e-12)
    assert per_ctx == pytest.approx((0.001 + 0.002 / 2) * 1.1 * MS, rel=1e-12)


def test_profile_model_grows_linearly_beyond_its_table():
    # Llama-2-7B's profile ends at 4,096 tokens: 8,192 tokens take about twice as long.
    cost = get_hardware("llama2-7b/a100").cost
    t4k, t8k = (cost.iteration_time(n, n * n, 0, 0, 0) - cost.iteration_time(0, 0, 0, 1, 1) for n in (4096, 8192))
    assert 2.0 < t8k / t4k < 3.0  # linear ops x2, attention's c^2 term x4


def test_profile_table_is_interpolated_on_an_8_token_grid():
    # Vidur's grid 1, 2, 4, 8, 16, 32 with values 1..6: entry i holds the value at 8*i tokens (entry 0: 8 tokens).
    assert _on_grid([1, 2, 4, 8, 16, 32], [1.0, 2.0, 3.0, 4.0, 5.0, 6.0], 8) == [4.0, 4.0, 5.0, 5.5, 6.0]
    assert _on_grid([8, 24], [1.0, 3.0], 8) == [1.0, 1.0, 2.0, 3.0]


def test_profile_model_rejects_bad_tables():
    good = dict(linear_ms=(1.0, 2.0), decode_ms=(0.1,) * 4, prefill_ms=(0.1,) * 4)
    for kwargs, field in (
        (dict(linear_ms=(1.0,)), "linear_ms"),
        (dict(linear_ms=(1.0, 0.0)), r"linear_ms\[1\]"),
        (dict(decode_ms=(0.1, 0.1)), "decode_ms"),
        (dict(prefill_ms=(0.1, -0.1, 0.1, 0.1)), r"prefill_ms\[1\]"),
        (dict(decode_batching_overhead=-0.5), "decode_batching_overhead"),
        (dict(kv_granularity=0), "kv_granularity"),
    ):
        with pytest.raises(ConfigError, match=rf"ProfileCostModel\('profile'\)\.{field}"):
            ProfileCostModel(**(good | kwargs))
    assert ProfileCostModel(**(good | dict(linear_ms=[1.0, 2.0]))).linear_ms == (1.0, 2.0)  # YAML lists


def test_llama3_8b_capacity_from_its_shape():
    # GQA, 8 KV heads: 2 x 32 layers x 8 x 128 x 2 B = 131,072 B per token.
    # (80 GiB x 0.9 - 2 x 8,030,261,248) // (131,072 x 4096) = 114 requests -> 114 x 256 blocks;
    # 40 GB: (40 GiB x 0.9 - 16,060,522,496) // 536,870,912 = 42 -> 42 x 256.
    assert get_hardware("llama3-8b/a100").kv_capacity_blocks() == 114 * 256 == 29_184
    assert get_hardware("llama3-8b/a100-40gb").kv_capacity_blocks() == 42 * 256
    assert get_hardware("llama2-7b/a100-40gb").kv_capacity_blocks() == 2816
    assert get_hardware("llama3-8b/a100").cost.iteration_time(0, 0, 0, 1, 1) == get_hardware(
        "llama3-8b/a100-40gb"
    ).cost.iteration_time(0, 0, 0, 1, 1)


def test_describe_hardware_lists_every_preset_with_its_capacity():
    text = describe_hardware()
    for name in available_hardware():
        assert name in text
    assert "29,184" in text and "7,424" in text


# --- decode_affine consistency -----------------------------------------------------------------
# one preset of each kind of cost model and table (the check over every preset follows)
KINDS = ["llama2-7b/a100", "llama2-7b/a100-poly", "codellama-34b/a100", "llama3-8b/a100", "qwen-72b/h100-tp8"]


@pytest.mark.parametrize("name", KINDS)
@settings(max_examples=300, deadline=None)
@given(num_decodes=st.integers(1, 5000), decode_ctx=st.integers(1, 10_000_000))
def test_decode_affine_matches_iteration_time(name, num_decodes, decode_ctx):
    cost = get_hardware(name).cost
    base, per_ctx = cost.decode_affine(num_decodes)
    # Bit-for-bit: the engine's closed-form fast-forward must equal stepping one iteration at a time.
    assert base + per_ctx * decode_ctx == cost.iteration_time(0, 0, 0, num_decodes, decode_ctx)


def test_decode_affine_matches_iteration_time_for_every_preset():
    for name in available_hardware():
        cost = get_hardware(name).cost
        for num_decodes, decode_ctx in ((1, 1), (2, 5000), (77, 77 * 1500), (256, 900_000), (3000, 10**7)):
            base, per_ctx = cost.decode_affine(num_decodes)
            assert base + per_ctx * decode_ctx == cost.iteration_time(0, 0, 0, num_decodes, decode_ctx), name


@pytest.mark.parametrize("name", available_hardware())
def test_iteration_times_are_positive_and_grow_with_work(name):
    cost = get_hardware(name).cost
    assert cost.iteration_time(1, 1, 0, 0, 0) > 0
    assert cost.iteration_time(0, 0, 0, 1, 1) > 0
    assert cost.iteration_time(2000, 2000**2, 0, 10, 10_000) >= cost.iteration_time(1000, 1000**2, 0, 10, 10_000)
    assert cost.iteration_time(0, 0, 0, 10, 20_000) >= cost.iteration_time(0, 0, 0, 10, 10_000)
    # (profiles are noisy at small token counts, 16 vs 24 tokens may time either way: compare 10 with 100)
    assert cost.iteration_time(0, 0, 0, 100, 100_000) >= cost.iteration_time(0, 0, 0, 10, 10_000)


# --- specs and KV capacity ---------------------------------------------------------------------
def test_kv_bytes_per_token():
    assert LLAMA2_7B.kv_bytes_per_token == 2 * 32 * 32 * 128 * 2 == 524_288
    assert CODELLAMA_34B.kv_bytes_per_token == 2 * 48 * 8 * 128 * 2 == 196_608
    assert LLAMA2_70B.kv_bytes_per_token == 2 * 80 * 8 * 128 * 2 == 327_680
    assert LLAMA2_70B.kv_bytes_per_token_per_device(2) == 163_840
    # More GPUs than KV heads: heads are replicated, not split (ceil(8 / 16) = 1 head per GPU).
    assert LLAMA2_70B.kv_bytes_per_token_per_device(16) == 2 * 80 * 1 * 128 * 2


def test_vidur_capacity_7424_blocks_for_llama2_7b_on_a100():
    # (80 GiB x 0.9 - 2 B x 6,738,415,616) // (524,288 B x 4096) = 29 requests; 29 x 4096 / 16 = 7424.
    assert kv_capacity_blocks(LLAMA2_7B, A100_80GB) == 7424
    assert get_hardware("llama2-7b/a100").kv_capacity_blocks() == 7424
    assert get_hardware("llama2-7b/a100").kv_capacity_blocks() * 16 == 118_784
    # Without Vidur's rounding to whole 4096-token requests: 63,832,580,096 B // (524,288 x 16) B.
    assert kv_capacity_blocks(LLAMA2_7B, A100_80GB, max_request_tokens=None) == 7609
    # Block size 32: still 29 requests of 4096 tokens.
    assert kv_capacity_blocks(LLAMA2_7B, A100_80GB, block_size=32) == 29 * 128


def test_capacity_with_tensor_parallelism_and_utilisation():
    # Llama-2-70B on 2 x A100: (77,309,411,328 - 68,976,648,192) // (163,840 x 4096) = 12 requests.
    assert get_hardware("llama2-70b/a100-tp2").kv_capacity_blocks() == 12 * 256
    # Lower utilisation: 80 GiB x 0.8 = 68,719,476,736 B; (that - 13,476,831,232) // 2 GiB = 25 requests.
    assert kv_capacity_blocks(LLAMA2_7B, A100_80GB, gpu_memory_utilization=0.8) == 25 * 256


def test_swap_time_per_block():
    # 524,288 B/token x 16 tokens over 25 GB/s.
    assert get_hardware("llama2-7b/a100").swap_seconds_per_block() == approx(524_288 * 16 / 25e9)
    # TP2: each GPU moves its half over its own link.
    assert get_hardware("llama2-70b/a100-tp2").swap_seconds_per_block(32) == approx(163_840 * 32 / 25e9)


def test_model_shapes_match_vidur_profiles():
    """n_head / n_kv_head / n_embd of the profiling CSVs give the head_dim and KV heads we use."""
    root = DATA / "vidur" / "data" / "profiling" / "compute" / "a100"
    if not root.exists():
        pytest.skip("../shared/data/vidur is not available")
    import csv

    fit = _fit_module()
    for name, spec in MODEL_SPECS.items():
        with (root / fit.PROFILED_MODELS[name] / "mlp.csv").open() as f:
            row = next(csv.DictReader(f))
        assert int(row["n_kv_head"]) == spec.num_kv_heads
        assert int(row["n_embd"]) // int(row["n_head"]) == spec.head_dim


# --- presets registry --------------------------------------------------------------------------
def test_available_hardware_and_preset_fields():
    names = available_hardware()
    assert names == sorted(names)
    assert {"llama2-7b/a100", "llama2-7b/h100", "codellama-34b/a100", "llama2-70b/a100-tp2"} <= set(names)
    assert {"llama2-7b/a100-poly", "llama2-7b/h100-poly", "llama2-70b/a100-tp2-poly"} <= set(names)
    assert {"llama3-8b/a100", "llama3-8b/a100-40gb", "llama2-7b/a100-40gb", "qwen-72b/a100-tp4", "phi-2/a40"} <= set(names)
    for name in names:
        preset = get_hardware(name)
        assert isinstance(preset, HardwarePreset) and isinstance(preset.cost, CostModel)
        assert preset.name == name == preset.cost.name
        assert preset.source


def test_unknown_preset_lists_the_known_ones():
    with pytest.raises(ConfigError) as err:
        get_hardware("llama2-7b/tpu")
    message = str(err.value)
    assert "hardware" in message and "llama2-7b/tpu" in message
    for name in available_hardware():
        assert name in message


# --- bad inputs --------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "kwargs, field",
    [
        (dict(prefill_token_ms=-0.1), "prefill_token_ms"),
        (dict(decode_ctx_ms=-1e-4), "decode_ctx_ms"),
        (dict(prefill_sq_ms=float("nan")), "prefill_sq_ms"),
        (dict(intercept_ms=0.0), "intercept_ms"),
        (dict(decode_ms="fast"), "decode_ms"),
        (dict(decode_only_ms=(1.0, 2.0)), "decode_only_ms"),
        (dict(decode_only_ms=(0.0, 2.0, 0.1)), "decode_only_ms[0]"),
        (dict(decode_only_ms=(1.0, 2.0, -0.1)), "decode_only_ms[2]"),
    ],
)
def test_linear_cost_model_rejects_bad_coefficients(kwargs, field):
    args = dict(intercept_ms=1.0, prefill_token_ms=0.1, decode_ms=0.1, decode_ctx_ms=1e-4) | kwargs
    with pytest.raises(ConfigError) as err:
        LinearCostModel(**args)
    assert str(err.value).startswith(f"LinearCostModel('linear').{field}=")


@pytest.mark.parametrize(
    "kwargs, field",
    [(dict(step_ms=0.0), "step_ms"), (dict(base_ms=-1.0), "base_ms"), (dict(step_tokens=0), "step_tokens")],
)
def test_staircase_rejects_bad_parameters(kwargs, field):
    with pytest.raises(ConfigError, match=rf"StaircaseCostModel\('staircase'\)\.{field}"):
        StaircaseCostModel(**kwargs)


def test_specs_reject_bad_values():
    with pytest.raises(ConfigError, match=r"GPUSpec\('x'\)\.memory_bytes=0"):
        GPUSpec("x", memory_bytes=0, pcie_bytes_per_s=1e9)
    with pytest.raises(ConfigError, match=r"GPUSpec\('x'\)\.pcie_bytes_per_s"):
        GPUSpec("x", memory_bytes=2**30, pcie_bytes_per_s=-5.0)
    with pytest.raises(ConfigError, match=r"ModelSpec\('m'\)\.num_layers"):
        ModelSpec("m", num_layers=0, num_kv_heads=1, head_dim=64, num_params=10)
    with pytest.raises(ConfigError, match=r"ModelSpec\('m'\)\.head_dim"):
        ModelSpec("m", num_layers=1, num_kv_heads=1, head_dim=64.5, num_params=10)
    with pytest.raises(ConfigError, match=r"HardwarePreset\('p'\)\.cost"):
        HardwarePreset("p", LLAMA2_7B, A100_80GB, cost="fast")
    with pytest.raises(ConfigError, match=r"HardwarePreset\('p'\)\.tensor_parallel"):
        HardwarePreset("p", LLAMA2_7B, A100_80GB, get_hardware("llama2-7b/a100").cost, tensor_parallel=0)


@pytest.mark.parametrize(
    "kwargs, field",
    [
        (dict(gpu_memory_utilization=0.0), "gpu_memory_utilization"),
        (dict(gpu_memory_utilization=1.5), "gpu_memory_utilization"),
        (dict(block_size=0), "block_size"),
        (dict(tensor_parallel=0), "tensor_parallel"),
        (dict(max_request_tokens=8), "max_request_tokens"),
    ],
)
def test_kv_capacity_rejects_bad_arguments(kwargs, field):
    with pytest.raises(ConfigError, match=field):
        kv_capacity_blocks(LLAMA2_7B, A100_80GB, **kwargs)


def test_kv_capacity_when_the_weights_do_not_fit():
    small = GPUSpec("16GB", memory_bytes=16 * 2**30, pcie_bytes_per_s=25e9)
    with pytest.raises(ConfigError, match="gpu_memory_utilization=0.5.*no room for KV"):
        kv_capacity_blocks(LLAMA2_7B, small, gpu_memory_utilization=0.5)
    # One 70B on one A100 does not fit either; two do.
    with pytest.raises(ConfigError, match="no room for KV"):
        kv_capacity_blocks(LLAMA2_70B, A100_80GB)
    assert kv_capacity_blocks(LLAMA2_70B, A100_80GB, tensor_parallel=2) == 3072


# --- the hard-coded coefficients are what the fitting script finds ----------------------------
def _fit_module():
    if not (DATA / "vidur" / "data" / "profiling").exists():
        pytest.skip("../shared/data/vidur is not available")
    spec = importlib.util.spec_from_file_location("fit_cost_models", FIT_SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize(
    "name, builder", [("llama2-7b/h100-poly", "llama2_7b_h100"), ("llama2-70b/a100-tp2-poly", "llama2_70b_a100_tp2")]
)
def test_presets_match_the_fitting_script(name, builder):
    fit = _fit_module()
    coef = fit.Fit(getattr(fit, builder)()).coef
    cost = get_hardware(name).cost
    shipped = dict(
        a=cost.intercept_ms, b=cost.prefill_token_ms, c=cost.decode_ms, d=cost.decode_ctx_ms, e=cost.prefill_sq_ms,
        f=cost.prefill_ctx_ms, da=cost.decode_only_ms[0], dc=cost.decode_only_ms[1], dd=cost.decode_only_ms[2],
    )
    for key, value in shipped.items():
        assert value == pytest.approx(coef[key], rel=1e-3), key


def test_method_reproduces_the_design_a100_fits():
    """The fitting method applied to A100 data agrees with the -poly presets' fits to within ~1 %."""
    fit = _fit_module()
    result = fit.Fit(fit.llama2_7b_a100())
    cost = get_hardware("llama2-7b/a100-poly").cost
    p, d, kv = result.mixed
    design = [
        cost.iteration_time(int(pi), int(pi) ** 2, 0, int(di), int(ki)) / MS for pi, di, ki in zip(p, d, kv) if pi > 0
    ]
    ours = fit.predict_b(result.coef, p[p > 0], d[p > 0], kv[p > 0])
    assert sum(abs(x / y - 1) for x, y in zip(design, ours)) / len(ours) < 0.02
    _, d, kv = result.decode
    design = [cost.iteration_time(0, 0, 0, int(di), int(ki)) / MS for di, ki in zip(d, kv)]
    ours = fit.predict_decode(result.coef, 0 * d, d, kv)
    assert sum(abs(x / y - 1) for x, y in zip(design, ours)) / len(ours) < 0.02


def test_presets_survive_pickling():
    """Vectorised environments ship the engine, cost model included, to worker processes."""
    import pickle

    for name in available_hardware():
        preset = get_hardware(name)
        clone = pickle.loads(pickle.dumps(preset))
        assert clone == preset
        assert clone.cost.iteration_time(10, 100, 0, 3, 300) == preset.cost.iteration_time(10, 100, 0, 3, 300)


# --- the profile tables are what the fitting script composes from Vidur's profiles -------------
@pytest.mark.parametrize("name, args", [("llama2-7b/a100", ("llama2-7b", "a100", 1)), ("llama3-8b/a100-tp2", ("llama3-8b", "a100", 2))])
def test_profile_presets_match_the_profile_sum(name, args):
    """Batches of one chunk + decodes of equal context a multiple of 64 are timed exactly as the
    composed profile sum (the only approximations are the rounding and several prefills)."""
    fit = _fit_module()
    time_fn, _ = fit.profiled_time(*args)
    cost = get_hardware(name).cost
    for chunk, prior, decodes, ctx in ((0, 0, 1, 64), (0, 0, 128, 2048), (512, 0, 0, 0), (256, 1024, 32, 1024), (4096, 0, 0, 0)):
        chunks = [(chunk, prior)] if chunk else []
        expected = time_fn.batch(chunks, [ctx] * decodes)
        got = cost.iteration_time(chunk, chunk * chunk, chunk * prior, decodes, decodes * (ctx - 31.5)) / MS
        assert got == pytest.approx(expected, rel=1e-3), (chunk, prior, decodes, ctx)
