"""The PatchOp envelope (RFC 7644 §3.5.2), read the same way for every resource."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from . import errors
from .base import fold_keys


def operations(body: Any) -> Iterator[tuple[str, str | None, Any]]:
    """``(op, path, value)`` of each operation, checked: op lower-cased (RFC 7644 §3.5.2; Entra
    sends "Replace", "Add"), path a string or None; a path-less op is an add or replace whose
    value is an object of attribute paths (Okta's ``{"op":"replace","value":{"active":false}}``,
    Entra's ``{"name.givenName": …}``). An empty list is a 400 for every resource: RFC 7644
    §3.5.2 asks for "one or more" operations, and a PATCH that changes nothing is a client's
    mistake to report, not a success to log."""
    listed = fold_keys(body).get("operations") if isinstance(body, dict) else None
    if not isinstance(listed, list):
        raise errors.InvalidSyntax("A PATCH body needs an Operations list (RFC 7644 §3.5.2).")
    if not listed:
        raise errors.InvalidValue("A PATCH body needs at least one operation.")
    for operation in listed:
        # Attribute names are case-insensitive (RFC 7643 §2.1), the PatchOp's own included.
        operation = fold_keys(operation) if isinstance(operation, dict) else None
        if operation is None or not isinstance(operation.get("op"), str):
            raise errors.InvalidSyntax("Each operation needs an op.")
        op = operation["op"].lower()
        if op not in ("add", "replace", "remove"):
            raise errors.InvalidSyntax(f"Unknown PATCH op {operation['op']!r}.")
        path = operation.get("path")
        value = operation.get("value")
        if op != "remove" and "value" not in operation:
            # RFC 7644 §3.5.2.1, §3.5.2.3: add and replace MUST carry a value. Read as a null,
            # a truncated operation cleared the attribute it named. An explicit null still
            # clears it (RFC 7643 §2.5: null and unassigned are the same state).
            raise errors.InvalidValue(f"A {op} operation needs a value.")
        if path in (None, ""):
            if op == "remove":
                raise errors.NoTarget("A remove operation needs a path.")
            if not isinstance(value, dict):
                raise errors.InvalidValue("An operation without a path needs an object value.")
            yield op, None, value
        elif not isinstance(path, str):
            raise errors.InvalidPath("path must be a string.")
        else:
            yield op, path, value
