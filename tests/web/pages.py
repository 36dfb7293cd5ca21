"""Reading rendered pages in tests: visible text, tables by id or class, attributes (standard library only)."""
from __future__ import annotations

import re
from html import unescape
from html.parser import HTMLParser


def visible_text(html: str) -> str:
    """The page's text as a reader sees it: no tags, attributes, scripts or comments; whitespace collapsed."""
    html = re.sub(r"<(script|style)\b.*?</\1>", " ", html, flags=re.S)
    html = re.sub(r"<!--.*?-->", " ", html, flags=re.S)
    html = re.sub(r"</?(?:a|abbr|b|code|em|i|kbd|small|span|strong)\b[^>]*>", "", html)  # inline: no word break
    return re.sub(r"\s+", " ", unescape(re.sub(r"<[^>]+>", " ", html))).strip()


class _Tables(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tables: list[dict] = []
        self._stack: list[dict] = []
        self._cell: list[str] | None = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "table":
            self._stack.append({"attrs": attrs, "rows": [], "row": None})
        elif self._stack and tag == "tr":
            self._stack[-1]["row"] = []
        elif self._stack and tag in ("td", "th"):
            self._cell = []

    def handle_endtag(self, tag):
        if tag == "table" and self._stack:
            table = self._stack.pop()
            self.tables.append({"attrs": table["attrs"], "rows": table["rows"]})
        elif self._stack and tag == "tr" and self._stack[-1]["row"] is not None:
            self._stack[-1]["rows"].append(self._stack[-1]["row"])
            self._stack[-1]["row"] = None
        elif self._stack and tag in ("td", "th") and self._cell is not None:
            if self._stack[-1]["row"] is not None:
                self._stack[-1]["row"].append(re.sub(r"\s+", " ", "".join(self._cell)).strip())
            self._cell = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)


def tables(html: str) -> list[dict]:
    """Every table in document order: {"attrs": {...}, "rows": [[cell text, ...], ...]} (header row included)."""
    parser = _Tables()
    parser.feed(html)
    return parser.tables  # in the order they close: document order, as the pages nest no tables


def table(html: str, *, id: str | None = None, css_class: str | None = None) -> list[list[str]]:
    for found in tables(html):
        if id and found["attrs"].get("id") == id:
            return found["rows"]
        if css_class and css_class in (found["attrs"].get("class") or "").split():
            return found["rows"]
    raise AssertionError(f"no table {id or css_class} on the page")


def attribute_values(html: str, tag: str, attribute: str) -> list[str]:
    return [unescape(value) for value in re.findall(rf'<{tag}\b[^>]*?\b{attribute}="([^"]*)"', html)]
