"""Trace readers: exact values on hand-written fixtures, every error path, and the real traces."""

from __future__ import annotations

import gzip
import shutil
from pathlib import Path

import numpy as np
import pytest

from llmsched_env.sim.traces import (
    Trace,
    TraceError,
    detect_trace_format,
    read_azure,
    read_csv,
    read_lengths_csv,
    read_mooncake,
    read_trace,
)
from llmsched_env.sim.validation import ConfigError

FIXTURES = Path(__file__).resolve().parent / "fixtures"
DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


# -- good files -----------------------------------------------------------------------------------


def test_azure_fixture_exact_times_and_lengths():
    t = read_azure(FIXTURES / "azure_small.csv")
    # 18:15:46.6805900 is the origin; 100 ns resolution must survive (last row is 1 h + 100 ns).
    np.testing.assert_allclose(t.arrival_time, [0.0, 0.0, 0.3194101, 13.81941, 3600.0000001], rtol=0, atol=1e-9)
    assert t.prompt_len.tolist() == [374, 396, 10, 2000, 5]
    assert t.output_len.tolist() == [44, 109, 1, 300, 7]
    assert t.arrival_time.dtype == np.float64 and t.prompt_len.dtype == np.int64 and t.output_len.dtype == np.int64
    assert len(t) == 5 and t.source == str(FIXTURES / "azure_small.csv")


def test_azure_accepts_utc_offsets(tmp_path):
    path = write(
        tmp_path,
        "week.csv",
        "TIMESTAMP,ContextTokens,GeneratedTokens\n"
        "2024-05-10 00:00:00.009930+00:00,5,6\n2024-05-10 00:00:01.509930+00:00,7,8\n",
    )
    np.testing.assert_allclose(read_azure(path).arrival_time, [0.0, 1.5], atol=1e-12)


def test_mooncake_fixture_ms_to_seconds_and_ignores_extra_keys():
    t = read_mooncake(FIXTURES / "mooncake_small.jsonl")
    assert t.arrival_time.tolist() == [0.0, 0.0, 1.5, 3.0]
    assert t.prompt_len.tolist() == [6758, 10, 7, 100]
    assert t.output_len.tolist() == [500, 1, 3, 20]


def test_lengths_csv_has_no_times():
    t = read_lengths_csv(FIXTURES / "lengths_small.csv")
    assert t.arrival_time is None
    assert t.prompt_len.tolist() == [74, 290, 2285]
    assert t.output_len.tolist() == [918, 905, 363]


def test_lengths_csv_reads_vidur_arrived_at():
    t = read_lengths_csv(FIXTURES / "vidur_arrived.csv")
    assert t.arrival_time.tolist() == [0.0, 0.5, 1.75]
    assert t.prompt_len.tolist() == [100, 200, 300]


def test_generic_csv_named_columns_and_time_units():
    path = FIXTURES / "generic_ms.csv"
    t = read_csv(path, prompt_column="input tokens", output_column="output tokens", time_column="t_ms", time_unit="ms")
    np.testing.assert_allclose(t.arrival_time, [0.0, 0.25, 0.25, 1.0], atol=1e-12)
    assert t.prompt_len.tolist() == [5, 7, 1, 9] and t.output_len.tolist() == [6, 8, 1, 2]
    us = read_csv(path, prompt_column="input tokens", output_column="output tokens", time_column="t_ms", time_unit="us")
    np.testing.assert_allclose(us.arrival_time, [0.0, 250e-6, 250e-6, 1000e-6], atol=1e-15)
    untimed = read_csv(path, prompt_column="input tokens", output_column="output tokens")
    assert untimed.arrival_time is None


@pytest.mark.parametrize("name", ["azure_small.csv", "mooncake_small.jsonl", "lengths_small.csv", "vidur_arrived.csv"])
def test_gzip_detected_by_content_not_name(tmp_path, name):
    plain = read_trace(FIXTURES / name)
    for target in (tmp_path / (name + ".gz"), tmp_path / ("renamed_" + name)):
        with open(FIXTURES / name, "rb") as src, gzip.open(target, "wb") as dst:
            shutil.copyfileobj(src, dst)
        packed = read_trace(target)
        assert packed.prompt_len.tolist() == plain.prompt_len.tolist()
        assert packed.output_len.tolist() == plain.output_len.tolist()
        if plain.arrival_time is None:
            assert packed.arrival_time is None
        else:
            assert packed.arrival_time.tolist() == plain.arrival_time.tolist()


def test_byte_order_mark_and_blank_lines_are_tolerated(tmp_path):
    path = tmp_path / "bom.csv"
    path.write_bytes(b"\xef\xbb\xbfnum_prefill_tokens,num_decode_tokens\n\n3,4\n\n5,6\n")
    t = read_trace(path)
    assert t.prompt_len.tolist() == [3, 5] and t.output_len.tolist() == [4, 6]


@pytest.mark.parametrize(
    "name, fmt",
    [
        ("azure_small.csv", "azure"),
        ("mooncake_small.jsonl", "mooncake"),
        ("lengths_small.csv", "lengths"),
        ("vidur_arrived.csv", "lengths"),
    ],
)
def test_auto_detection(name, fmt):
    assert detect_trace_format(FIXTURES / name) == fmt
    auto, explicit = read_trace(FIXTURES / name), read_trace(FIXTURES / name, format=fmt)
    assert auto.prompt_len.tolist() == explicit.prompt_len.tolist()


def test_read_trace_csv_keywords_select_generic_csv():
    kw = dict(prompt_column="input tokens", output_column="output tokens", time_column="t_ms", time_unit="ms")
    for fmt in ("auto", "csv"):
        t = read_trace(FIXTURES / "generic_ms.csv", format=fmt, **kw)
        assert t.prompt_len.tolist() == [5, 7, 1, 9]
        assert t.arrival_time[-1] == pytest.approx(1.0)


# -- errors ---------------------------------------------------------------------------------------

AZURE_HEADER = "TIMESTAMP,ContextTokens,GeneratedTokens\n"
ROW = "2023-11-16 18:15:46.6805900,374,44\n"

CSV_ERRORS = [
    # (file text, reader, 1-based line named, fragments of the message)
    (AZURE_HEADER.replace(",GeneratedTokens", "") + "2023-11-16 18:15:46.68,374\n", read_azure, 1, ["missing column 'GeneratedTokens'"]),
    (AZURE_HEADER + ROW + "2023-11-16 18:15:47.0,374\n", read_azure, 3, ["missing column 'GeneratedTokens'", "2 fields"]),
    (AZURE_HEADER + ROW + ROW + "2023-11-16 18:15:47.0,1.5,3\n", read_azure, 4, ["ContextTokens='1.5'", "not an integer"]),
    (AZURE_HEADER + ROW + "2023-11-16 18:15:47.0,12,abc\n", read_azure, 3, ["GeneratedTokens='abc'", "not an integer"]),
    (AZURE_HEADER + ROW + "2023-11-16 18:15:47.0,12,0\n", read_azure, 3, ["GeneratedTokens=0", ">= 1"]),
    (AZURE_HEADER + "2023-11-16 18:15:47.0,-3,2\n", read_azure, 2, ["ContextTokens=-3", ">= 1"]),
    (AZURE_HEADER + ROW + "2023-11-16 18:15:40.0,12,3\n", read_azure, 3, ["TIMESTAMP goes backwards"]),
    (AZURE_HEADER + ROW + "yesterday,12,3\n", read_azure, 3, ["TIMESTAMP='yesterday'", "not a timestamp"]),
    (AZURE_HEADER + ROW + "NaT,12,3\n", read_azure, 3, ["TIMESTAMP='NaT'", "not a timestamp"]),
    (AZURE_HEADER, read_azure, 1, ["no data rows"]),
    ("num_prefill_tokens,num_decode_tokens\n5,6\n\n7,x\n", read_lengths_csv, 4, ["num_decode_tokens='x'"]),
    ("arrived_at,num_prefill_tokens,num_decode_tokens\n1.0,5,6\n0.5,7,8\n", read_lengths_csv, 3, ["arrived_at goes backwards"]),
    ("arrived_at,num_prefill_tokens,num_decode_tokens\n1.0,5,6\nsoon,7,8\n", read_lengths_csv, 3, ["arrived_at='soon'", "not a number"]),
    ("arrived_at,num_prefill_tokens,num_decode_tokens\n1.0,5,6\nnan,7,8\n", read_lengths_csv, 3, ["not a finite time"]),
]


@pytest.mark.parametrize("text, reader, line, fragments", CSV_ERRORS)
def test_csv_errors_name_file_line_and_problem(tmp_path, text, reader, line, fragments):
    path = write(tmp_path, "bad.csv", text)
    with pytest.raises(TraceError) as e:
        reader(path)
    msg = str(e.value)
    assert str(path) in msg and f"line {line}" in msg
    for fragment in fragments:
        assert fragment in msg


JSONL_ERRORS = [
    ('{"timestamp": 0, "input_length": 5, "output_length": 6}\n\n{"timestamp": 1, "input_length": 5,\n', 3, ["bad JSON"]),
    ('[1, 2, 3]\n', 1, ["expected a JSON object"]),
    ('{"timestamp": 0, "input_length": 5}\n', 1, ["missing key 'output_length'"]),
    ('{"timestamp": 0, "input_length": 5.5, "output_length": 6}\n', 1, ["input_length=5.5", "not an integer"]),
    ('{"timestamp": 0, "input_length": "5", "output_length": 6}\n', 1, ["input_length='5'", "not an integer"]),
    ('{"timestamp": 0, "input_length": true, "output_length": 6}\n', 1, ["not an integer"]),
    ('{"timestamp": 0, "input_length": 5, "output_length": 0}\n', 1, ["output_length=0", ">= 1"]),
    ('{"timestamp": "now", "input_length": 5, "output_length": 6}\n', 1, ["timestamp='now'"]),
    ('{"timestamp": 10, "input_length": 5, "output_length": 6}\n{"timestamp": 9, "input_length": 5, "output_length": 6}\n', 2, ["timestamp goes backwards"]),
]


@pytest.mark.parametrize("text, line, fragments", JSONL_ERRORS)
def test_jsonl_errors_name_file_line_and_problem(tmp_path, text, line, fragments):
    path = write(tmp_path, "bad.jsonl", text)
    with pytest.raises(TraceError) as e:
        read_mooncake(path)
    msg = str(e.value)
    assert str(path) in msg and f"line {line}" in msg
    for fragment in fragments:
        assert fragment in msg


@pytest.mark.parametrize("reader", [read_azure, read_mooncake, read_lengths_csv, read_trace])
def test_empty_file(tmp_path, reader):
    path = write(tmp_path, "empty.csv", "\n\n")
    with pytest.raises(TraceError, match="empty"):
        reader(path)


@pytest.mark.parametrize("reader", [read_azure, read_mooncake, read_lengths_csv, read_trace])
def test_missing_file_names_the_path(tmp_path, reader):
    path = tmp_path / "nowhere" / "trace.csv"
    with pytest.raises(TraceError, match="does not exist") as e:
        reader(path)
    assert str(path) in str(e.value)


def test_unknown_format_lists_the_known_ones(tmp_path):
    path = write(tmp_path, "other.csv", "a,b\n1,2\n")
    with pytest.raises(TraceError, match="unknown trace format") as e:
        read_trace(path)
    assert str(path) in str(e.value) and "ContextTokens" in str(e.value) and "format='csv'" in str(e.value)


def test_read_trace_argument_errors():
    with pytest.raises(ConfigError, match="format='parquet'"):
        read_trace(FIXTURES / "azure_small.csv", format="parquet")
    with pytest.raises(ConfigError, match="unknown key"):
        read_trace(FIXTURES / "azure_small.csv", format="azure", prompt_column="x")
    with pytest.raises(ConfigError, match="output_column"):
        read_trace(FIXTURES / "generic_ms.csv", format="csv", prompt_column="input tokens")
    with pytest.raises(ConfigError, match="time_unit='h'"):
        read_csv(FIXTURES / "generic_ms.csv", prompt_column="input tokens", output_column="output tokens", time_unit="h")
    with pytest.raises(TraceError, match="missing column 'tokens'"):
        read_csv(FIXTURES / "generic_ms.csv", prompt_column="tokens", output_column="output tokens")


def test_corrupt_gzip_is_a_trace_error(tmp_path):
    path = tmp_path / "broken.csv.gz"
    path.write_bytes(gzip.compress(b"num_prefill_tokens,num_decode_tokens\n5,6\n" * 50)[:40])
    with pytest.raises(TraceError, match="cannot be read"):
        read_trace(path, format="lengths")


def test_trace_rejects_mismatched_arrays():
    with pytest.raises(TraceError, match="same length"):
        Trace(arrival_time=None, prompt_len=np.ones(3, np.int64), output_len=np.ones(2, np.int64), source="x")


# -- the real traces (../shared/data) ------------------------------------------------------------


def traces_dir() -> Path:
    folder = DATA / "traces"
    if not folder.is_dir():
        pytest.skip("../shared/data/traces is not available")
    return folder


# rows, prompt mean, output mean, span (s) from ../shared/data/traces/README.md
REAL = [
    ("azure_llm_2023_conv.csv.gz", "azure", 19366, 1154.7, 211.1, 3501.7),
    ("azure_llm_2023_code.csv.gz", "azure", 8819, 2047.8, 27.9, 3435.9),
    ("mooncake_fast25_conversation_trace.jsonl.gz", "mooncake", 12031, 12035.1, 342.6, 3537.0),
    ("mooncake_fast25_synthetic_trace.jsonl.gz", "mooncake", 3993, 15325.5, 149.1, 1022.0),
    ("sharegpt_8k_filtered_llama2_lengths.csv.gz", "lengths", 30731, 2340.0, 438.7, None),
    ("arxiv_summarization_llama2_lengths.csv.gz", "lengths", 28257, 2588.1, 291.4, None),
]


@pytest.mark.parametrize("name, fmt, rows, prompt_mean, output_mean, span", REAL)
def test_real_traces_match_their_readme(name, fmt, rows, prompt_mean, output_mean, span):
    path = traces_dir() / name
    assert detect_trace_format(path) == fmt
    t = read_trace(path)
    assert len(t) == rows
    assert t.prompt_len.mean() == pytest.approx(prompt_mean, abs=0.05)
    assert t.output_len.mean() == pytest.approx(output_mean, abs=0.05)
    if span is None:
        assert t.arrival_time is None
    else:
        assert t.arrival_time[0] == 0 and t.arrival_time[-1] == pytest.approx(span, abs=0.05)
        assert np.all(np.diff(t.arrival_time) >= 0)


def test_vidur_splitwise_matches_azure_original():
    vidur = DATA / "vidur" / "data" / "processed_traces" / "splitwise_conv.csv"
    if not vidur.is_file():
        pytest.skip("../shared/data/vidur is not available")
    a, b = read_trace(traces_dir() / "azure_llm_2023_conv.csv.gz"), read_trace(vidur)
    assert a.prompt_len.tolist() == b.prompt_len.tolist()
    np.testing.assert_allclose(a.arrival_time, b.arrival_time, atol=1e-6)
