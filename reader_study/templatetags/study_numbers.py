"""`num` filter: a statistic with fixed decimals, or "n/a" where it is undefined (stored as null, e.g. a kappa
with no variation, an AUC with one class)."""
from __future__ import annotations

from django import template

register = template.Library()


@register.filter
def num(value, decimals: int = 3) -> str:
    if value is None or value == "":
        return "n/a"
    return f"{float(value):.{int(decimals)}f}"
