"""Plain-language names for the acceptance criteria, for pages only.

`auditor.reporting.criteria.evaluate_criteria` is the source of each row; when a row carries its own `title`,
`explanation` and `unit` those are shown, and this table is only the fallback for rows that do not (yet).
"""
from __future__ import annotations

import re

FALLBACK = {
    "fd_upper_ci_over_floor": {
        "title": "Realism gap (Fréchet distance ÷ real-vs-real floor)",
        "explanation": "How far the generated images' features lie from the real ones, relative to how far two halves "
                       "of the real set lie from each other; 1 means as close as real images are to one another.",
        "unit": "× the floor (upper 95% CI bound)",
    },
    "kid": {
        "title": "Kernel distance to the real images (KID)",
        "explanation": "A second distance between generated and real image features, unbiased at small set sizes; "
                       "0 means indistinguishable.",
        "unit": "KID (squared MMD)",
    },
    "precision": {
        "title": "Realism of single images (precision)",
        "explanation": "Share of generated images that fall among real images in feature space (5 nearest neighbours).",
        "unit": "share, 0–1",
    },
    "recall": {
        "title": "Variety covered (recall)",
        "explanation": "Share of real images whose neighbourhood some generated image reaches (5 nearest neighbours); "
                       "low recall means kinds of lesions are missing.",
        "unit": "share, 0–1",
    },
    "memorization_rate": {
        "title": "Copies of training images (memorisation)",
        "explanation": "Share of generated images that are near-copies of a training image.",
        "unit": "share, 0–1 (upper 95% CI bound)",
    },
    "phototype_tvd": {
        "title": "Skin-tone balance (Fitzpatrick phototype mix)",
        "explanation": "Total variation distance between the generated set's phototype mix and the target mix: "
                       "0 is the same mix, 1 no overlap.",
        "unit": "total variation distance, 0–1",
    },
    "detector_auc": {
        "title": "Detectable by a trained detector (AUC)",
        "explanation": "How well a synthetic-image detector tells the generated images from held-out real ones: "
                       "0.5 is chance, 1 always detected.",
        "unit": "ROC AUC, 0–1",
    },
    "reader_auc": {
        "title": "Detectable by dermatologists (reader AUC)",
        "explanation": "Reader-averaged AUC of dermatologists calling images real or synthetic in a blinded study: "
                       "0.5 is chance.",
        "unit": "AUC, 0–1 (upper 95% CI bound)",
    },
}


def with_plain_language(rows: list[dict]) -> list[dict]:
    """The rows with `title`, `explanation`, `unit` and `controls` filled in where the evaluation left them out."""
    described = []
    for row in rows:
        fallback = FALLBACK.get(row.get("name"), {})
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
