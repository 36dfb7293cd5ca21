"""The report as plain data: a document of numbered sections made of typed blocks.

`ReportDocument.to_dict()` is the JSON twin of the PDF. Tables keep each cell twice: `rows` holds the raw
values (numbers stay numbers, NaN/inf become None) and `rows_text` holds the exact strings printed in the PDF,
produced by the one shared `format_number`. Anything that compares the PDF with the JSON compares `rows_text`;
anything that computes with the numbers reads `rows`. `from_dict` rejects a `rows_text` that does not match its
`rows`, so the two can never drift apart. No Django, no reportlab, no matplotlib here.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Union

from auditor.reporting.formatting import (  # noqa: F401  (re-exported: the document model's public surface)
    NOT_AVAILABLE,
    Cell,
    Interval,
    Number,
    format_cell,
    format_interval,
    format_number,
    normalise_cell,
    plain_number,
)

# Schema 2 added the top-level "criteria": the acceptance criteria as typed objects (numbers as numbers, see
# auditor.reporting.criteria.public_criteria). Stored schema-1 documents still read; their `criteria` is None.
SCHEMA = "dermaudit.report/2"
READABLE_SCHEMAS = ("dermaudit.report/1", SCHEMA)
CRITERION_STATUSES = ("PASS", "FAIL", "N/A")
STATUSES = ("draft", "approved")
CALLOUT_LEVELS = ("pass", "fail", "warning", "info")
CHART_KINDS = ("bar", "grouped_bar", "line", "roc", "distribution_vs_target")

def _jsonable(value: Any) -> Any:
    """Chart data to plain JSON types (lists, not tuples or arrays) so that a JSON round trip is exact."""
    if isinstance(value, dict):
        return {str(key): _jsonable(item) for key, item in value.items()}
    if hasattr(value, "tolist") and not isinstance(value, (str, bytes)):
        value = value.tolist()
    if isinstance(value, (list, tuple)):
        return [_jsonable(item) for item in value]
    if value is None or isinstance(value, str):
        return value
    return plain_number(value)


@dataclass
class Paragraph:
    text: str  # plain text; never interpreted as markup


@dataclass
class Facts:
    rows: list[tuple[str, str]]  # key/value pairs, printed as a two-column table without a header

    def __post_init__(self) -> None:
        self.rows = [(str(key), str(value)) for key, value in self.rows]


@dataclass
class Table:
    columns: list[str]
    rows: list[list[Cell]]
    caption: str
    status_column: int | None = None  # index of a column of "PASS"/"FAIL" strings, coloured in the PDF
    digits: int | list[int] = 3  # decimals for floats: one for the table or one per column

    def __post_init__(self) -> None:
        self.columns = [str(column) for column in self.columns]
        self.rows = [[normalise_cell(cell) for cell in row] for row in self.rows]
        for index, row in enumerate(self.rows):
            if len(row) != len(self.columns):
                raise ValueError(
                    f"table {self.caption!r}: row {index} has {len(row)} cells for {len(self.columns)} columns")
        if isinstance(self.digits, list) and len(self.digits) != len(self.columns):
            raise ValueError(f"table {self.caption!r}: digits must give one value per column")
        if self.status_column is not None and not 0 <= self.status_column < len(self.columns):
            raise ValueError(f"table {self.caption!r}: status_column {self.status_column} is out of range")

    def column_digits(self, column: int) -> int:
        return self.digits[column] if isinstance(self.digits, list) else self.digits

    def rows_text(self) -> list[list[str]]:
        """Every cell exactly as printed in the PDF."""
        return [[format_cell(cell, self.column_digits(c)) for c, cell in enumerate(row)] for row in self.rows]


@dataclass
class Chart:
    kind: str  # one of CHART_KINDS; the expected `data` keys are documented in charts.py
    title: str
    data: dict[str, Any]
    x_label: str = ""
    y_label: str = ""

    def __post_init__(self) -> None:
        from auditor.reporting.charts import validate_chart_data  # no matplotlib import at module level there

        if self.kind not in CHART_KINDS:
            raise ValueError(f"unknown chart kind {self.kind!r}; expected one of {CHART_KINDS}")
        self.data = _jsonable(self.data)
        validate_chart_data(self.kind, self.data)


@dataclass
class ImageRef:
    path: str  # a PNG or JPEG file readable when the PDF is rendered
    caption: str = ""

    def __post_init__(self) -> None:
        self.path = str(self.path)


@dataclass
class ImageGrid:
    title: str
    images: list[ImageRef]
    columns: int = 2  # 2 gives generated/training pairs side by side

    def __post_init__(self) -> None:
        if self.columns < 1:
            raise ValueError("an image grid needs at least one column")


@dataclass
class Callout:
    level: str  # one of CALLOUT_LEVELS
    text: str

    def __post_init__(self) -> None:
        if self.level not in CALLOUT_LEVELS:
            raise ValueError(f"unknown callout level {self.level!r}; expected one of {CALLOUT_LEVELS}")


Block = Union[Paragraph, Facts, Table, Chart, ImageGrid, Callout]


@dataclass
class Section:
    number: int
    title: str
    blocks: list[Block] = field(default_factory=list)


def _parse_utc(text: str, name: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text)
    except (TypeError, ValueError) as error:
        raise ValueError(f"{name} must be an ISO 8601 time, got {text!r}") from error
    if moment.utcoffset() != timedelta(0):
        raise ValueError(f"{name} must be in UTC (end with Z or +00:00), got {text!r}")
    return moment


@dataclass
class ReportDocument:
    report_id: str
    version: int
    status: str  # "draft" or "approved"
    title: str
    generated_at_utc: str  # ISO 8601, e.g. "2025-05-01T09:30:00Z"
    software_version: str  # git SHA of the code that produced the numbers
    seeds: dict[str, int]
    prepared_by: str
    approved_by: str | None = None
    approved_at_utc: str | None = None
    sections: list[Section] = field(default_factory=list)
    # One object per acceptance criterion, as the API gives them; None: not recorded (a schema-1 document).
    criteria: list[dict[str, Any]] | None = None

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"status must be one of {STATUSES}, got {self.status!r}")
        if isinstance(self.version, bool) or not isinstance(self.version, int) or self.version < 1:
            raise ValueError(f"version must be a positive integer, got {self.version!r}")
        _parse_utc(self.generated_at_utc, "generated_at_utc")
        self.seeds = {str(name): int(seed) for name, seed in self.seeds.items()}
        # An approved report names who approved it and when; a draft names neither.
        if self.status == "approved":
            if not self.approved_by or not self.approved_at_utc:
                raise ValueError("an approved report needs approved_by and approved_at_utc")
            _parse_utc(self.approved_at_utc, "approved_at_utc")
        elif self.approved_by is not None or self.approved_at_utc is not None:
            raise ValueError("a draft report cannot carry an approver or approval time")
        if self.criteria is not None and (not isinstance(self.criteria, list) or any(
                not isinstance(c, dict) or not isinstance(c.get("name"), str) or c.get("status") not in CRITERION_STATUSES
                for c in self.criteria)):
            raise ValueError(f"criteria must be a list of objects with a name and a status in {CRITERION_STATUSES}")
        numbers_seen = [section.number for section in self.sections]
        if numbers_seen != sorted(set(numbers_seen)):
            raise ValueError(f"section numbers must be unique and ascending, got {numbers_seen}")

    def generated_at(self) -> datetime:
        return _parse_utc(self.generated_at_utc, "generated_at_utc")

    def tables(self) -> list[Table]:
        return [block for section in self.sections for block in section.blocks if isinstance(block, Table)]

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA,
            "report_id": self.report_id,
            "version": self.version,
            "status": self.status,
            "title": self.title,
            "generated_at_utc": self.generated_at_utc,
            "software_version": self.software_version,
            "seeds": dict(self.seeds),
            "prepared_by": self.prepared_by,
            "approved_by": self.approved_by,
            "approved_at_utc": self.approved_at_utc,
            "criteria": self.criteria,
            "sections": [
                {"number": s.number, "title": s.title, "blocks": [block_to_dict(b) for b in s.blocks]}
                for s in self.sections
            ],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ReportDocument:
        if data.get("schema") not in READABLE_SCHEMAS:
            raise ValueError(f"not a report document this version reads (schema {data.get('schema')!r}; reads "
                             f"{', '.join(READABLE_SCHEMAS)})")
        sections = [
            Section(s["number"], s["title"], [block_from_dict(b) for b in s["blocks"]]) for s in data["sections"]
        ]
        return cls(
            report_id=data["report_id"],
            version=data["version"],
            status=data["status"],
            title=data["title"],
            generated_at_utc=data["generated_at_utc"],
            software_version=data["software_version"],
            seeds=dict(data["seeds"]),
            prepared_by=data["prepared_by"],
            approved_by=data["approved_by"],
            approved_at_utc=data["approved_at_utc"],
            sections=sections,
            criteria=data["criteria"] if data["schema"] == SCHEMA else None,
        )


def _cell_to_json(cell: Cell) -> Any:
    return list(cell) if isinstance(cell, tuple) else cell


def block_to_dict(block: Block) -> dict[str, Any]:
    if isinstance(block, Paragraph):
        return {"type": "paragraph", "text": block.text}
    if isinstance(block, Facts):
        return {"type": "facts", "rows": [[key, value] for key, value in block.rows]}
    if isinstance(block, Table):
        return {
            "type": "table",
            "caption": block.caption,
            "columns": list(block.columns),
            "rows": [[_cell_to_json(cell) for cell in row] for row in block.rows],
            "rows_text": block.rows_text(),
            "status_column": block.status_column,
            "digits": list(block.digits) if isinstance(block.digits, list) else block.digits,
        }
    if isinstance(block, Chart):
        return {"type": "chart", "kind": block.kind, "title": block.title, "data": block.data,
                "x_label": block.x_label, "y_label": block.y_label}
    if isinstance(block, ImageGrid):
        return {"type": "image_grid", "title": block.title, "columns": block.columns,
                "images": [{"path": image.path, "caption": image.caption} for image in block.images]}
    if isinstance(block, Callout):
        return {"type": "callout", "level": block.level, "text": block.text}
    raise TypeError(f"not a report block: {type(block).__name__}")


def block_from_dict(data: dict[str, Any]) -> Block:
    kind = data.get("type")
    if kind == "paragraph":
        return Paragraph(data["text"])
    if kind == "facts":
        return Facts([(key, value) for key, value in data["rows"]])
    if kind == "table":
        table = Table(data["columns"], data["rows"], data["caption"], data["status_column"], data["digits"])
        if "rows_text" in data and data["rows_text"] != table.rows_text():
            raise ValueError(f"table {table.caption!r}: rows_text does not match the formatted rows")
        return table
    if kind == "chart":
        return Chart(data["kind"], data["title"], data["data"], data["x_label"], data["y_label"])
    if kind == "image_grid":
        images = [ImageRef(image["path"], image["caption"]) for image in data["images"]]
        return ImageGrid(data["title"], images, data["columns"])
    if kind == "callout":
        return Callout(data["level"], data["text"])
    raise ValueError(f"unknown block type {kind!r}")
