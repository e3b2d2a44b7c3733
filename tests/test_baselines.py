"""The heuristic baselines: exact orders and preemption decisions on tiny hand-made queues run
through the real engine, the registry, the system presets, and orderings theory guarantees."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import numpy as np
import pytest

import baselines
from baselines.base import TIER, front
from baselines.systems import SYSTEMS, system_config
from llmsched_env.sim import (
    FCFS as EngineFCFS,
)
from llmsched_env.sim import (
    ConfigError,
    EngineConfig,
    LinearCostModel,
    Policy,
    RequestBatch,
    RequestState,
    SimConfig,
    WorkloadConfig,
    get_hardware,
    load_config,
    simulate,
)
from llmsched_env.sim.engine import Engine
from llmsched_env.sim.request import RecordBuffer

ONE_SECOND = LinearCostModel(intercept_ms=1000.0, prefill_token_ms=0.0, decode_ms=0.0, decode_ctx_ms=0.0, name="1s")
LLAMA = get_hardware("llama2-7b/a100").cost
POLY = "llama2-7b/a100-poly"  # closed-form times, for hand-computed cases
CONFIGS = Path(__file__).resolve().parents[1] / "configs" / "systems"
RUNNING, WAITING = RequestState.RUNNING, RequestState.WAITING


def run(rows, policy, *, predicted=None, refresh=None, refresh_every=0, cost=ONE_SECOND, blocks=10_000, decision_interval=0, **config):
    """Run rows of (arrival, prompt, output) through a tiny engine.

    Returns the batches (names of the requests in each iteration, A = row 0) and the records by name.
    """
    arrival, prompt, output = (np.asarray(c) for c in zip(*rows))
    pred = np.asarray(output if predicted is None else predicted, dtype=float)
    batch = RequestBatch(arrival.astype(float), prompt.astype(np.int64), output.astype(np.int64), predicted_len=pred)
    if refresh is not None:  # refresh[i]: request i's refreshed remaining-length predictions
        batch.refresh_offsets = np.cumsum([0] + [len(v) for v in refresh]).astype(np.int64)
        batch.refresh_values = np.asarray([x for v in refresh for x in v], dtype=float)
    names = "ABCDEFGH"
    batches: list[str] = []
    records = RecordBuffer()
    engine = Engine(
        EngineConfig(**{"watermark": 0.0, "fast_forward": False, **config}),  # one build per iteration
        cost,
        blocks,
        [batch],
        policy,
        refresh_every=refresh_every,
        on_record=records.append,
        decision_interval=decision_interval,
        on_build=lambda dec, pre: batches.append("".join(sorted(names[r.id] for r in dec + pre))),
    )
    engine.run()
    arrays = records.to_arrays()
    by_name = {names[int(i)]: {k: v[j] for k, v in arrays.items()} for j, i in enumerate(arrays["id"])}
    return batches, by_name


# ---------------------------------------------------------------------------------------------
# KV-pressure scenario (1 s per iteration, 6 blocks of 4 tokens, no watermark, and admission
# preemption as in vLLM V0's priority scheduling, so that an arrival may evict to get in):
#   A (t=0, prompt 16, 8 tokens) prefills 4 blocks, takes a 5th at its first decode and has 4 tokens
#   at t=4, when B (arrived 3.5, prompt 8 = 2 blocks) enters with 1 block free: B can start only if
#   A is preempted. Without preemption A finishes at 8 and B at 10; with it B runs at once (finishing
#   at 6) and A recomputes its 20 tokens when B is done (t=6), finishing at 10.
def KV_ROWS(b_output: int = 2) -> list[tuple[float, int, int]]:
    return [(0.0, 16, 8), (3.5, 8, b_output)]


KV_ENGINE = dict(blocks=6, block_size=4, admission_preemption=True)
NO_PREEMPTION = ["A"] * 8 + ["B", "B"]
PREEMPTION = ["A"] * 4 + ["B", "B"] + ["A"] * 4


def finish(records, name):
    return float(records[name]["finish_time"])


@pytest.mark.parametrize("spec", ["fcfs", "sjf"])
def test_non_preemptive_policies_never_evict_for_a_shorter_arrival(spec):
    # B is shorter in truth and in prediction: non-preemptive policies still let A finish
    batches, rec = run(KV_ROWS(), baselines.parse(spec), predicted=[100.0, 1.0], **KV_ENGINE)
    assert batches == NO_PREEMPTION
    assert (finish(rec, "A"), finish(rec, "B")) == (8.0, 10.0)
    assert rec["A"]["preemptions"] == 0


def test_srpt_preempts_for_a_shorter_arrival_only():
    batches, rec = run(KV_ROWS(b_output=2), baselines.make("srpt"), **KV_ENGINE)  # B: 2 left < A: 4 left
    assert batches == PREEMPTION
    assert (finish(rec, "A"), finish(rec, "B")) == (10.0, 6.0)
    assert (rec["A"]["preemptions"], rec["A"]["recomputed_tokens"]) == (1, 19)  # 16 prompt + 3 decoded
    batches, _ = run(KV_ROWS(b_output=5), baselines.make("srpt"), **KV_ENGINE)  # B: 5 left > A: 4 left
    assert batches == ["A"] * 8 + ["B"] * 5


@pytest.mark.parametrize("spec", ["srpt", "sprpt", "trail"])
def test_by_default_an_arrival_waits_for_free_memory_whatever_its_priority(spec):
    # vLLM V1 semantics (admission_preemption=False): B outranks A but cannot get in by eviction
    batches, rec = run(KV_ROWS(), baselines.make(spec), predicted=[8.0, 2.0], blocks=6, block_size=4)
    assert batches == NO_PREEMPTION
    assert rec["A"]["preemptions"] == rec["B"]["preemptions"] == 0


# Growth scenario (default semantics): A (t=0, prompt 8, 12 tokens) and B (t=0.5, prompt 8, 8 tokens)
# both get in (2 blocks each). A takes its 3rd block at t=1, B its 3rd at t=2: the cache is full. At
# t=5 A (5 tokens generated, context 12) needs a 4th block. The victim is the
# lower-ranked holder: FCFS evicts B (the later arrival; 4 tokens generated, 11 tokens of KV), which
# recomputes 12 tokens at t=12 once A is done and finishes at 16; SRPT ranks B first (4 tokens left
# against A's 7), so A gives way itself (12 tokens of KV), B finishes at 9 and A at 16.
GROWTH_ROWS = [(0.0, 8, 12), (0.5, 8, 8)]


def test_when_a_context_grows_the_lowest_ranked_holder_is_preempted():
    fcfs, rec = run(GROWTH_ROWS, baselines.make("fcfs"), blocks=6, block_size=4)
    assert fcfs == ["A"] + ["AB"] * 4 + ["A"] * 7 + ["B"] * 4
    assert (finish(rec, "A"), finish(rec, "B")) == (12.0, 16.0)
    assert (rec["B"]["preemptions"], rec["B"]["recomputed_tokens"], rec["A"]["preemptions"]) == (1, 11, 0)
    srpt, rec = run(GROWTH_ROWS, baselines.make("srpt"), blocks=6, block_size=4)
    assert srpt == ["A"] + ["AB"] * 4 + ["B"] * 4 + ["A"] * 7
    assert (finish(rec, "A"), finish(rec, "B")) == (16.0, 9.0)
    assert (rec["A"]["preemptions"], rec["A"]["recomputed_tokens"], rec["B"]["preemptions"]) == (1, 12, 0)


def test_sprpt_follows_predictions_where_srpt_follows_the_truth():
    # A is predicted very long (100) but has 4 tokens left; B is predicted 1 but needs 5
    srpt, _ = run(KV_ROWS(b_output=5), baselines.make("srpt"), predicted=[100.0, 1.0], **KV_ENGINE)
    sprpt, _ = run(KV_ROWS(b_output=5), baselines.make("sprpt"), predicted=[100.0, 1.0], **KV_ENGINE)
    assert srpt == ["A"] * 8 + ["B"] * 5
    assert sprpt == ["A"] * 4 + ["B"] * 5 + ["A"] * 4


@pytest.mark.parametrize(
    "C, preempted",
    [
        (0.8, True),  # 4 tokens <= 0.8 x 8: still preemptible (the paper's default)
        (0.5, True),  # 4 <= 0.5 x 8: the window includes its end
        (0.4, False),  # 4 > 0.4 x 8: past its window, A is never preempted
        (0.0, False),  # only requests that have not produced a token are preemptible
    ],
)
def test_trail_preempts_only_within_c_times_the_initial_prediction(C, preempted):
    batches, rec = run(KV_ROWS(), baselines.make("trail", C=C), predicted=[8.0, 2.0], **KV_ENGINE)
    assert batches == (PREEMPTION if preempted else NO_PREEMPTION)
    assert rec["A"]["preemptions"] == int(preempted)


def test_trail_ranks_by_the_refined_prediction():
    # A's initial prediction (100) makes it the longer job and keeps it preemptible (100 x 0.8);
    # every 2 tokens the refining predictor says 1 token is left, so at t=4 its predicted
    # remaining time is 4 + 1 - 4 = 1 < B's 2, and B waits.
    refresh = [[1.0, 1.0, 1.0], []]  # A: checkpoints at 2, 4 and 6 tokens
    stale, _ = run(KV_ROWS(), baselines.make("trail"), predicted=[100.0, 2.0], **KV_ENGINE)
    refined, _ = run(KV_ROWS(), baselines.make("trail"), predicted=[100.0, 2.0], refresh=refresh, refresh_every=2, **KV_ENGINE)
    assert stale == PREEMPTION
    assert refined == NO_PREEMPTION


def test_mlfq_preempts_a_demoted_request_for_a_new_arrival_whatever_its_length():
    # MLFQ prices first iterations with the polynomial A100 preset: prompts of 16 and 8 tokens cost 0.86
    # and 0.80 lone-decode iterations, so A and B join level 0 and reach levels 1, 2, 3 after 2, 4
    # and 8 tokens (quanta 1, 2, 4). A is at level 2 when B (12 tokens, more than A's 4 left) joins
    # level 0 and evicts it at t=4. B keeps running at level 2 (the last batch comes first within a
    # level) until its 8th token at t=12 demotes it to level 3, below A: A evicts B, recomputes its
    # 20 tokens and finishes at 16; B recomputes 16 tokens and finishes at 20.
    # decision_interval=1 takes an epoch every iteration; the wake-ups alone give the same run (below).
    rows = [(0.0, 16, 8), (3.5, 8, 12)]
    batches, rec = run(rows, baselines.make("mlfq", hardware=POLY), decision_interval=1, **KV_ENGINE)
    assert batches == ["A"] * 4 + ["B"] * 8 + ["A"] * 4 + ["B"] * 4
    assert (finish(rec, "A"), finish(rec, "B")) == (16.0, 20.0)
    assert (rec["A"]["preemptions"], rec["B"]["preemptions"]) == (1, 1)
    assert run(rows, baselines.make("srpt"), decision_interval=1, **KV_ENGINE)[0] == ["A"] * 8 + ["B"] * 12


def test_fcfs_is_the_engines_default_order():
    config = SimConfig(load=0.95, workload=WorkloadConfig(num_requests=300))
    a, b = simulate(config, EngineFCFS(), seed=4), simulate(config, baselines.make("fcfs"), seed=4)
    for key in a.records:
        np.testing.assert_array_equal(a.records[key], b.records[key], err_msg=key)


def test_sjf_serves_waiting_requests_shortest_predicted_first_and_srpt_by_true_length():
    rows = [(0.0, 4, 3), (0.0, 4, 2), (0.0, 4, 1)]  # one batch slot: each runs to completion
    predicted = [1.0, 3.0, 2.0]  # wrong on purpose: A looks shortest
    assert run(rows, baselines.make("fcfs"), predicted=predicted, max_num_seqs=1)[0] == list("AAABBC")
    assert run(rows, baselines.make("sjf"), predicted=predicted, max_num_seqs=1)[0] == list("AAACBB")
    assert run(rows, baselines.make("srpt"), predicted=predicted, max_num_seqs=1)[0] == list("CBBAAA")


# ---------------------------------------------------------------------------------------------
# Scores and wake-ups, checked directly on stand-in requests


@dataclasses.dataclass
class Req:
    """The attributes of llmsched_env.sim.Request that the baselines read."""

    id: int = 0
    arrival: float = 0.0
    prompt_len: int = 100
    output_len: int = 50
    generated: int = 0
    discarded_tokens: int = 0
    state: RequestState = WAITING
    predicted_output: float = 50.0
    initial_prediction: float = 50.0
    first_scheduled: float = math.nan
    kv_tokens: int = 0
    prefill_target: int = 100

    @property
    def in_prefill(self) -> bool:
        return self.kv_tokens < self.prefill_target


def running(generated: int, **kw) -> Req:
    prompt = kw.pop("prompt_len", 100)
    return Req(prompt_len=prompt, generated=generated, state=RUNNING, first_scheduled=0.0,
               kv_tokens=prompt + generated - 1, prefill_target=prompt, **kw)


def test_front_tier_is_below_every_ordinary_score_and_keeps_order():
    assert front(-1e6) < front(3.0) < front(1e12) < -TIER < -1e6
    assert front(1e12) == front(2e12)  # clipped


def test_sjf_puts_started_requests_ahead_and_keeps_their_shortest_first_order():
    waiting, long_started, short_started = Req(initial_prediction=1.0), running(5, initial_prediction=900.0), running(5, initial_prediction=30.0)
    scores = baselines.make("sjf").priorities([waiting, long_started, short_started], 0.0)
    assert scores[2] < scores[1] < scores[0] == 1.0


def test_trail_scores_and_wakeup():
    trail = baselines.make("trail", C=0.5)
    young, old = running(3, predicted_output=10.0, initial_prediction=10.0), running(6, predicted_output=20.0, initial_prediction=10.0)
    young_score, old_score, waiting_score = trail.priorities([young, old, Req(predicted_output=4.0)], 0.0)
    assert (young_score, waiting_score) == (7.0, 4.0)
    assert old_score == front(14.0)  # 6 > 0.5 x 10: not preemptible
    assert trail.wakeup([young, old], 0.0) == 3  # young passes 0.5 x 10 at its 6th token
    assert trail.wakeup([old, Req()], 0.0) is None


def test_mlfq_skip_join_entry_levels_on_the_polynomial_a100_preset():
    # first iteration / lone decode iteration = (6.899 + 0.06442 P + 4.587e-6 P^2) / 9.221043 ms
    mlfq = baselines.make("mlfq", hardware=POLY)
    assert mlfq.first_iteration(2340) == pytest.approx(182.75845 / 9.221043, rel=1e-6)
    assert mlfq.entry(1) == (0, 2)  # 0.755 units: 2 tokens to use up the 1-unit quantum
    assert mlfq.entry(100) == (1, 2)  # 1.45 units: level 1 (quantum 2), demoted after 2 tokens
    assert mlfq.entry(2340) == (5, 14)  # 19.8 units: level 5 (quantum 32), as FastServe's 10 ms x 2^5
    assert baselines.make("mlfq", hardware=POLY, skip_join=False).entry(2340) == (0, 1)  # plain MLFQ: demoted after the prefill
    # the default hardware (profile-driven): a lone decode takes 9.30 ms, a 1-token prefill as long
    default = baselines.make("mlfq")
    assert default.entry(1) == (1, 2) and default.entry(2340) == (5, 14)


def test_mlfq_demotes_by_quantum_and_wakes_at_the_next_demotion():
    mlfq = baselines.make("mlfq")  # prompt 100: level 1 for 2 tokens, level 2 for 4, level 3 for 8
    levels = [mlfq.level(running(g)) for g in range(0, 15)]
    assert levels == [1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3, 4]
    assert [mlfq.wakeup([running(g)], 0.0) for g in (1, 2, 5, 6)] == [1, 4, 1, 8]
    paused = dataclasses.replace(running(1), state=RequestState.PAUSED)
    assert mlfq.priorities([Req(prompt_len=100), paused, running(1)], 0.0) == [5.0, 4.0, 3.0]  # level 1
    assert baselines.make("mlfq", levels=3).level(running(1000)) == 2  # the last level keeps everyone


def test_mlfq_starvation_promotion():
    mlfq = baselines.make("mlfq", starve_s=3.0)
    busy, starved = running(20, id=0), Req(id=1, prompt_len=2340, generated=7, first_scheduled=0.0, state=RequestState.PAUSED)
    assert mlfq.priorities([busy, starved], 1.0) == [12.0, 16.0]  # levels 4 (running) and 5 (has run)
    assert mlfq.priorities([busy, starved], 3.5) == [12.0, 1.0]  # unserved since its arrival at 0: level 0
    starved.generated, starved.state = 8, RUNNING  # one token at level 0 uses its quantum
    assert mlfq.priorities([busy, starved], 4.0) == [12.0, 3.0]
    assert mlfq.priorities([busy], 0.5) == [12.0]  # time went back: a new run, nothing promoted


# ---------------------------------------------------------------------------------------------
# Engine paths


def random_workload(seed: int, n: int = 60) -> RequestBatch:
    rng = np.random.default_rng(seed)
    output = np.maximum(1, rng.lognormal(math.log(60), 1.0, n)).astype(np.int64)
    return RequestBatch(
        np.cumsum(rng.exponential(0.05, n)),
        np.maximum(1, rng.lognormal(math.log(200), 0.8, n)).astype(np.int64),
        output,
        predicted_len=output * rng.lognormal(0.0, 0.5, n),
    )


def engine_records(policy, workload, *, fast_forward, reference):
    records = RecordBuffer()
    engine = Engine(EngineConfig(block_size=16, fast_forward=fast_forward), LLAMA, 60, [workload], policy,
                    on_record=records.append, reference=reference)
    engine.run()
    return records.to_arrays()


@pytest.mark.parametrize("spec", ["fcfs", "sjf", "srpt", "sprpt", "trail", "mlfq"])
def test_fast_path_equals_the_reference_path(spec):
    for seed in range(3):
        workload = random_workload(seed)
        fast = engine_records(baselines.parse(spec), workload, fast_forward=True, reference=False)
        slow = engine_records(baselines.parse(spec), workload, fast_forward=False, reference=True)
        for key in fast:
            np.testing.assert_allclose(fast[key], slow[key], rtol=1e-9, equal_nan=True, err_msg=f"{spec} {key}")


def test_mlfq_wakeups_alone_give_the_same_run_as_an_epoch_every_iteration():
    rows = [(0.0, 16, 8), (3.5, 8, 12)]
    assert run(rows, baselines.make("mlfq"), **KV_ENGINE)[0] == run(rows, baselines.make("mlfq"), decision_interval=1, **KV_ENGINE)[0]


def test_ordering_theory_guarantees_when_batch_slots_bind():
    # Four batch slots and small prompts: the engine is a 4-server queue with cheap preemption.
    # Shortest-first orders beat FCFS on mean response time at load 0.9 on every seed.
    config = SimConfig(
        engine=EngineConfig(max_num_seqs=4),
        workload=WorkloadConfig(lengths="lognormal", prompt_mean=16, prompt_sigma=0.5, output_mean=100, output_sigma=1.2, num_requests=600),
        load=0.9,
    )
    for seed in range(3):
        e2e = {spec: simulate(config, baselines.parse(spec), seed=seed).summary["e2e_mean_s"] for spec in ("fcfs", "sjf", "srpt", "trail")}
        assert e2e["srpt"] < e2e["fcfs"] and e2e["sjf"] < e2e["fcfs"] and e2e["trail"] < e2e["fcfs"], (seed, e2e)


# ---------------------------------------------------------------------------------------------
# Registry


def test_available_and_describe():
    assert baselines.available() == [
        "cost-aware", "fcfs", "mcsf", "mlfq", "sjf", "sprpt", "srpt", "swap-first", "trail", "vllm-recompute"
    ]
    for name in baselines.available():
        text = baselines.describe(name)
        assert text and "\n" not in text
        policy = baselines.make(name)
        assert isinstance(policy, Policy) and policy.name == name and isinstance(policy.params, dict)


def test_names_carry_non_default_parameters():
    assert baselines.make("trail").name == "trail"
    assert baselines.make("trail", C=0.8).name == "trail"
    assert baselines.make("trail", C=0.5).name == "trail:C=0.5"
    assert baselines.make("trail", C=0.5).params == {"C": 0.5}
    assert baselines.make("mlfq", levels=4, base_quantum=16).name == "mlfq:levels=4,base_quantum=16"


def test_parse_specs():
    assert baselines.parse("trail:C=0.5") == baselines.make("trail", C=0.5)
    mlfq = baselines.parse(" mlfq : levels=4, base_quantum=16, skip_join=false, hardware=llama2-7b/h100 ")
    assert mlfq.params == dict(levels=4, base_quantum=16, quantum_ratio=2.0, skip_join=False, starve_s=0.0, hardware="llama2-7b/h100")
    assert baselines.parse("fcfs").name == "fcfs"


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: baselines.make("lifo"), "baseline='lifo' is invalid: expected one of cost-aware, fcfs, mcsf, mlfq, sjf, sprpt, srpt, swap-first, trail"),
        (lambda: baselines.make("trail", D=1), "unknown key.*'D'.*allowed keys are C"),
        (lambda: baselines.make("trail", C=-0.1), r"trail\.C=-0\.1 is invalid: expected a finite number >= 0"),
        (lambda: baselines.make("trail", C="big"), r"trail\.C='big' is invalid"),
        (lambda: baselines.make("mlfq", levels=0), r"mlfq\.levels=0 is invalid"),
        (lambda: baselines.make("mlfq", base_quantum=0), r"mlfq\.base_quantum=0 is invalid"),
        (lambda: baselines.make("mlfq", quantum_ratio=0.5), r"mlfq\.quantum_ratio=0\.5 is invalid"),
        (lambda: baselines.make("mlfq", skip_join=1), r"mlfq\.skip_join=1 is invalid: expected true or false"),
        (lambda: baselines.make("mlfq", hardware="tpu"), r"mlfq\.hardware='tpu' is invalid: expected one of"),
        (lambda: baselines.make("fcfs", C=1), "unknown key"),
        (lambda: baselines.parse("trail:C"), "'C' is invalid: expected key=value"),
        (lambda: baselines.parse(""), "baseline spec '' is invalid"),
        (lambda: baselines.describe("nope"), "baseline='nope' is invalid"),
    ],
)
def test_bad_names_and_parameters_are_config_errors(call, message):
    with pytest.raises(ConfigError, match=message):
        call()


# ---------------------------------------------------------------------------------------------
# Systems


@pytest.mark.parametrize("name", sorted(SYSTEMS))
def test_system_presets_match_their_yaml_files_and_run(name):
    config, policy = system_config(name, SimConfig(load=0.5, workload=WorkloadConfig(num_requests=40)))
    assert load_config(CONFIGS / f"{name}.yaml").engine == config.engine
    assert config.engine.batching == {"vllm": "vllm", "orca": "orca", "sarathi": "sarathi", "fastertransformer": "static"}[name]
    assert policy.name == SYSTEMS[name].policy
    summary = simulate(config, policy, seed=1).summary
    assert summary["finished"] == 40 and summary["rejected"] == 0


def test_system_config_keeps_the_rest_of_the_base_and_rejects_unknown_names():
    base = SimConfig(load=0.5, seed=3, engine=EngineConfig(max_num_seqs=32))
    config, _ = system_config("vllm", base)
    assert (config.load, config.seed, config.engine.max_num_seqs, config.engine.batching) == (0.5, 3, 32, "vllm")
    with pytest.raises(ConfigError, match="system='tgi' is invalid: expected one of fastertransformer, orca, sarathi, vllm"):
        system_config("tgi", base)
