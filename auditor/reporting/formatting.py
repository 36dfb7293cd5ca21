"""How every number in a report is printed: one shared formatter for the PDF, the JSON twin's `rows_text`,
the charts' labels and the web pages, so that what is printed can be compared digit by digit."""
from __future__ import annotations

import math
import numbers
from typing import Any, Union

NOT_AVAILABLE = "n/a"
Number = Union[int, float]
# A confidence interval in a table is one cell: (lower, upper), printed "[lower, upper]".
Interval = tuple[Union[float, None], Union[float, None]]
Cell = Union[str, int, float, Interval, None]


def plain_number(value: Any) -> int | float | None:
    """numpy scalars to Python numbers, non-finite floats to None; bools are rejected (True is not a count)."""
    if value is None:
        return None
    if isinstance(value, bool) or getattr(value, "dtype", None) is not None and value.dtype.kind == "b":
        raise TypeError(f"booleans are not numbers in a report: {value!r}")
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        number = float(value)
        return number if math.isfinite(number) else None
    raise TypeError(f"expected a number, got {type(value).__name__}: {value!r}")


def format_number(value: Number | None, digits: int = 3) -> str:
    """The single way a number is printed in a report (PDF, web page, text comparison).

    Integers print in full without separators; floats in fixed point with `digits` decimals; None, NaN and
    infinities print as "n/a". Negative zero prints as zero so that -0.0004 does not read as a negative result.
    """
    number = plain_number(value)
    if number is None:
        return NOT_AVAILABLE
    if isinstance(number, int):
        return str(number)
    text = f"{number:.{digits}f}"
    if text.startswith("-") and float(text) == 0.0:
        text = text[1:]
    return text


def format_interval(lower: Number | None, upper: Number | None, digits: int = 3) -> str:
    """"[lower, upper]"; an interval with neither bound prints as a plain "n/a"."""
    if plain_number(lower) is None and plain_number(upper) is None:
        return NOT_AVAILABLE
    return f"[{format_number(lower, digits)}, {format_number(upper, digits)}]"


def normalise_cell(cell: Any) -> Cell:
    if cell is None or isinstance(cell, str):
        return cell
    if isinstance(cell, (tuple, list)):
        if len(cell) != 2:
            raise ValueError(f"an interval cell has exactly two bounds, got {cell!r}")
        lower, upper = (plain_number(bound) for bound in cell)
        return (None if lower is None else float(lower), None if upper is None else float(upper))
    return plain_number(cell)


def format_cell(cell: Cell, digits: int = 3) -> str:
    if cell is None:
        return NOT_AVAILABLE
    if isinstance(cell, str):
        return cell
    if isinstance(cell, tuple):
        return format_interval(cell[0], cell[1], digits)
    return format_number(cell, digits)
