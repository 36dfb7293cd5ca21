"""Plain-language names for the acceptance criteria, for pages only.

`auditor.reporting.criteria.evaluate_criteria` is the source of each row and carries its `title`, `explanation`,
`unit` and `controls`; rows stored by older audits without them get them from the same table of criteria.
"""
from __future__ import annotations

import re

from auditor.reporting.criteria import CRITERIA


def plain(name: str) -> dict:
    """Title, explanation and unit of a criterion, from the one table of criteria (auditor/reporting/criteria.py)."""
    criterion = CRITERIA.get(name)
    if criterion is None:
        return {}
    return {"title": criterion.title, "explanation": criterion.explanation, "unit": criterion.unit}


def with_plain_language(rows: list[dict]) -> list[dict]:
    """The rows with `title`, `explanation`, `unit` and `controls` filled in where the evaluation left them out."""
    described = []
    for row in rows:
        fallback = plain(row.get("name"))
        described.append({
            **row,
            "title": row.get("title") or fallback.get("title") or row.get("name"),
            "explanation": row.get("explanation") or fallback.get("explanation") or row.get("basis", ""),
            "unit": row.get("unit") or fallback.get("unit", ""),
            "controls": row.get("controls") or [],
        })
    return described


def plain_names(text: str, rows: list[dict]) -> str:
    """Report text names criteria by code ("Criterion phototype_tvd not evaluated"): say their titles instead. A cell
    that is exactly a criterion's name becomes its title; in running text only code names (with an underscore) are
    replaced, because "precision" or "recall" there are ordinary words."""
    titles = {row["name"]: row["title"] for row in rows if row.get("name") and row.get("title")}
    if text in titles:
        return titles[text]
    codes = sorted((name for name in titles if "_" in name), key=len, reverse=True)
    if not codes:
        return text
    pattern = re.compile(r"\b(" + "|".join(re.escape(name) for name in codes) + r")\b")
    return pattern.sub(lambda match: titles[match.group(1)], text)
