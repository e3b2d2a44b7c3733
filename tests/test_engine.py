"""The engine: exact hand-computed cases, invariants, fast-forward vs step-by-step, bad input."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from llmsched_env.sim import (
    FCFS,
    ConfigError,
    EngineConfig,
    LinearCostModel,
    RequestBatch,
    RequestState,
    SimConfig,
    WorkloadConfig,
    get_hardware,
    simulate,
)
from llmsched_env.sim.engine import Engine, _iterations_to_reach
from llmsched_env.sim.request import RecordBuffer

ONE_SECOND = LinearCostModel(intercept_ms=1000.0, prefill_token_ms=0.0, decode_ms=0.0, decode_ctx_ms=0.0, name="1s")
LLAMA = get_hardware("llama2-7b/a100").cost


def batch(rows, predicted=None) -> RequestBatch:
    """rows: (arrival, prompt, output)."""
    arrival, prompt, output = (np.asarray(c) for c in zip(*rows))
    pred = np.asarray(output, dtype=float) if predicted is None else np.asarray(predicted, dtype=float)
    return RequestBatch(arrival.astype(float), prompt.astype(np.int64), output.astype(np.int64), predicted_len=pred)


def make_engine(rows, cost=ONE_SECOND, blocks=10_000, policy=None, swap_s=0.0, swap_bytes=1.0, reference=False, on_build=None, **config):
    records = RecordBuffer()
    engine = Engine(
        EngineConfig(**config),
        cost,
        blocks,
        [batch(rows)] if not isinstance(rows, list) or not rows or not isinstance(rows[0], RequestBatch) else rows,
        policy,
        swap_block_bytes=swap_bytes,
        swap_seconds_per_block=swap_s,
        on_record=records.append,
        reference=reference,
        on_build=on_build,
    )
    return engine, records


def by_id(records: RecordBuffer) -> dict[int, dict]:
    arrays = records.to_arrays()
    return {int(i): {k: v[j] for k, v in arrays.items()} for j, i in enumerate(arrays["id"])}


# ---------------------------------------------------------------------------------------------
# Hand-computed cases


@pytest.mark.parametrize("fast_forward", [True, False])
def test_one_request_alone_takes_its_prefill_plus_decode_times(fast_forward):
    prompt, output, arrival = 100, 6, 0.25
    engine, records = make_engine([(arrival, prompt, output)], cost=LLAMA, fast_forward=fast_forward)
    engine.run()
    prefill = LLAMA.iteration_time(prompt, prompt * prompt, 0, 0, 0)
    # decode j processes the token that takes the context from prompt + j to prompt + j + 1
    decodes = sum(LLAMA.iteration_time(0, 0, 0, 1, prompt + j + 1) for j in range(output - 1))
    r = by_id(records)[0]
    assert r["state"] == RequestState.FINISHED
    assert r["first_scheduled"] == arrival
    assert r["first_token_time"] - arrival == pytest.approx(prefill, rel=1e-12)
    assert r["finish_time"] - arrival == pytest.approx(prefill + decodes, rel=1e-12)
    assert engine.free_blocks == engine.num_blocks


def test_long_prompt_is_prefilled_in_budget_sized_chunks():
    prompt, budget = 5000, 2048
    engine, records = make_engine([(0.0, prompt, 2)], cost=LLAMA, max_num_batched_tokens=budget)
    engine.run()
    chunks = [(2048, 0), (2048, 2048), (904, 4096)]  # (chunk, KV already there)
    prefill = sum(LLAMA.iteration_time(c, c * c, c * before, 0, 0) for c, before in chunks)
    r = by_id(records)[0]
    assert r["first_token_time"] == pytest.approx(prefill, rel=1e-12)
    assert r["finish_time"] == pytest.approx(prefill + LLAMA.iteration_time(0, 0, 0, 1, prompt + 1), rel=1e-12)
    assert engine.stats.iterations == 4


# Two requests on a 4-block cache of 2-token blocks, 1 s per iteration, no watermark:
#   it 1: A and B admitted (1 block each), prefill 2 tokens each -> first tokens at t=1
#   it 2: both cross a block boundary (4 blocks used); it 3: no new block
#   it 4: A needs a 5th block: the lowest-priority holder B (arrived later) is preempted
@pytest.mark.parametrize("fast_forward", [True, False])
def test_tiny_cache_recompute_sequence(fast_forward):
    engine, records = make_engine(
        [(0.0, 2, 6), (0.0, 2, 4)], blocks=4, block_size=2, watermark=0.0, preemption_mode="recompute", fast_forward=fast_forward
    )
    engine.run()
    a, b = by_id(records)[0], by_id(records)[1]
    # B (3 tokens generated, 4 tokens of KV) must prefill 2 + 3 = 5 tokens = 3 blocks; only one is
    # free until A finishes at t=6 (it 6); B's recompute prefill runs in it 7 and emits its last token.
    assert (a["finish_time"], a["preemptions"]) == (6.0, 0)
    assert (b["first_token_time"], b["finish_time"]) == (1.0, 7.0)
    assert (b["preemptions"], b["recompute_preemptions"], b["recomputed_tokens"]) == (1, 1, 4)


@pytest.mark.parametrize("fast_forward", [True, False])
def test_tiny_cache_swap_sequence(fast_forward):
    s = 0.25  # seconds per block moved
    engine, records = make_engine(
        [(0.0, 2, 6), (0.0, 2, 4)],
        blocks=4,
        block_size=2,
        watermark=0.0,
        preemption_mode="swap",
        swap_s=s,
        swap_bytes=1024.0,
        fast_forward=fast_forward,
    )
    engine.run()
    a, b = by_id(records)[0], by_id(records)[1]
    # it 4 swaps B's 2 blocks out (+2s); B needs 3 blocks to come back (its KV + the next token),
    # which it gets after A finishes at 6 + 2s; it 7 swaps the 2 blocks back in (+2s) and decodes B's last token.
    assert a["finish_time"] == pytest.approx(6.0 + 2 * s)
    assert b["finish_time"] == pytest.approx(7.0 + 4 * s)
    assert (b["swap_preemptions"], b["swapped_blocks"], b["recomputed_tokens"]) == (1, 2, 0)
    assert engine.stats.swap_time == pytest.approx(4 * s)


@pytest.mark.parametrize("fast_forward", [True, False])
def test_tiny_cache_restart_sequence(fast_forward):
    engine, records = make_engine(
        [(0.0, 2, 6), (0.0, 2, 4)], blocks=4, block_size=2, watermark=0.0, preemption_mode="restart", fast_forward=fast_forward
    )
    engine.run()
    a, b = by_id(records)[0], by_id(records)[1]
    # it 4: B restarted (loses 3 tokens), re-admitted in the same iteration (its 1 block fits);
    # it 5: B needs a 2nd block, none free and nobody below it: it restarts itself and is re-admitted;
    # it 6: A needs a block and evicts B again; A finishes at t=6;
    # it 7-10: B runs alone: prefill (token 1) + 3 decodes, finishing at t=10.
    assert a["finish_time"] == 6.0
    assert (b["first_token_time"], b["finish_time"]) == (1.0, 10.0)  # TTFT counts the first first token
    assert (b["preemptions"], b["restart_preemptions"], b["recomputed_tokens"]) == (3, 3, 4 + 2 + 2)


class LeastServedFirst:
    """Least attained service first: a restarted request (no tokens left) jumps ahead of the others."""

    name = "las"
    dynamic = True

    def priorities(self, requests, now):
        return [r.generated for r in requests]


@pytest.mark.parametrize("fast_forward", [True, False])
def test_restart_livelock_is_stopped_with_a_verdict(fast_forward):
    # Two requests that fit the 4-block cache only one at a time: the one that needs a block
    # restarts the other, which, back at 0 tokens, comes first and restarts it in turn. Neither
    # ever finishes. Every 3 x 2 preemptions the engine checks for progress: at the first check
    # (6) it notes how far the requests got, at the second (12) they got no further: it stops.
    rows = [(0.0, 2, 6), (0.0, 2, 6)]
    engine, records = make_engine(
        rows, blocks=4, block_size=2, watermark=0.0, preemption_mode="restart", policy=LeastServedFirst(),
        fast_forward=fast_forward, livelock_preemptions=3,
    )  # fmt: skip
    engine.run()
    assert engine.stats.livelock and engine.completed == 0 and engine.stats.preemptions == 2 * 3 * 2
    assert engine.livelock == (
        "livelock: 12 preemptions and no request finished since the start; over the last 6 no request was served "
        "further than before (t=19.000 s; 2 requests in the system, 0 finished; bound livelock_preemptions=3 x "
        "requests in the system)"
    )
    assert engine.now == 20.0  # the iteration under way when it was found ends the run
    recs = by_id(records)
    assert sorted(recs) == [0, 1] and all(r["state"] != RequestState.FINISHED for r in recs.values())  # reported, unfinished
    assert [recs[i]["preemptions"] for i in (0, 1)] == [6, 6]
    engine.check_invariants()


def test_preemptions_with_progress_are_not_a_livelock():
    """The oldest request needs the whole cache for its last tokens and restarts the younger ones
    again and again (FCFS): 23 preemptions for 3 requests, far over 1 per request between
    completions, but the requests get further each time and the run ends as without the check."""
    rows = [(0.0, 2, 60), (0.0, 2, 40), (0.0, 2, 40)]
    runs = [make_engine(rows, blocks=31, block_size=2, watermark=0.0, preemption_mode="restart", livelock_preemptions=k) for k in (1, 0)]
    for engine, _ in runs:
        engine.run()
        assert not engine.stats.livelock and engine.completed == 3 and engine.stats.preemptions == 23
    (_, checked), (_, unchecked) = runs
    assert by_id(checked) == by_id(unchecked)


def test_livelock_bound_counts_preemptions_since_the_latest_completion():
    rows = [(0.0, 2, 6), (0.0, 2, 6), (10.0, 1, 1)]  # the third finishes at its prefill, at t=11
    engine, records = make_engine(
        rows, blocks=4, block_size=2, watermark=0.0, preemption_mode="restart", policy=LeastServedFirst(), livelock_preemptions=3
    )
    engine.run()
    assert by_id(records)[2]["finish_time"] == 11.0
    assert engine.stats.preemptions == 6 + 2 * 3 * 2  # six before the completion, then two windows again
    assert "12 preemptions and no request finished since the last completion at t=11.000 s; over the last 6" in engine.livelock
    assert "(t=28.000 s; 2 requests in the system, 1 finished;" in engine.livelock
    off, _ = make_engine(rows, blocks=4, block_size=2, watermark=0.0, preemption_mode="restart", policy=LeastServedFirst(), livelock_preemptions=0)
    off.max_time = 100.0
    off.run()  # 0: never stopped (here the time limit ends it)
    assert not off.stats.livelock and off.livelock == "" and off.now >= 100.0


def test_swap_that_does_not_fit_falls_back_to_recompute():
    engine, records = make_engine(
        [(0.0, 2, 6), (0.0, 2, 4)], blocks=4, block_size=2, watermark=0.0, preemption_mode="swap", swap_s=0.25, swap_bytes=0.0
    )
    engine.run()  # no swap space at all
    b = by_id(records)[1]
    assert engine.stats.swap_fallbacks == 1
    assert (b["swap_preemptions"], b["recompute_preemptions"], b["finish_time"]) == (0, 1, 7.0)


# Li, Dai & Peng's toy example: A, B, C decoding with 2, 4, 3 tokens left when D and E arrive with
# 1 prefill + 1 decode token each; token budget 4; one time unit per iteration. Batches by hand:
TOY_BATCHES = {
    # stall-free: decodes first, the leftover budget to prefills (1-token prefills are whole, so Orca = Sarathi)
    "sarathi": ["ABC", "ABCD", "ABCD", "BCE", "BE"],
    "orca": ["ABC", "ABCD", "ABCD", "BCE", "BE"],
    # prefill-prioritising: D and E prefill alone, stalling A, B, C; then 5 decodes exceed the
    # budget, so E (last in FCFS order) waits one iteration
    "vllm": ["ABC", "DE", "ABCD", "ABCE", "BC", "B"],
    # FasterTransformer: D and E wait until the whole batch A, B, C is done
    "static": ["ABC", "ABC", "ABC", "BC", "B", "DE", "DE"],
}
TOY_FINISH = {
    "sarathi": dict(A=3, B=5, C=4, D=3, E=5),
    "orca": dict(A=3, B=5, C=4, D=3, E=5),
    "vllm": dict(A=4, B=6, C=5, D=3, E=4),
    "static": dict(A=3, B=5, C=4, D=7, E=7),
}


@pytest.mark.parametrize("rule", sorted(TOY_BATCHES))
def test_li_dai_peng_toy_example_batches(rule):
    rows = [(0.0, 1, 3), (0.0, 1, 5), (0.0, 1, 4), (0.5, 1, 2), (0.5, 1, 2)]  # after it 1: 2, 4, 3 tokens left
    names = "ABCDE"
    batches = []
    engine, records = make_engine(
        rows,
        batching=rule,
        max_num_batched_tokens=4,
        fast_forward=False,
        on_build=lambda decoding, prefilling: batches.append("".join(sorted(names[r.id] for r in decoding + prefilling))),
    )
    engine.run()
    assert batches == TOY_BATCHES[rule]
    finish = {names[i]: rec["finish_time"] for i, rec in by_id(records).items()}
    assert finish == TOY_FINISH[rule]


def test_max_num_seqs_one_fcfs_matches_pollaczek_khinchine():
    """M/D/1: one request at a time, no memory limit, every request takes k iterations of c seconds."""
    k, c, rho, n = 5, 0.01, 0.7, 20_000
    service = k * c
    rate = rho / service
    config = SimConfig(
        engine=EngineConfig(max_num_seqs=1, num_gpu_blocks=1_000_000, watermark=0.0),
        workload=WorkloadConfig(lengths="fixed", prompt_mean=1, output_mean=k, num_requests=n),
        rate=rate,
        seed=3,
    )
    cost = LinearCostModel(intercept_ms=1000 * c, prefill_token_ms=0.0, decode_ms=0.0, decode_ctx_ms=0.0)
    result = simulate(config, cost_model=cost)
    e2e = result.records["finish_time"] - result.records["arrival"]
    expected = service + rate * service**2 / (2 * (1 - rho))  # Pollaczek-Khinchine, deterministic service
    # 95 % confidence interval from 20 batch means (the response times are autocorrelated)
    means = np.array([b.mean() for b in np.array_split(e2e[n // 10 :], 20)])
    half_width = 2.09 * means.std(ddof=1) / math.sqrt(len(means))
    assert abs(e2e[n // 10 :].mean() - expected) < half_width + 1e-9, (e2e.mean(), expected, half_width)


# ---------------------------------------------------------------------------------------------
# Invariants and equivalences on random workloads


def random_workload(seed: int, n: int, rate: float, prompt_mean: float, output_mean: float) -> RequestBatch:
    rng = np.random.default_rng(seed)
    arrival = np.cumsum(rng.exponential(1 / rate, n))
    prompt = np.maximum(1, rng.lognormal(math.log(prompt_mean), 0.9, n)).astype(np.int64)
    output = np.maximum(1, rng.lognormal(math.log(output_mean), 0.9, n)).astype(np.int64)
    predicted = output * rng.lognormal(0.0, 0.5, n)
    return RequestBatch(arrival, prompt, output, predicted_len=predicted)


class ShortestPredictedFirst:
    """A static non-FCFS order, to exercise priority-driven preemption."""

    name = "spf"
    dynamic = False

    def priorities(self, requests, now):
        return [r.predicted_output for r in requests]


class ShortestRemainingFirst:
    """A dynamic policy (re-scored at every epoch)."""

    name = "srpt"
    dynamic = True

    def priorities(self, requests, now):
        return [r.output_len - r.generated for r in requests]


POLICIES = {"fcfs": FCFS, "spf": ShortestPredictedFirst, "srpt": ShortestRemainingFirst}

engine_settings = st.fixed_dictionaries(
    {
        "batching": st.sampled_from(["sarathi", "orca", "vllm", "static"]),
        "preemption_mode": st.sampled_from(["recompute", "swap", "restart"]),
        "max_num_seqs": st.sampled_from([2, 8, 64]),
        "max_num_batched_tokens": st.sampled_from([64, 512, 4096]),
        "block_size": st.sampled_from([4, 16]),
        "watermark": st.sampled_from([0.0, 0.01, 0.1]),
    }
)
workload_settings = st.fixed_dictionaries(
    {
        "seed": st.integers(0, 10_000),
        "n": st.integers(1, 60),
        "rate": st.sampled_from([2.0, 20.0, 200.0]),
        "prompt_mean": st.sampled_from([8.0, 100.0, 600.0]),
        "output_mean": st.sampled_from([4.0, 50.0, 300.0]),
    }
)


def run_records(engine_kwargs, workload, blocks, policy, *, fast_forward, reference, check=False, swap_blocks=1):
    engine, records = make_engine(
        [workload],
        cost=LLAMA,
        blocks=blocks,
        policy=policy,
        swap_s=1e-4,
        swap_bytes=(4 << 30) / swap_blocks,  # swap space of swap_blocks blocks
        reference=reference,
        fast_forward=fast_forward,
        **engine_kwargs,
    )
    seen_generated: dict[int, tuple[int, int]] = {}
    while engine.advance():
        if check:
            engine.check_invariants()
            assert engine.num_blocks - engine.free_blocks <= engine.num_blocks
            for r in engine.live:  # tokens never go backwards, except when a restart discards them
                before = seen_generated.get(r.id)
                if before is not None and before[1] == r.restart_preemptions:
                    assert r.generated >= before[0], r
                seen_generated[r.id] = (r.generated, r.restart_preemptions)
    engine.finish_run()
    return engine, records.to_arrays()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(engine_kwargs=engine_settings, wl=workload_settings, blocks=st.sampled_from([40, 200, 5000]),
       policy=st.sampled_from(sorted(POLICIES)), swap_blocks=st.sampled_from([2, 50]))
def test_invariants_and_fast_forward_equals_reference(engine_kwargs, wl, blocks, policy, swap_blocks):
    workload = random_workload(**wl)
    fast, fast_records = run_records(engine_kwargs, workload, blocks, POLICIES[policy](), fast_forward=True, reference=False, swap_blocks=swap_blocks)
    slow, slow_records = run_records(
        engine_kwargs, workload, blocks, POLICIES[policy](), fast_forward=False, reference=True, check=True, swap_blocks=swap_blocks
    )
    # no request lost or duplicated: every arrival is reported exactly once
    assert sorted(fast_records["id"].tolist()) == list(range(wl["n"]))
    states = fast_records["state"]
    assert set(states.tolist()) <= {RequestState.FINISHED, RequestState.REJECTED}  # the run drains
    done = states == RequestState.FINISHED
    assert np.all(fast_records["first_token_time"][done] <= fast_records["finish_time"][done])
    assert np.all(fast_records["arrival"][done] <= fast_records["first_scheduled"][done])
    assert np.all(fast_records["generated"][done] == fast_records["output_len"][done])
    assert fast.kv_blocks_used_max <= fast.num_blocks
    # the fast paths give the reference's per-request results
    order_f, order_s = np.argsort(fast_records["id"]), np.argsort(slow_records["id"])
    for key in fast_records:
        np.testing.assert_allclose(fast_records[key][order_f], slow_records[key][order_s], rtol=1e-9, equal_nan=True, err_msg=key)
    assert fast.stats.iterations == slow.stats.iterations
    assert fast.stats.preemptions == slow.stats.preemptions


def test_fast_forward_skips_iterations():
    workload = random_workload(seed=1, n=300, rate=5.0, prompt_mean=200, output_mean=200)
    fast, _ = run_records({}, workload, 7424, FCFS(), fast_forward=True, reference=False)
    assert fast.stats.iterations > 5 * fast.stats.stretches  # O(events), not O(tokens)


def test_same_seed_same_run_and_seeds_differ():
    config = SimConfig(workload=WorkloadConfig(num_requests=200), load=0.8)
    a, b, c = simulate(config, seed=5), simulate(config, seed=5), simulate(config, seed=6)
    for key in a.records:
        np.testing.assert_array_equal(a.records[key], b.records[key])
    assert not np.array_equal(a.records["finish_time"], c.records["finish_time"])


def test_requests_that_can_never_fit_are_rejected_not_looped_on():
    # 8 blocks of 16 tokens = 128 tokens: request 1 needs 200 + 100 - 1 tokens of KV
    rows = [(0.0, 50, 20), (0.1, 200, 100), (0.2, 60, 60), (0.3, 100, 20)]
    engine, records = make_engine(rows, cost=LLAMA, blocks=8, watermark=0.0)
    engine.run()
    got = by_id(records)
    assert got[1]["state"] == RequestState.REJECTED and engine.stats.rejected == 1
    assert all(got[i]["state"] == RequestState.FINISHED for i in (0, 2, 3))


def test_no_livelock_under_heavy_kv_pressure():
    # every request needs most of the cache: they must take turns, and all finish
    rows = [(0.0, 40, 80)] * 30
    for mode in ("recompute", "swap", "restart"):
        engine, records = make_engine(rows, cost=LLAMA, blocks=9, block_size=16, watermark=0.0, preemption_mode=mode, swap_s=1e-3, swap_bytes=1 << 20)
        engine.run()
        states = records.to_arrays()["state"]
        assert np.all(states == RequestState.FINISHED), mode
        assert engine.stats.iterations < 100_000


def test_unfinished_requests_are_reported_at_the_time_limit():
    config = SimConfig(workload=WorkloadConfig(num_requests=300), load=2.0, max_time_s=30.0)
    result = simulate(config)
    s = result.summary
    assert s["arrived"] == s["finished"] + s["unfinished"] + s["rejected"]
    assert s["unfinished"] > 0
    unfinished = result.records["state"] != RequestState.FINISHED
    assert np.all(np.isnan(result.records["finish_time"][unfinished]))


def test_iterations_to_reach_is_the_smallest_count():
    rng = np.random.default_rng(0)
    for _ in range(2000):
        a0, q, delta = rng.uniform(1e-3, 0.1), rng.choice([0.0, rng.uniform(0, 1e-3)]), rng.uniform(0, 50)
        n = _iterations_to_reach(delta, a0, q)
        total = lambda m: m * a0 + q * m * (m - 1) / 2  # noqa: E731
        assert total(n) >= delta and (n == 1 or total(n - 1) < delta)


# ---------------------------------------------------------------------------------------------
# Bad input


class BadPolicy:
    name = "bad"
    dynamic = False

    def __init__(self, scores):
        self.scores = scores

    def priorities(self, requests, now):
        return self.scores(requests)


@pytest.mark.parametrize(
    "scores, message",
    [
        (lambda rs: [math.nan] * len(rs), "priority nan"),
        (lambda rs: [math.inf] * len(rs), "priority inf"),
        (lambda rs: [0.0] * (len(rs) + 1), "returned 2 priorities for 1 requests"),
        (lambda rs: None, "returned None from priorities"),
        (lambda rs: ["soon"] * len(rs), "returned priority 'soon' for request 0"),
        (lambda rs: np.zeros((len(rs), 2)), "returned priority array"),
    ],
)
def test_policy_returning_bad_priorities_is_a_clear_error(scores, message):
    engine, _ = make_engine([(0.0, 10, 10)], policy=BadPolicy(scores))
    with pytest.raises(ConfigError, match=message):
        engine.run()


class NoDynamic:
    name = "incomplete"

    def priorities(self, requests, now):
        return [0.0] * len(requests)


@pytest.mark.parametrize("policy, message", [(object(), "priorities"), (NoDynamic(), "boolean attribute 'dynamic'")])
def test_an_object_that_is_not_a_policy_is_a_clear_error(policy, message):
    with pytest.raises(ConfigError, match=message):
        make_engine([(0.0, 10, 10)], policy=policy)


@pytest.mark.parametrize(
    "kwargs, field",
    [
        (dict(batching="fifo"), "batching"),
        (dict(max_num_seqs=0), "max_num_seqs"),
        (dict(max_num_batched_tokens=-5), "max_num_batched_tokens"),
        (dict(num_gpu_blocks=0), "num_gpu_blocks"),
        (dict(block_size=0), "block_size"),
        (dict(watermark=1.0), "watermark"),
        (dict(preemption_mode="drop"), "preemption_mode"),
        (dict(gpu_memory_utilization=0.0), "gpu_memory_utilization"),
        (dict(swap_space_gib=-1), "swap_space_gib"),
    ],
)
def test_bad_engine_config_names_the_field(kwargs, field):
    with pytest.raises(ConfigError, match=field):
        EngineConfig(**kwargs)


@pytest.mark.parametrize(
    "kwargs, field",
    [(dict(load=0.0), "load"), (dict(load=-1.0), "load"), (dict(rate=0.0), "rate"), (dict(seed=-1), "seed")],
)
def test_bad_run_config_names_the_field(kwargs, field):
    with pytest.raises(ConfigError, match=field):
        SimConfig(**kwargs)


def test_unknown_hardware_lists_the_presets():
    with pytest.raises(ConfigError, match="llama2-7b/a100"):
        simulate(SimConfig(engine=EngineConfig(hardware="gpt-5/tpu")))


def test_kv_cache_smaller_than_the_prompts_is_a_config_error():
    config = SimConfig(engine=EngineConfig(num_gpu_blocks=4), workload=WorkloadConfig(num_requests=10))
    with pytest.raises(ConfigError, match="num_gpu_blocks=4"):
        simulate(config)


def test_workload_without_predictions_is_rejected():
    raw = RequestBatch(np.zeros(1), np.ones(1, dtype=np.int64), np.ones(1, dtype=np.int64))
    with pytest.raises(ConfigError, match="predictions"):
        Engine(EngineConfig(), ONE_SECOND, 100, [raw])


@pytest.mark.parametrize("fast_forward", [True, False])
def test_prediction_cost_is_charged_to_the_iteration_that_makes_the_predictions(fast_forward):
    # 1 s per iteration, 0.5 s per prediction: A and B are first served together at t=0 (two
    # predictions: the iteration takes 2 s, first tokens at 2), decode their 2nd token by 3; C
    # arrives at 2.5 and joins at 3 with its prediction: that iteration takes 1.5 s, and A and B's
    # 3rd token and C's only one come at 4.5.
    rows = [(0.0, 10, 3), (0.0, 10, 3), (2.5, 10, 1)]
    records = RecordBuffer()
    engine = Engine(
        EngineConfig(fast_forward=fast_forward), ONE_SECOND, 10_000, [batch(rows)], None,
        prediction_cost_s=0.5, on_record=records.append,
    )
    engine.run()
    rec = by_id(records)
    assert [float(rec[i]["first_token_time"]) for i in range(3)] == [2.0, 2.0, 4.5]
    assert [float(rec[i]["finish_time"]) for i in range(3)] == [4.5, 4.5, 4.5]
    assert engine.stats.prediction_time == pytest.approx(1.5)
