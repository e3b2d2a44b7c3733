"""Named agent-network presets (the same networks as ``configs/network/*.yaml``).

* ``rybko-stolyar`` — Li, Dai & Peng (2025), "Throughput-Optimal Scheduling Algorithms for LLM
  Inference and AI Agents", §5.4: the Rybko–Stolyar network (Rybko & Stolyar 1992; Lu & Kumar 1991)
  with LLM engines. Two engines, each with a token budget of 768 per iteration and an iteration
  time of one time unit whatever the batch (a constant cost model: 1,000 ms), no memory limit, and
  work-conserving Sarathi batching. Class A makes a short call (Poisson lengths, mean 32 prompt /
  32 output tokens) on ``e1`` then a long one (512 / 32) on ``e2``; class B the reverse route.
  Each class arrives as a Poisson process at 0.9 x 768 / 608 jobs per unit time, so each engine's
  load is 0.9 (608 = 32 + 32 + 512 + 32 tokens per job; the engine emits a call's first output
  token in the iteration that completes its prefill, so the work actually done is 606 tokens per
  job and the load 0.897). Long calls make up 544 / 608 of each engine's load (0.81), so the two
  last stages together need 1.61 > 1 engines: priority to the last stage of each route
  (``baselines.network.StagePriority("last")``) starves the first stages in turns and the backlog
  grows without bound, the reverse priorities keep it bounded (``benchmarks/bench_network.py``).
* ``coding-agents`` — coding-agent workflows with figures from TraceLab (SyFI Lab, University of
  Washington; its ``summary.json`` (github.com/uw-syfi/TraceLab), 351,029 LLM rounds of Claude Code
  and Codex sessions, CC-BY-4.0). A job is one user turn: a chain of rounds, the first started by
  the user's message, the others by tool results. Per provider (``claude``, ``codex``):
  rounds per turn = LLM rounds / rounds with a user message (6.39 and 10.71, rounded to 6 and 11);
  prompt = the round's growth of the context (TraceLab's ``*_context_delta_tokens``: its prefix
  is a cache hit in 96 % of the input tokens, and the engine has no prefix cache, so only the new
  tokens are prefilled; ``context = 0``), lognormal with TraceLab's mean and median (sigma =
  sqrt(2 ln(mean / median))); output = TraceLab's mean output per round (reasoning included),
  lognormal with the log-std of the 19 rounds of its example sessions (1.16); delay before each
  round after the first = the tool time of a round: tool calls per round with tools x mean tool
  latency (sequential calls; summed as TraceLab sums them), lognormal with the log-std of the 19
  tool calls of the example sessions (2.57). Assumed (not in the data): the two engines
  (``large``, Llama-2-70B on two A100s, and ``small``, Llama-2-7B on one A100), that Claude Code
  turns run on ``large`` and Codex turns on ``small``, a third ``fan-out`` class (a planning round
  on ``large``, three parallel sub-agent rounds on ``small``, a merging round on ``large``, with
  the merged TraceLab figures), prompts clipped at 32,768 and outputs at 8,192 tokens, and the
  arrival rates (about 0.6 of each engine's capacity). ``benchmarks/bench_network.py tracelab``
  re-derives every number from the file.
"""

from __future__ import annotations

import math
from typing import Callable

from ..cost import LinearCostModel
from ..engine_config import EngineConfig
from ..validation import check_choice
from .config import CallConfig, DelayConfig, EngineSpec, NetworkConfig, WorkflowClass

# -- Rybko–Stolyar (Li, Dai & Peng 2025) ----------------------------------------------------------
RS_BUDGET = 768  # tokens per iteration
RS_LOAD = 0.9
RS_JOB_TOKENS = 32 + 32 + 512 + 32
RS_RATE = RS_LOAD * RS_BUDGET / RS_JOB_TOKENS  # jobs per time unit, per class
RS_HORIZON = 20_000.0  # time units: long enough for the growth to dominate (benchmarks/bench_network.py)


def rybko_stolyar() -> NetworkConfig:
    constant = LinearCostModel(intercept_ms=1000.0, prefill_token_ms=0.0, decode_ms=0.0, decode_ctx_ms=0.0, name="constant-1s")
    engine = EngineConfig(max_num_seqs=RS_BUDGET, max_num_batched_tokens=RS_BUDGET, num_gpu_blocks=10**9)

    def call(where: str, prompt: int) -> tuple[CallConfig, ...]:
        return (CallConfig(engine=where, lengths="poisson", prompt_mean=prompt, output_mean=32),)

    return NetworkConfig(
        engines=(EngineSpec("e1", engine, constant), EngineSpec("e2", engine, constant)),
        classes=(
            WorkflowClass("A", stages=(call("e1", 32), call("e2", 512)), rate=RS_RATE),
            WorkflowClass("B", stages=(call("e2", 32), call("e1", 512)), rate=RS_RATE),
        ),
        num_jobs=None,
        max_time_s=RS_HORIZON,
    )


# -- coding agents (TraceLab) ---------------------------------------------------------------------
# (mean, median) of the context growth of a round, tokens: tokens.input.*_context_delta_tokens of
# tracelab_summary.json, for rounds started by a user message / by tool results.
TRACELAB_PROMPT = {
    "claude": {"user": (1446.56, 663.0), "tool": (1727.92, 795.0)},
    "codex": {"user": (1895.06, 502.5), "tool": (1744.42, 549.0)},
    "merged": {"user": (1663.46, 587.0), "tool": (1737.94, 652.0)},
}
# tokens.output.average_output_tokens_including_reasoning_per_round
TRACELAB_OUTPUT_MEAN = {"claude": 679.54, "codex": 412.65, "merged": 520.01}
# llm_rounds_total / rounds_with_visible_user_message, rounded
TRACELAB_ROUNDS = {"claude": 6, "codex": 11}
# tool calls per round with tools x mean effective tool latency (s): tools.total_tool_calls /
# rounds_with_tool_calls x effective_latency.total_seconds / tool_calls_with_latency
TRACELAB_TOOL_S = {"claude": 34.31, "codex": 7.338, "merged": 17.74}
TRACELAB_OUTPUT_SIGMA = 1.16  # log-std of output_tokens over the 19 rounds of the example sessions
TRACELAB_TOOL_SIGMA = 2.57  # log-std of tool latency over the 19 tool calls of the example sessions
MAX_PROMPT = 32_768
MAX_OUTPUT = 8_192
CODING_RATES = {"claude-code": 0.025, "codex": 0.1, "fan-out": 0.02}  # jobs/s (assumed; loads ~0.6)


def _round(engine: str, who: str, started_by: str) -> CallConfig:
    mean, median = TRACELAB_PROMPT[who][started_by]
    return CallConfig(
        engine=engine,
        lengths="lognormal",
        prompt_mean=mean,
        prompt_sigma=round(math.sqrt(2 * math.log(mean / median)), 3),
        output_mean=TRACELAB_OUTPUT_MEAN[who],
        output_sigma=TRACELAB_OUTPUT_SIGMA,
        max_prompt_len=MAX_PROMPT,
        max_output_len=MAX_OUTPUT,
    )


def _tool_delay(who: str) -> DelayConfig:
    return DelayConfig(kind="lognormal", mean_s=TRACELAB_TOOL_S[who], sigma=TRACELAB_TOOL_SIGMA)


def _turn(name: str, who: str, engine: str) -> WorkflowClass:
    rounds = [(_round(engine, who, "user"),)] + [(_round(engine, who, "tool"),)] * (TRACELAB_ROUNDS[who] - 1)
    return WorkflowClass(name, stages=tuple(rounds), rate=CODING_RATES[name], delay=_tool_delay(who))


def coding_agents() -> NetworkConfig:
    fan_out = WorkflowClass(
        "fan-out",
        stages=(
            (_round("large", "merged", "user"),),
            (_round("small", "merged", "tool"),) * 3,
            (_round("large", "merged", "tool"),),
        ),
        rate=CODING_RATES["fan-out"],
        delay=_tool_delay("merged"),
    )
    return NetworkConfig(
        engines=(
            EngineSpec("large", EngineConfig(hardware="llama2-70b/a100-tp2")),
            EngineSpec("small", EngineConfig(hardware="llama2-7b/a100")),
        ),
        classes=(_turn("claude-code", "claude", "large"), _turn("codex", "codex", "small"), fan_out),
        num_jobs=500,
    )


_PRESETS: dict[str, Callable[[], NetworkConfig]] = {"rybko-stolyar": rybko_stolyar, "coding-agents": coding_agents}


def available_network_presets() -> list[str]:
    return sorted(_PRESETS)


def network_preset(name: str) -> NetworkConfig:
    """The named preset (see the module docstring)."""
    check_choice("preset", name, available_network_presets())
    return _PRESETS[name]()
