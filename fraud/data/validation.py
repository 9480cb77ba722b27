"""Vectorised column checks that turn raw values into typed Arrow arrays or name the first bad row.

Each check runs on a whole record batch at once (pyarrow compute / numpy); only when a batch fails does it
search for the first offending row, so the happy path over millions of rows stays fast while the error still
names the column, the row and the value.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from fraud.errors import DataValidationError


def first_index(mask: pa.Array | pa.ChunkedArray) -> int | None:
    """Position of the first true value of a boolean mask (nulls count as false), or None."""
    values = np.asarray(pc.fill_null(mask, False).to_numpy(zero_copy_only=False), dtype=bool)
    hits = np.flatnonzero(values)
    return int(hits[0]) if hits.size else None


def _fail(column: str, first_row: int, index: int, problem: str) -> DataValidationError:
    return DataValidationError(problem, column=column, row=first_row + index)


def _quote(value: object) -> str:
    text = repr(value) if not isinstance(value, str) else f"'{value}'"
    return text if len(text) <= 60 else text[:57] + "...'"


def require_present(values: pa.Array, column: str, first_row: int) -> None:
    """Reject nulls and empty strings: no contract field is optional in a dataset file."""
    missing = pc.is_null(values)
    if pa.types.is_string(values.type) or pa.types.is_large_string(values.type):
        missing = pc.or_(missing, pc.equal(pc.utf8_length(values), 0))
    index = first_index(missing)
    if index is not None:
        raise _fail(column, first_row, index, "value is missing")


def to_integer(values: pa.Array, column: str, first_row: int, target: pa.DataType) -> pa.Array:
    """Parse text or safely cast numbers to an integer type, naming the first value that is not a whole number."""
    require_present(values, column, first_row)
    if pa.types.is_floating(values.type):
        whole = pc.equal(values, pc.floor(values))
        index = first_index(pc.invert(whole))
        if index is not None:
            raise _fail(column, first_row, index, f"{_quote(values[index].as_py())} is not a whole number")
    try:
        return pc.cast(values, target, safe=True)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        pass
    if pa.types.is_string(values.type) or pa.types.is_large_string(values.type):
        bad = pc.invert(pc.match_substring_regex(values, r"^-?[0-9]+$"))
        index = first_index(bad)
        if index is not None:
            raise _fail(column, first_row, index, f"{_quote(values[index].as_py())} is not a whole number")
    raise DataValidationError(f"values do not fit {target} (out of range)", column=column)


_FLOAT_PATTERN = r"^[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?$"


def to_float(values: pa.Array, column: str, first_row: int) -> pa.Array:
    """Parse text (including Java-style ``1.916920493E7``) or cast numbers to float64; reject NaN and infinity."""
    require_present(values, column, first_row)
    try:
        parsed = pc.cast(values, pa.float64(), safe=True)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        bad = pc.invert(pc.match_substring_regex(values, _FLOAT_PATTERN))
        index = first_index(bad)
        if index is None:  # pragma: no cover - the regex and Arrow's parser agree on every case we know
            raise DataValidationError("values are not numbers", column=column) from None
        raise _fail(column, first_row, index, f"{_quote(values[index].as_py())} is not a number") from None
    index = first_index(pc.invert(pc.is_finite(parsed)))
    if index is not None:
        raise _fail(column, first_row, index, f"{_quote(values[index].as_py())} is not a finite number")
    return parsed


def require_non_negative(values: pa.Array, column: str, first_row: int) -> None:
    index = first_index(pc.less(values, 0))
    if index is not None:
        raise _fail(column, first_row, index, f"{values[index].as_py()} is negative")


def require_between(values: pa.Array, column: str, first_row: int, low: float, high: float) -> None:
    index = first_index(pc.or_(pc.less(values, low), pc.greater(values, high)))
    if index is not None:
        raise _fail(column, first_row, index, f"{values[index].as_py()} is outside {low}..{high}")


def require_in(values: pa.Array, allowed: Iterable[object], column: str, first_row: int) -> None:
    allowed_list = list(allowed)
    index = first_index(pc.invert(pc.is_in(values, value_set=pa.array(allowed_list))))
    if index is not None:
        choices = ", ".join(str(a) for a in allowed_list)
        raise _fail(column, first_row, index, f"{_quote(values[index].as_py())} is not one of {choices}")


def require_max_length(values: pa.Array, column: str, first_row: int, limit: int) -> None:
    index = first_index(pc.greater(pc.utf8_length(values), limit))
    if index is not None:
        raise _fail(column, first_row, index, f"{_quote(values[index].as_py())} is longer than {limit} characters")


def to_string(values: pa.Array, column: str, first_row: int) -> pa.Array:
    """Text column: present, not empty, stored as plain utf8."""
    if not (pa.types.is_string(values.type) or pa.types.is_large_string(values.type)):
        if pa.types.is_dictionary(values.type):
            values = values.dictionary_decode()
        else:
            raise DataValidationError(f"expected text, found {values.type}", column=column)
    require_present(values, column, first_row)
    return pc.cast(values, pa.string())


_TEXT_FORMATS = {"date": ("%Y-%m-%d", "YYYY-MM-DD"), "timestamp": ("%Y-%m-%d %H:%M:%S", "YYYY-MM-DD HH:MM:SS")}


def to_timestamp(values: pa.Array, column: str, first_row: int, target: pa.DataType) -> pa.Array:
    """Parse ``YYYY-MM-DD`` (date32 target) or ``YYYY-MM-DD HH:MM:SS`` (timestamp target) text, or cast typed
    dates and times safely, naming the first value that is not one."""
    if pa.types.is_timestamp(values.type) or pa.types.is_date(values.type):
        require_present(values, column, first_row)
        try:
            return pc.cast(values, target, safe=True)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
            raise DataValidationError(f"values do not fit {target} ({exc})", column=column) from None
    text = to_string(values, column, first_row)
    pattern, shown = _TEXT_FORMATS["date" if pa.types.is_date(target) else "timestamp"]
    parsed = pc.strptime(text, format=pattern, unit="s", error_is_null=True)
    index = first_index(pc.is_null(parsed))
    if index is not None:
        raise _fail(column, first_row, index, f"{_quote(text[index].as_py())} is not a time written {shown}")
    return pc.cast(parsed, target)
