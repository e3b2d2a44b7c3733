"""Prefix caching: hand-computed cases, identity with caching off, invariants, chains and traces."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from llmsched_env.sim import EngineConfig, RequestBatch, RequestState, SimConfig, WorkloadConfig, simulate
from llmsched_env.sim.prefix_cache import PrefixCache, engine_chain
from llmsched_env.sim.traces import read_mooncake
from llmsched_env.sim.validation import ConfigError
from llmsched_env.sim.workload import generate, mean_lengths, sample_lengths
from test_engine import LLAMA, POLICIES, make_engine, random_workload


def chained_batch(rows, block_hash_size=4) -> RequestBatch:
    """rows: (arrival, prompt, output, chain)."""
    arrival, prompt, output, chains = zip(*rows)
    offsets = np.concatenate([[0], np.cumsum([len(c) for c in chains])]).astype(np.int64)
    values = np.asarray([h for c in chains for h in c], dtype=np.int64)
    return RequestBatch(
        np.asarray(arrival, dtype=float),
        np.asarray(prompt, dtype=np.int64),
        np.asarray(output, dtype=np.int64),
        predicted_len=np.asarray(output, dtype=float),
        block_hash_offsets=offsets,
        block_hash_values=values,
        block_hash_size=block_hash_size,
    )


def caching_engine(rows, blocks=100, **config):
    """An engine with 4-token blocks, 1-second iterations and caching on; it records each build's
    prefill chunks as (id, chunk, kv before)."""
    chunks: list[tuple[int, int, int]] = []
    holder: list = []

    def on_build(decoding, prefilling):
        chunks.extend((r.id, chunk, before) for r, chunk, before in holder[0]._prefills)

    config.setdefault("block_size", 4)
    config.setdefault("watermark", 0.0)
    engine, records = make_engine([chained_batch(rows)], blocks=blocks, on_build=on_build, enable_prefix_caching=True, **config)
    holder.append(engine)
    return engine, records, chunks


def run_checked(engine):
    while engine.advance():
        engine.check_invariants()
    engine.finish_run()


# ---------------------------------------------------------------------------------------------
# Hand-computed cases (block size 4, every iteration 1 s)


def test_second_request_prefills_only_its_suffix():
    # A: 12 prompt tokens, blocks [1, 2, 3]; it finishes at t=2. B shares blocks 1 and 2.
    engine, records, chunks = caching_engine([(0.0, 12, 2, [1, 2, 3]), (5.0, 14, 1, [1, 2, 9])])
    run_checked(engine)
    assert chunks == [(0, 12, 0), (1, 6, 8)]  # B: 14 - 8 cached tokens, attending to the 8
    assert engine.stats.prefix_hit_blocks == 2 and engine.stats.prefix_hit_tokens == 8
    assert engine.stats.prefix_query_tokens == 26 and engine.stats.prefix_query_blocks == 2 + 3


def test_a_fully_cached_prompt_still_computes_its_last_block():
    engine, records, chunks = caching_engine([(0.0, 12, 1, [1, 2, 3]), (5.0, 12, 1, [1, 2, 3])])
    run_checked(engine)
    assert chunks == [(0, 12, 0), (1, 4, 8)]  # at most (12 - 1) // 4 = 2 blocks come from the cache


def test_evictable_blocks_are_evicted_least_recently_released_tail_first():
    rows = [
        (0.0, 8, 1, [1, 2]),  # A, done at t=1: blocks 2, 1 become evictable (tail first)
        (2.0, 8, 1, [3, 4]),  # B, done at t=3: then 4, 3
        (4.0, 24, 1, [5, 6, 7, 8, 9, 10]),  # C needs 6 of the 8 blocks: A's two are evicted
        (8.0, 9, 1, [3, 4]),  # D finds B's blocks still cached
    ]
    engine, records, chunks = caching_engine(rows, blocks=8)
    for _ in range(200):
        if not engine.advance():
            break
        engine.check_invariants()
        if engine.now >= 5.0 and not engine.live and engine.arrived == 3:
            cache = engine.prefix_cache
            assert list(cache.evictable) == [4, 3, 10, 9, 8, 7, 6, 5]
            assert cache.evictions == 2 and set(cache.refs) == {3, 4, 5, 6, 7, 8, 9, 10}
    engine.finish_run()
    assert (3, 1, 8) in chunks  # D prefilled 1 token after 8 cached ones
    assert engine.stats.prefix_hit_blocks == 2


def test_a_shared_block_is_freed_only_when_its_last_user_leaves():
    # A prefills [1, 2] by t=1 and decodes until t=8; B joins at t=2 sharing both blocks and
    # leaves at t=5, while A still holds them.
    engine, records, chunks = caching_engine([(0.0, 8, 8, [1, 2, 3, 4]), (1.5, 9, 3, [1, 2, 5])])
    cache = engine.prefix_cache
    seen_shared = seen_after_b = False
    while engine.advance():
        engine.check_invariants()
        ids = {r.id for r in engine.live}
        if ids == {0, 1} and engine.live[0].cache_refs and engine.live[1].cache_refs:
            seen_shared = True
            assert cache.refs[1] == 2 and cache.refs[2] == 2
        if ids == {0} and engine.arrived == 2:
            seen_after_b = True
            assert cache.refs[1] == 1 and cache.refs[2] == 1 and not cache.evictable
            # A holds 3 blocks (8 prompt tokens + decodes), two of them shared: 1 private
            assert engine.num_blocks - engine.free_blocks == engine.live[0].blocks
    engine.finish_run()
    assert seen_shared and seen_after_b
    assert (1, 1, 8) in chunks
    assert set(cache.evictable) == set(cache.refs) and cache.refs[1] == 0 and cache.refs[2] == 0
    assert engine.free_blocks == engine.num_blocks


def test_cache_refuses_double_release():
    cache = PrefixCache()
    held: list[int] = []
    cache.register([7, 8], held, 2)
    assert cache.release(held) == 2
    with pytest.raises(RuntimeError, match="released more often"):
        cache.release([7])


# ---------------------------------------------------------------------------------------------
# Identity with caching off


def _records(config, seed=3):
    return simulate(config, seed=seed).records


def _unshared(prefix: str) -> WorkloadConfig:
    # multi-turn with one turn per conversation: every request has its own chain
    extra = {} if prefix == "none" else {"prefix": "multi-turn", "turns_mean": 1.0}
    return WorkloadConfig(num_requests=300, lengths="azure-conv", max_prompt_len=2048, **extra)


def _on_off(workload: WorkloadConfig, **engine):
    off = simulate(SimConfig(load=1.0, engine=EngineConfig(**engine), workload=workload), seed=3)
    on = simulate(SimConfig(load=1.0, engine=EngineConfig(enable_prefix_caching=True, **engine), workload=workload), seed=3)
    return off, on


@pytest.mark.parametrize("batching", ["sarathi", "vllm"])
@pytest.mark.parametrize("prefix, blocks", [("none", 600), ("multi-turn-unshared", None)])
def test_caching_without_sharing_gives_the_run_without_caching(batching, prefix, blocks):
    # without chains even a small cache under load (with preemptions) gives the same run; with
    # unshared chains, so does a cache large enough that nobody is preempted
    off, on = _on_off(_unshared(prefix), batching=batching, num_gpu_blocks=blocks, max_num_batched_tokens=4096)
    assert (off.stats.preemptions > 0) == (blocks is not None)
    for key, values in off.records.items():
        np.testing.assert_array_equal(values, on.records[key], err_msg=key)
    assert on.summary["prefix_hit_rate_tokens"] == 0.0 and "prefix_hit_rate_tokens" not in off.summary
    assert {k: v for k, v in on.summary.items() if k in off.summary} == pytest.approx(off.summary, nan_ok=True)


def test_unshared_chains_hit_only_their_own_blocks_after_a_preemption():
    off, on = _on_off(_unshared("multi-turn"), num_gpu_blocks=600, max_num_batched_tokens=4096)
    s = on.stats
    assert s.prefix_admissions == 300 + s.preemptions and s.prefix_hit_tokens > 0  # readmissions find their KV
    assert s.prefix_hit_tokens <= on.records["recomputed_tokens"].sum()


def test_shared_system_prompt_saves_prefill_and_time():
    workload = WorkloadConfig(num_requests=400, lengths="azure-conv", prefix="system-prompt", system_prompt_len=512)
    off = simulate(SimConfig(load=0.9, workload=workload), seed=1)
    on = simulate(SimConfig(load=0.9, engine=EngineConfig(enable_prefix_caching=True), workload=workload), seed=1)
    s = on.summary
    assert 0.2 < s["prefix_hit_rate_tokens"] < 1.0 and s["prefill_tokens_saved"] > 0
    assert s["prefix_hit_rate_blocks"] > s["prefix_hit_rate_tokens"]  # the unique tails are the misses
    assert s["e2e_mean_s"] < off.summary["e2e_mean_s"]


# ---------------------------------------------------------------------------------------------
# Invariants with sharing, fast-forward against the reference


def shared_chains(workload: RequestBatch, seed: int, block_size: int) -> RequestBatch:
    """Give each request a chain: one of three shared heads (random length), then unique blocks."""
    rng = np.random.default_rng(seed)
    chains = []
    next_id = 1000
    for p, o in zip(workload.prompt_len.tolist(), workload.output_len.tolist()):
        n = (p + o) // block_size
        head = min(int(rng.integers(0, 8)), n)
        base = 100 * int(rng.integers(0, 3))
        chains.append(list(range(base, base + head)) + list(range(next_id, next_id + n - head)))
        next_id += n
    workload.block_hash_offsets = np.concatenate([[0], np.cumsum([len(c) for c in chains])]).astype(np.int64)
    workload.block_hash_values = np.asarray([h for c in chains for h in c], dtype=np.int64)
    workload.block_hash_size = block_size
    return workload


def run_cached(engine_kwargs, workload, blocks, policy, *, fast_forward, reference, check):
    engine, records = make_engine(
        [workload], cost=LLAMA, blocks=blocks, policy=policy, swap_s=1e-4, swap_bytes=(4 << 30) / 8,
        reference=reference, fast_forward=fast_forward, enable_prefix_caching=True, **engine_kwargs,
    )
    while engine.advance():
        if check:
            engine.check_invariants()
    engine.finish_run()
    return engine, records.to_arrays()


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    engine_kwargs=st.fixed_dictionaries(
        {
            "batching": st.sampled_from(["sarathi", "orca", "vllm", "static"]),
            "preemption_mode": st.sampled_from(["recompute", "swap", "restart"]),
            "max_num_seqs": st.sampled_from([2, 8, 64]),
            "max_num_batched_tokens": st.sampled_from([64, 512]),
            "block_size": st.sampled_from([4, 16]),
            "admission_preemption": st.booleans(),
        }
    ),
    seed=st.integers(0, 10_000),
    n=st.integers(1, 40),
    rate=st.sampled_from([2.0, 50.0]),
    blocks=st.sampled_from([40, 200]),
    policy=st.sampled_from(sorted(POLICIES)),
)
@example(  # an admission that preempts the only holders of its own prefix hits overdrew the pool
    engine_kwargs={"batching": "sarathi", "preemption_mode": "recompute", "max_num_seqs": 2, "max_num_batched_tokens": 64,
                   "block_size": 4, "admission_preemption": True},
    seed=1, n=12, rate=50.0, blocks=40, policy="spf",
)
def test_invariants_with_sharing_and_fast_forward_equals_reference(engine_kwargs, seed, n, rate, blocks, policy):
    B = engine_kwargs["block_size"]
    workload = shared_chains(random_workload(seed, n, rate, 60.0, 30.0), seed, B)
    fast, fast_records = run_cached(engine_kwargs, workload, blocks, POLICIES[policy](), fast_forward=True, reference=False, check=False)
    slow, slow_records = run_cached(engine_kwargs, workload, blocks, POLICIES[policy](), fast_forward=False, reference=True, check=True)
    assert sorted(fast_records["id"].tolist()) == list(range(n))  # nobody lost or duplicated
    assert set(fast_records["state"].tolist()) <= {RequestState.FINISHED, RequestState.REJECTED}
    assert fast.kv_blocks_used_max <= fast.num_blocks
    assert fast.free_blocks == fast.num_blocks and len(fast.prefix_cache.evictable) == len(fast.prefix_cache.refs)
    order_f, order_s = np.argsort(fast_records["id"]), np.argsort(slow_records["id"])
    for key in fast_records:
        np.testing.assert_allclose(fast_records[key][order_f], slow_records[key][order_s], rtol=1e-9, equal_nan=True, err_msg=key)
    assert fast.stats.prefix_hit_tokens == slow.stats.prefix_hit_tokens


# ---------------------------------------------------------------------------------------------
# Chains: generators, block-size mapping, traces


def test_engine_chain_maps_block_sizes():
    assert engine_chain([5, 6], 8, 8, 100) == [5, 6]
    assert engine_chain([5, 6], 8, 4, 13) == [10, 11, 12]  # 8-token blocks to 4-token blocks, cut at 13 tokens
    assert engine_chain([5, 6, 7, 8], 4, 8, 100) == [6, 8]  # each 8-token block takes its last 4-token hash
    with pytest.raises(ConfigError, match="block_hash_size=6"):
        engine_chain([1], 6, 4, 10)


def _chains(batch: RequestBatch) -> list[list[int]]:
    o, v = batch.block_hash_offsets, batch.block_hash_values
    return [v[o[i] : o[i + 1]].tolist() for i in range(len(batch))]


def test_system_prompt_chains_share_their_head():
    cfg = WorkloadConfig(lengths="fixed", prompt_mean=40, output_mean=8, num_requests=6, prefix="system-prompt",
                         prefix_block_size=4, system_prompt_len=18, num_system_prompts=2)
    batch = next(generate(cfg, 1.0, 0))
    chains = _chains(batch)
    assert all(len(c) == 12 for c in chains)  # (40 + 8) // 4 blocks
    heads = {tuple(c[:4]) for c in chains}  # 18 // 4 = 4 shared blocks
    assert heads <= {(0, 1, 2, 3), (4, 5, 6, 7)}
    tails = [h for c in chains for h in c[4:]]
    assert len(set(tails)) == len(tails) and min(tails) >= 8


def test_multi_turn_prompt_extends_the_previous_exchange():
    cfg = WorkloadConfig(lengths="fixed", prompt_mean=10, output_mean=5, num_requests=5, prefix="multi-turn",
                         prefix_block_size=4, num_conversations=1, turns_mean=1e9)
    batch = next(generate(cfg, 1.0, 0))
    assert batch.prompt_len.tolist() == [10, 25, 40, 55, 70]  # each turn: the whole exchange + 10 new tokens
    chains = _chains(batch)
    for prev, cur in zip(chains, chains[1:]):
        assert cur[: len(prev)] == prev and len(cur) > len(prev)
    prompt, _ = sample_lengths(cfg, 5, 0)
    assert prompt.tolist() == batch.prompt_len.tolist()
    assert mean_lengths(WorkloadConfig(lengths="fixed", prompt_mean=10, output_mean=5, prefix="multi-turn"))[0] > 10


def test_mooncake_hash_ids_are_read_and_mapped(tmp_path):
    rows = [
        {"timestamp": 0, "input_length": 1100, "output_length": 3, "hash_ids": [0, 1, 2]},
        {"timestamp": 10, "input_length": 600, "output_length": 3, "hash_ids": [0, 3]},
    ]
    path = tmp_path / "t.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows))
    trace = read_mooncake(path)
    assert trace.block_hash_offsets.tolist() == [0, 3, 5] and trace.block_hash_values.tolist() == [0, 1, 2, 0, 3]
    cfg = WorkloadConfig(lengths="trace", arrival="trace", trace_path=str(path), num_requests=4, prefix="trace")
    batch = next(generate(cfg, None, 0))
    # partial 512-token blocks are dropped; the replay gets fresh ids
    assert _chains(batch) == [[0, 1], [0], [4, 5], [4]]
    assert batch.block_hash_size == 512
    on = simulate(SimConfig(rate=None, engine=EngineConfig(enable_prefix_caching=True), workload=cfg), seed=0)
    assert on.summary["prefill_tokens_saved"] == 2 * 512  # each replay's second request hits block 0


def test_prefix_config_errors_name_the_field():
    with pytest.raises(ConfigError, match="prefix"):
        WorkloadConfig(prefix="radix")
    with pytest.raises(ConfigError, match="lengths='trace'"):
        WorkloadConfig(prefix="trace")
    with pytest.raises(ConfigError, match="turns_mean"):
        WorkloadConfig(prefix="multi-turn", turns_mean=0.5)
    with pytest.raises(ConfigError, match="enable_prefix_caching"):
        EngineConfig(enable_prefix_caching=1)
    assert math.isfinite(mean_lengths(WorkloadConfig(prefix="system-prompt"))[0])
