"""The JSON twin carries the criteria as typed objects (schema 2) and still reads the stored reports of schema 1."""
from __future__ import annotations

import json

import pytest

from auditor.reporting import SCHEMA, ReportDocument, Section, Table

CRITERION = {"name": "kid", "title": "Kernel distance", "status": "PASS", "enabled": True, "value": 0.002,
             "ci_low": 0.001, "ci_high": 0.004, "compared_value": 0.002, "compared_is": "point estimate",
             "threshold": 0.05, "direction": "max", "unit": "KID", "controls": [], "reason": None}


def document(**changes) -> ReportDocument:
    fields = dict(report_id="R-1", version=1, status="draft", title="t", generated_at_utc="2025-05-01T09:30:00Z",
                  software_version="abc", seeds={"audit": 1}, prepared_by="me",
                  sections=[Section(1, "Executive summary", [Table(["Criterion", "Status"], [["kid", "PASS"]], "c", 1)])])
    fields.update(changes)
    return ReportDocument(**fields)


def test_criteria_round_trip_in_schema_2():
    data = json.loads(json.dumps(document(criteria=[CRITERION]).to_dict(), allow_nan=False))
    assert SCHEMA == data["schema"] == "dermaudit.report/2"
    assert data["criteria"] == [CRITERION]
    assert ReportDocument.from_dict(data) == document(criteria=[CRITERION])


def test_a_stored_schema_1_document_still_reads_and_says_it_has_no_criteria():
    stored = document().to_dict()
    stored["schema"] = "dermaudit.report/1"
    del stored["criteria"]  # schema 1 had no such key
    reloaded = ReportDocument.from_dict(stored)
    assert reloaded.criteria is None and reloaded.sections == document().sections
    assert reloaded.to_dict()["criteria"] is None  # written again as schema 2: "not recorded", never an empty list


@pytest.mark.parametrize("criteria", [[{**CRITERION, "status": "MAYBE"}], [{"status": "PASS"}], "kid: PASS"])
def test_malformed_criteria_are_refused(criteria):
    with pytest.raises(ValueError, match="criteria"):
        document(criteria=criteria)


def test_an_unknown_schema_is_refused():
    data = document().to_dict()
    data["schema"] = "dermaudit.report/9"
    with pytest.raises(ValueError, match="dermaudit.report/9"):
        ReportDocument.from_dict(data)
