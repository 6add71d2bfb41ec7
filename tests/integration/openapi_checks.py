"""Checks of a published OpenAPI document shared by the API tests."""

from __future__ import annotations

from typing import Any

ERROR_REF = "#/components/schemas/ErrorBody"


def assert_one_error_body(spec: dict[str, Any]) -> None:
    """Every operation declares :class:`api.errors.ErrorBody` for 4XX and 5XX, and the
    document holds no other error schema (FastAPI's HTTPValidationError is never sent)."""
    operations = [
        (path, method, op)
        for path, item in spec["paths"].items()
        for method, op in item.items()
        if method in {"get", "head", "post", "put", "patch", "delete"}
    ]
    assert operations
    for path, method, op in operations:
        for status in ("4XX", "5XX"):
            schema = op["responses"][status]["content"]["application/json"]["schema"]
            assert schema == {"$ref": ERROR_REF}, (method, path, status)
        assert "422" not in op["responses"], (method, path)
    schemas = spec["components"]["schemas"]
    assert "HTTPValidationError" not in schemas and "ValidationError" not in schemas
