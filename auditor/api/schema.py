"""OpenAPI: the error answers an operation can give, so that clients (and the schemathesis contract test,
tests/auditor/api/test_schemathesis.py) know them.

drf-spectacular documents success responses only. `document_error_responses` (a post-processing hook, see
SPECTACULAR_SETTINGS) adds the errors that follow from how an operation is reached:

- 401 and 403 wherever authentication is required (no token; a role that may not do this);
- 404 wherever the path names an object (another organisation's object looks like one that does not exist)
  or a page is asked for (a page past the end);
- 400 wherever a request body or query is read, or state is changed (validation, or a state the object is not in).

Answers that only some views give (409 conflicts, 413 and 507 on upload, 429 on the token endpoint) are declared
on those views with `error_responses(...)`.
"""
from __future__ import annotations

from drf_spectacular.utils import OpenApiResponse
from rest_framework import serializers

MAX_ID = 2**63 - 1  # ids and seeds in requests: the largest value of a signed 64-bit database column


class ErrorDetailSerializer(serializers.Serializer):
    """The body of every error that is not a validation error: {"detail": "what went wrong"}."""

    detail = serializers.CharField()


ERROR_DETAIL = "ErrorDetail"  # the component drf-spectacular names after ErrorDetailSerializer
VALIDATION_ERRORS = "ValidationErrors"
_SCHEMAS = {
    ERROR_DETAIL: {"type": "object", "properties": {"detail": {"type": "string"}}, "required": ["detail"]},
    # DRF's validation errors: {"field": ["message", ...], "non_field_errors": [...]} or {"detail": "..."}.
    VALIDATION_ERRORS: {"type": "object", "additionalProperties": {},
                        "description": "field name (or non_field_errors / detail) -> message(s)"},
}
GENERIC_ERRORS = {
    400: ("invalid request: the body names each field that is wrong", VALIDATION_ERRORS),
    401: ("not authenticated: send `Authorization: Token <key>`", ERROR_DETAIL),
    403: ("your role does not allow this", ERROR_DETAIL),
    404: ("no such object in your organisations, or no such page", ERROR_DETAIL),
}
DESCRIPTIONS = {
    409: "the object is not in a state that allows this",
    413: "the upload is over the size limit",
    429: "too many attempts; wait and try again",
    503: "the database could not record this; nothing was changed, try again",
    507: "the server could not store the data (disk full or I/O error); nothing was kept",
}


def error_responses(*codes: int, **descriptions: str) -> dict[int, OpenApiResponse]:
    """For `extend_schema(responses={200: ..., **error_responses(409, 507)})`; descriptions by `e409="..."`."""
    return {code: OpenApiResponse(ErrorDetailSerializer, description=descriptions.get(f"e{code}", DESCRIPTIONS.get(code, "")))
            for code in codes}


def _is_public(operation: dict) -> bool:
    security = operation.get("security")  # absent or containing {}: no authentication needed
    return not security or {} in security


def document_error_responses(result: dict, generator, request, public) -> dict:
    schemas = result.setdefault("components", {}).setdefault("schemas", {})
    for name, schema in _SCHEMAS.items():
        schemas.setdefault(name, schema)
    for methods in result.get("paths", {}).values():
        for method, operation in methods.items():
            parameters = operation.get("parameters", [])
            codes = set()
            if not _is_public(operation):
                codes |= {401, 403}
            if any(p["in"] == "path" or p["name"] == "page" for p in parameters):
                codes.add(404)
            if method != "get" or "requestBody" in operation or any(p["in"] == "query" for p in parameters):
                codes.add(400)
            responses = operation.setdefault("responses", {})
            for code in sorted(codes):
                description, component = GENERIC_ERRORS[code]
                responses.setdefault(str(code), {
                    "description": description,
                    "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{component}"}}},
                })
    return result
