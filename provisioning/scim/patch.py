"""The PatchOp envelope (RFC 7644 §3.5.2), read the same way for every resource."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from . import errors


def operations(body: Any) -> Iterator[tuple[str, str | None, Any]]:
    """``(op, path, value)`` of each operation, checked: op lower-cased (RFC 7644 §3.5.2; Entra
    sends "Replace", "Add"), path a string or None; a path-less op is an add or replace whose
    value is an object of attribute paths (Okta's ``{"op":"replace","value":{"active":false}}``,
    Entra's ``{"name.givenName": …}``). An empty list is a 400 for every resource: RFC 7644
    §3.5.2 asks for "one or more" operations, and a PATCH that changes nothing is a client's
    mistake to report, not a success to log."""
    if not isinstance(body, dict) or not isinstance(body.get("Operations"), list):
        raise errors.InvalidSyntax("A PATCH body needs an Operations list (RFC 7644 §3.5.2).")
    if not body["Operations"]:
        raise errors.InvalidValue("A PATCH body needs at least one operation.")
    for operation in body["Operations"]:
        if not isinstance(operation, dict) or not isinstance(operation.get("op"), str):
            raise errors.InvalidSyntax("Each operation needs an op.")
        op = operation["op"].lower()
        if op not in ("add", "replace", "remove"):
            raise errors.InvalidSyntax(f"Unknown PATCH op {operation['op']!r}.")
        path = operation.get("path")
        value = operation.get("value")
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
