"""One place for input validation: every bad value raises :class:`ConfigError` naming the field,
the value and what is allowed.

The checks are plain functions so dataclass ``__post_init__`` methods, trace readers, the
environments and the CLIs all produce the same kind of message.
"""

from __future__ import annotations

import math
import numbers
from typing import Any, Iterable


class ConfigError(ValueError):
    """A configuration value, keyword argument or input file is invalid.

    The message always names the offending field (or file and line), the value received and
    what would have been accepted.
    """


def fail(field: str, value: Any, allowed: str) -> ConfigError:
    """Build the standard error: ``field=value is invalid: expected <allowed>``."""
    return ConfigError(f"{field}={value!r} is invalid: expected {allowed}")


def _is_real(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def check_number(
    field: str,
    value: Any,
    *,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    high_open: bool = False,
    integer: bool = False,
) -> Any:
    """Check that ``value`` is a finite number (an integer if ``integer``) inside the range.

    ``low_open``/``high_open`` make the bound strict. Returns the value; with ``integer`` as a
    Python ``int`` (a whole float such as 8.0 from YAML, or a numpy integer, becomes 8; 8.5 is an
    error): callers store what it returns, never the raw value.
    """
    kind = "an integer" if integer else "a finite number"
    if integer:
        ok = isinstance(value, numbers.Integral) and not isinstance(value, bool)
        if not ok and _is_real(value) and math.isfinite(value) and float(value).is_integer():
            ok = True
        if ok:
            value = int(value)
    else:
        ok = _is_real(value) and math.isfinite(value)
    parts = []
    if low is not None:
        parts.append(f"{'>' if low_open else '>='} {low:g}")
    if high is not None:
        parts.append(f"{'<' if high_open else '<='} {high:g}")
    allowed = kind + (" " + " and ".join(parts) if parts else "")
    if not ok:
        raise fail(field, value, allowed)
    if low is not None and (value < low or (low_open and value == low)):
        raise fail(field, value, allowed)
    if high is not None and (value > high or (high_open and value == high)):
        raise fail(field, value, allowed)
    return value


def check_positive(field: str, value: Any, *, integer: bool = False) -> Any:
    """A strictly positive finite number (or integer)."""
    return check_number(field, value, low=0, low_open=True, integer=integer)


def check_nonnegative(field: str, value: Any, *, integer: bool = False) -> Any:
    """A finite number (or integer) >= 0."""
    return check_number(field, value, low=0, integer=integer)


def check_fraction(field: str, value: Any, *, low_open: bool = False, high_open: bool = False) -> Any:
    """A number in [0, 1] (bounds optionally open)."""
    return check_number(field, value, low=0, high=1, low_open=low_open, high_open=high_open)


def check_choice(field: str, value: Any, choices: Iterable[str]) -> Any:
    """``value`` must be one of ``choices`` (listed in the message)."""
    options = list(choices)
    if value not in options:
        raise fail(field, value, "one of " + ", ".join(repr(c) for c in options))
    return value


def check_known_keys(where: str, given: Iterable[str], known: Iterable[str]) -> None:
    """Reject unknown keys (typos in YAML or kwargs), listing the allowed ones."""
    known_set = set(known)
    unknown = sorted(set(given) - known_set)
    if unknown:
        raise ConfigError(
            f"{where}: unknown key(s) {', '.join(map(repr, unknown))}; allowed keys are "
            + ", ".join(sorted(known_set))
        )
