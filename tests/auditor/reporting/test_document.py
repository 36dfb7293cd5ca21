"""The report document model: one number format, an exact JSON twin, and refusal of inconsistent documents."""
from __future__ import annotations

import json

import numpy as np
import pytest

from auditor.reporting import Chart, ReportDocument, Section, Table, format_cell, format_interval, format_number

from tests.auditor.reporting.sample_report import build_sample_document


@pytest.mark.parametrize(("value", "digits", "printed"), [
    (0.0213347, 3, "0.021"),
    (162.48731, 1, "162.5"),
    (0.99871, 3, "0.999"),
    (-0.0000321, 4, "0.0000"),  # negative zero would read as a negative KID
    (-0.25, 2, "-0.25"),
    (1000, 3, "1000"),  # integers are counts: printed in full, never with decimals
    (np.int64(557), 3, "557"),
    (np.float32(0.5), 3, "0.500"),
    (float("nan"), 3, "n/a"),
    (float("inf"), 3, "n/a"),
    (None, 3, "n/a"),
])
def test_format_number(value, digits, printed):
    assert format_number(value, digits) == printed


def test_format_number_refuses_booleans():
    with pytest.raises(TypeError):
        format_number(True)


def test_intervals_print_as_brackets_or_na():
    assert format_interval(151.20417, 171.90236, 1) == "[151.2, 171.9]"
    assert format_interval(None, 0.5, 2) == "[n/a, 0.50]"
    assert format_interval(None, float("nan")) == "n/a"


def test_table_cells_are_normalised_so_json_needs_no_nan():
    table = Table(["a", "b", "c", "d"], [[np.float64("nan"), np.int32(3), (np.float64(0.1), float("inf")), "PASS"]],
                  "caption", status_column=3)
    assert table.rows == [[None, 3, (0.1, None), "PASS"]]
    assert type(table.rows[0][1]) is int
    assert table.rows_text() == [["n/a", "3", "[0.100, n/a]", "PASS"]]
    json.dumps({"rows": [[list(c) if isinstance(c, tuple) else c for c in row] for row in table.rows]}, allow_nan=False)


def test_json_twin_round_trips_exactly(isic_dir):
    document = build_sample_document(isic_dir)
    data = document.to_dict()
    text = json.dumps(data, allow_nan=False)  # raises on NaN/inf anywhere, charts included
    reloaded = ReportDocument.from_dict(json.loads(text))
    assert reloaded == document
    assert reloaded.to_dict() == data
    # A consumer of the JSON alone reproduces every printed cell from the raw numbers and the digits.
    for table in (b for s in data["sections"] for b in s["blocks"] if b["type"] == "table"):
        for raw_row, text_row in zip(table["rows"], table["rows_text"]):
            for column, (raw, printed) in enumerate(zip(raw_row, text_row)):
                digits = table["digits"][column] if isinstance(table["digits"], list) else table["digits"]
                cell = tuple(raw) if isinstance(raw, list) else raw
                assert format_cell(cell, digits) == printed


def test_nan_in_the_document_becomes_none_and_prints_na(isic_dir):
    data = build_sample_document(isic_dir).to_dict()
    criteria = data["sections"][0]["blocks"][1]
    reader_row = next(row for row in criteria["rows"] if row[0] == "Reader AUC")
    assert reader_row[1] is None and reader_row[2] == [None, None]
    reader_text = next(row for row in criteria["rows_text"] if row[0] == "Reader AUC")
    assert reader_text[1:3] == ["n/a", "n/a"]


def test_chart_data_is_made_json_safe():
    chart = Chart("line", "t", {"series": [{"name": "s", "x": np.arange(3), "y": np.array([0.1, np.nan, np.inf])}]})
    assert chart.data == {"series": [{"name": "s", "x": [0, 1, 2], "y": [0.1, None, None]}]}
    json.dumps(chart.data, allow_nan=False)


def test_from_dict_rejects_printed_text_that_disagrees_with_the_numbers(isic_dir):
    data = build_sample_document(isic_dir).to_dict()
    data["sections"][0]["blocks"][1]["rows_text"][0][1] = "162.500"
    with pytest.raises(ValueError, match="rows_text"):
        ReportDocument.from_dict(data)


def _document(**changes) -> ReportDocument:
    fields = dict(report_id="R-1", version=1, status="draft", title="t", generated_at_utc="2025-05-01T09:30:00Z",
                  software_version="abc", seeds={"bootstrap": 1}, prepared_by="me", sections=[])
    fields.update(changes)
    return ReportDocument(**fields)


@pytest.mark.parametrize("changes", [
    {"status": "final"},
    {"status": "approved"},  # approved without approver and time
    {"approved_by": "boss", "approved_at_utc": "2025-05-02T10:00:00Z"},  # a draft with an approver
    {"version": 0},
    {"generated_at_utc": "2025-05-01T09:30:00+02:00"},  # not UTC
    {"sections": [Section(2, "b"), Section(1, "a")]},
])
def test_inconsistent_documents_are_refused(changes):
    with pytest.raises(ValueError):
        _document(**changes)


@pytest.mark.parametrize("build", [
    lambda: Table(["a", "b"], [[1]], "short row"),
    lambda: Table(["a"], [[1]], "bad status column", status_column=1),
    lambda: Table(["a", "b"], [[1, 2]], "digits per column", digits=[1]),
    lambda: Chart("bar", "t", {"categories": ["a", "b"], "values": [1]}),
    lambda: Chart("grouped_bar", "t", {"categories": ["a"], "series": [{"name": "s", "values": [1, 2]}]}),
    lambda: Chart("pie", "t", {}),
])
def test_malformed_blocks_are_refused_when_built(build):
    with pytest.raises(ValueError):
        build()


def test_approved_document_round_trips(isic_dir):
    document = build_sample_document(isic_dir, status="approved", version=2)
    assert ReportDocument.from_dict(json.loads(json.dumps(document.to_dict(), allow_nan=False))) == document
