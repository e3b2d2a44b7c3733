"""Readers for real LLM-serving request traces (plain or gzipped files).

Formats (each preset's JSON names the trace it was fitted to, with its origin and licence):

* ``azure``: Azure LLM inference trace 2023 (Splitwise, ISCA'24), a CSV with columns
  ``TIMESTAMP`` (wall clock ``YYYY-MM-DD HH:MM:SS.fffffff``; a UTC offset such as ``+00:00``, as
  in the 2024 week-long traces, is also accepted), ``ContextTokens``, ``GeneratedTokens``.
* ``mooncake``: Mooncake FAST'25 JSONL, one object per line with ``timestamp`` (milliseconds from
  the trace start), ``input_length``, ``output_length`` and, when present, ``hash_ids`` (the hash
  chain of the prompt's 512-token blocks, the last one possibly partial; kept for prefix caching
  as ``Trace.block_hash_offsets`` / ``block_hash_values``); other keys are ignored.
* ``lengths``: length-only CSV in Vidur / Sarathi-Serve format (ShareGPT, arXiv summarization):
  ``num_prefill_tokens``, ``num_decode_tokens`` (other columns ignored). If the file also has
  Vidur's ``arrived_at`` column (seconds), it is read as the arrival time.
* ``csv``: any CSV with named prompt / output (and optionally time) columns.

Every reader returns a :class:`Trace` whose arrival times are float64 seconds from the first
request. Every malformed input raises :class:`TraceError` naming the file, the 1-based line number
and the problem; token counts must be integers >= 1 and timestamps must not go backwards.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import math
import os
import warnings
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import numpy as np

from .validation import ConfigError, check_choice, check_known_keys

TRACE_FORMATS: tuple[str, ...] = ("auto", "azure", "mooncake", "lengths", "csv")
TIME_UNITS: dict[str, float] = {"s": 1.0, "ms": 1e-3, "us": 1e-6}  # seconds per unit

AZURE_COLUMNS = ("TIMESTAMP", "ContextTokens", "GeneratedTokens")
LENGTHS_COLUMNS = ("num_prefill_tokens", "num_decode_tokens")
LENGTHS_TIME_COLUMN = "arrived_at"  # optional, Vidur's trace format (seconds)


# what reading a damaged file raises: truncated or corrupted gzip data (zlib.error), bad bytes
READ_ERRORS = (OSError, EOFError, UnicodeDecodeError, zlib.error)


class TraceError(ConfigError):
    """A trace file is missing, unreadable or malformed (the message names file and line)."""


@dataclass(frozen=True)
class Trace:
    """Requests read from a trace file, in file order."""

    arrival_time: np.ndarray | None  # float64 (n,) seconds from the first request; None if untimed
    prompt_len: np.ndarray  # int64 (n,) >= 1
    output_len: np.ndarray  # int64 (n,) >= 1
    source: str  # the path it was read from
    # hash chains of the prompts' blocks (Mooncake ``hash_ids``): row i's chain is
    # block_hash_values[block_hash_offsets[i]:block_hash_offsets[i+1]]; None if the trace has none
    block_hash_offsets: np.ndarray | None = None  # int64 (n + 1,)
    block_hash_values: np.ndarray | None = None  # int64
    block_hash_size: int = 512  # tokens per hashed block

    def __post_init__(self) -> None:
        n = self.prompt_len.shape[0]
        if self.output_len.shape[0] != n or (self.arrival_time is not None and self.arrival_time.shape[0] != n):
            raise TraceError(f"{self.source}: arrival_time, prompt_len and output_len must have the same length")

    def __len__(self) -> int:
        return int(self.prompt_len.shape[0])


# -- file access ----------------------------------------------------------------------------------


def _open_text(path: str | os.PathLike) -> TextIO:
    """Open a plain or gzipped text file (gzip recognised by its magic bytes, not its name)."""
    p = Path(path)
    if not p.is_file():
        raise TraceError(f"trace file {str(p)!r} does not exist or is not a file")
    with open(p, "rb") as f:
        gzipped = f.read(2) == b"\x1f\x8b"
    # utf-8-sig drops the byte-order mark that spreadsheet exports put before the header.
    if gzipped:
        return gzip.open(p, "rt", encoding="utf-8-sig", newline="")
    return open(p, "r", encoding="utf-8-sig", newline="")


def _where(path: str | os.PathLike, line: int) -> str:
    return f"{path}, line {line}"


@dataclass
class _Table:
    """A CSV file's header and non-blank data rows, with the 1-based line number of each."""

    path: str
    header: list[str]
    header_line: int
    rows: list[list[str]]
    lines: np.ndarray  # int64 line number of each row

    def column(self, name: str) -> list[str]:
        """One column as strings; a missing column or a short row is an error."""
        if name not in self.header:
            raise TraceError(
                f"{_where(self.path, self.header_line)}: missing column {name!r} "
                f"(the header has {', '.join(map(repr, self.header))})"
            )
        idx = self.header.index(name)
        short = [i for i, row in enumerate(self.rows) if len(row) <= idx]
        if short:
            i = short[0]
            raise TraceError(
                f"{_where(self.path, int(self.lines[i]))}: missing column {name!r} (the row has {len(self.rows[i])} fields)"
            )
        return [row[idx] for row in self.rows]


def _read_csv_table(path: str | os.PathLike) -> _Table:
    rows: list[list[str]] = []
    lines: list[int] = []
    try:
        with _open_text(path) as f:
            reader = csv.reader(f)
            header = next(reader, None)
            while header is not None and not header:  # leading blank lines
                header = next(reader, None)
            if header is None:
                raise TraceError(f"{path}: the file is empty (expected a CSV header line)")
            header_line = reader.line_num
            for row in reader:
                if row:
                    rows.append(row)
                    lines.append(reader.line_num)
    except (*READ_ERRORS, csv.Error) as e:
        raise TraceError(f"{path}: cannot be read as a (gzipped) UTF-8 CSV file: {e}") from e
    if not rows:
        raise TraceError(f"{_where(path, header_line)}: the file has a header but no data rows")
    return _Table(str(path), [h.strip() for h in header], header_line, rows, np.asarray(lines, dtype=np.int64))


# -- value checks (vectorised; the slow per-row search only runs to name a bad row) -------------


def _tokens(path: str, values: list[str], lines: np.ndarray, name: str) -> np.ndarray:
    """Token counts as int64, each an integer >= 1."""
    try:
        out = np.asarray(values, dtype=np.str_).astype(np.int64)
    except (ValueError, OverflowError):
        for i, v in enumerate(values):
            try:
                np.int64(int(v))
            except (ValueError, OverflowError):
                raise TraceError(f"{_where(path, int(lines[i]))}: {name}={v!r} is not an integer token count") from None
        raise TraceError(f"{path}: column {name!r} holds values that are not integer token counts") from None
    bad = np.flatnonzero(out < 1)
    if bad.size:
        i = int(bad[0])
        raise TraceError(f"{_where(path, int(lines[i]))}: {name}={int(out[i])} tokens is invalid: expected >= 1")
    return out


def _numbers(path: str, values: list[str], lines: np.ndarray, name: str) -> np.ndarray:
    """A numeric column as float64."""
    try:
        return np.asarray(values, dtype=np.str_).astype(np.float64)
    except ValueError:
        for i, v in enumerate(values):
            try:
                float(v)
            except ValueError:
                raise TraceError(f"{_where(path, int(lines[i]))}: {name}={v!r} is not a number") from None
        raise TraceError(f"{path}: column {name!r} holds values that are not numbers") from None


def _seconds_from_start(path: str, t: np.ndarray, lines: np.ndarray, name: str, unit: str) -> np.ndarray:
    """Check finite, nondecreasing times (in ``unit``) and shift them to start at 0."""
    bad = np.flatnonzero(~np.isfinite(t))
    if bad.size:
        i = int(bad[0])
        raise TraceError(f"{_where(path, int(lines[i]))}: {name}={float(t[i])} is not a finite time")
    back = np.flatnonzero(np.diff(t) < 0)
    if back.size:
        i = int(back[0]) + 1
        raise TraceError(
            f"{_where(path, int(lines[i]))}: {name} goes backwards: {float(t[i] - t[0]):g} {unit} after the "
            f"first row, before the previous row's {float(t[i - 1] - t[0]):g} {unit}"
        )
    return t - t[0]


def _parse_wall_clock(values: Any) -> np.ndarray:
    with warnings.catch_warnings():
        # A UTC offset ("+00:00") is applied by numpy, which warns that it keeps no time zone.
        warnings.filterwarnings("ignore", message="no explicit representation of timezones")
        return np.asarray(values, dtype=np.str_).astype("datetime64[ns]")


def _wall_clock_seconds(path: str, values: list[str], lines: np.ndarray, name: str) -> np.ndarray:
    """Wall-clock strings -> float64 seconds from the first row (differences exact in integer ns)."""
    try:
        stamps = _parse_wall_clock(values)
        ok = not np.isnat(stamps).any()
    except ValueError:
        ok = False
    if not ok:
        for i, v in enumerate(values):
            try:
                good = not np.isnat(_parse_wall_clock(v))
            except ValueError:
                good = False
            if not good:
                raise TraceError(
                    f"{_where(path, int(lines[i]))}: {name}={v!r} is not a timestamp 'YYYY-MM-DD HH:MM:SS[.fffffff]'"
                )
    ns = (stamps - stamps[0]).astype(np.int64)
    return _seconds_from_start(path, ns.astype(np.float64) * 1e-9, lines, name, "s")


# -- readers --------------------------------------------------------------------------------------


def read_azure(path: str | os.PathLike) -> Trace:
    """Azure LLM inference trace 2023 CSV (TIMESTAMP, ContextTokens, GeneratedTokens)."""
    t = _read_csv_table(path)
    cols = {name: t.column(name) for name in AZURE_COLUMNS}
    return Trace(
        arrival_time=_wall_clock_seconds(t.path, cols["TIMESTAMP"], t.lines, "TIMESTAMP"),
        prompt_len=_tokens(t.path, cols["ContextTokens"], t.lines, "ContextTokens"),
        output_len=_tokens(t.path, cols["GeneratedTokens"], t.lines, "GeneratedTokens"),
        source=t.path,
    )


def _json_value(path: str, obj: dict, key: str, line: int, integer: bool) -> int | float:
    if key not in obj:
        raise TraceError(f"{_where(path, line)}: missing key {key!r}")
    v = obj[key]
    if integer:
        if not isinstance(v, int) or isinstance(v, bool):
            raise TraceError(f"{_where(path, line)}: {key}={v!r} is not an integer token count")
        if v < 1:
            raise TraceError(f"{_where(path, line)}: {key}={v} tokens is invalid: expected >= 1")
    elif not isinstance(v, (int, float)) or isinstance(v, bool) or not math.isfinite(v):
        raise TraceError(f"{_where(path, line)}: {key}={v!r} is not a finite number of milliseconds")
    return v


def read_mooncake(path: str | os.PathLike) -> Trace:
    """Mooncake JSONL (timestamp in ms, input_length, output_length, optional hash_ids)."""
    path = str(path)
    hashes: list[int] = []
    hash_offsets: list[int] = [0]
    with_hashes = True
    stamps: list[int | float] = []
    prompts: list[int | float] = []  # ints once checked
    outputs: list[int | float] = []
    lines: list[int] = []
    try:
        with _open_text(path) as f:
            for number, text in enumerate(f, start=1):
                if not text.strip():
                    continue
                try:
                    obj = json.loads(text)
                except json.JSONDecodeError as e:
                    raise TraceError(f"{_where(path, number)}: bad JSON ({e.msg} at column {e.colno})") from None
                if not isinstance(obj, dict):
                    raise TraceError(f"{_where(path, number)}: expected a JSON object, got {type(obj).__name__}")
                stamps.append(_json_value(path, obj, "timestamp", number, integer=False))
                prompts.append(_json_value(path, obj, "input_length", number, integer=True))
                outputs.append(_json_value(path, obj, "output_length", number, integer=True))
                lines.append(number)
                ids = obj.get("hash_ids")
                if ids is None:
                    with_hashes = False
                elif with_hashes:
                    if not isinstance(ids, list) or not all(isinstance(h, int) and not isinstance(h, bool) and h >= 0 for h in ids):
                        raise TraceError(f"{_where(path, number)}: hash_ids={str(ids)[:60]} is invalid: expected a list of integers >= 0")
                    hashes.extend(ids)
                    hash_offsets.append(len(hashes))
    except READ_ERRORS as e:
        raise TraceError(f"{path}: cannot be read as a (gzipped) UTF-8 JSONL file: {e}") from e
    if not lines:
        raise TraceError(f"{path}: the file is empty (expected one JSON object per line)")
    line_numbers = np.asarray(lines, dtype=np.int64)
    ms = np.asarray(stamps, dtype=np.float64)
    return Trace(
        arrival_time=_seconds_from_start(path, ms, line_numbers, "timestamp", "ms") * 1e-3,
        prompt_len=np.asarray(prompts, dtype=np.int64),
        output_len=np.asarray(outputs, dtype=np.int64),
        source=path,
        block_hash_offsets=np.asarray(hash_offsets, dtype=np.int64) if with_hashes else None,
        block_hash_values=np.asarray(hashes, dtype=np.int64) if with_hashes else None,
    )


def read_lengths_csv(path: str | os.PathLike) -> Trace:
    """Vidur-format length CSV (num_prefill_tokens, num_decode_tokens[, arrived_at in s])."""
    t = _read_csv_table(path)
    arrival = None
    if LENGTHS_TIME_COLUMN in t.header:
        seconds = _numbers(t.path, t.column(LENGTHS_TIME_COLUMN), t.lines, LENGTHS_TIME_COLUMN)
        arrival = _seconds_from_start(t.path, seconds, t.lines, LENGTHS_TIME_COLUMN, "s")
    return Trace(
        arrival_time=arrival,
        prompt_len=_tokens(t.path, t.column("num_prefill_tokens"), t.lines, "num_prefill_tokens"),
        output_len=_tokens(t.path, t.column("num_decode_tokens"), t.lines, "num_decode_tokens"),
        source=t.path,
    )


def read_csv(
    path: str | os.PathLike,
    *,
    prompt_column: str,
    output_column: str,
    time_column: str | None = None,
    time_unit: str = "s",
) -> Trace:
    """Generic CSV with named token-count columns and an optional numeric time column in time_unit."""
    check_choice("time_unit", time_unit, TIME_UNITS)
    t = _read_csv_table(path)
    arrival = None
    if time_column is not None:
        stamps = _numbers(t.path, t.column(time_column), t.lines, time_column)
        arrival = _seconds_from_start(t.path, stamps, t.lines, time_column, time_unit) * TIME_UNITS[time_unit]
    return Trace(
        arrival_time=arrival,
        prompt_len=_tokens(t.path, t.column(prompt_column), t.lines, prompt_column),
        output_len=_tokens(t.path, t.column(output_column), t.lines, output_column),
        source=t.path,
    )


def detect_trace_format(path: str | os.PathLike) -> str:
    """'azure', 'mooncake' or 'lengths' from the file's first non-blank line (its header)."""
    try:
        with _open_text(path) as f:
            first = next((line for line in f if line.strip()), None)
    except READ_ERRORS as e:
        raise TraceError(f"{path}: cannot be read as a (gzipped) UTF-8 text file: {e}") from e
    if first is None:
        raise TraceError(f"{path}: the file is empty")
    if first.lstrip().startswith("{"):
        return "mooncake"
    columns = {c.strip() for c in next(csv.reader(io.StringIO(first)))}
    if set(AZURE_COLUMNS) <= columns:
        return "azure"
    if set(LENGTHS_COLUMNS) <= columns:
        return "lengths"
    for name, expected in (("an Azure", AZURE_COLUMNS), ("a Vidur lengths", LENGTHS_COLUMNS)):
        missing = [c for c in expected if c not in columns]
        if len(missing) < len(expected):  # some of the format's columns: name the ones it lacks
            raise TraceError(
                f"{_where(path, 1)}: the header {first.strip()!r} looks like {name} trace but lacks the column(s) "
                f"{', '.join(map(repr, missing))}: expected all of {', '.join(expected)}"
            )
    raise TraceError(
        f"{_where(path, 1)}: unknown trace format (header {first.strip()!r}); expected an Azure header "
        f"({', '.join(AZURE_COLUMNS)}), a Vidur lengths header ({', '.join(LENGTHS_COLUMNS)}), "
        "Mooncake JSONL, or format='csv' with prompt_column and output_column"
    )


_CSV_KEYWORDS = ("prompt_column", "output_column", "time_column", "time_unit")


def read_trace(path: str | os.PathLike, format: str = "auto", **kw: Any) -> Trace:
    """Read a trace in ``format`` (one of TRACE_FORMATS).

    ``auto`` reads the file's header; passing ``prompt_column``/``output_column`` (the generic
    CSV keywords) selects ``csv``. The keywords are only accepted for ``csv``/``auto``.
    """
    check_choice("format", format, TRACE_FORMATS)
    if format == "auto":
        format = "csv" if kw else detect_trace_format(path)
    if format == "csv":
        check_known_keys("read_trace(format='csv')", kw, _CSV_KEYWORDS)
        for required in ("prompt_column", "output_column"):
            if kw.get(required) is None:
                raise ConfigError(f"{required}=None is invalid: expected a column name for format='csv'")
        return read_csv(path, **kw)
    check_known_keys(f"read_trace(format={format!r})", kw, ())
    readers = {"azure": read_azure, "mooncake": read_mooncake, "lengths": read_lengths_csv}
    return readers[format](path)
