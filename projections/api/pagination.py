"""Opaque cursors for keyset pagination: the key of the last item of a page, encoded.

A cursor is URL-safe base64 of a small JSON document; clients must not build one.
Keyset (not offset) pagination stays correct while rows are added between pages.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from projections.errors import InvalidCursor


def encode_cursor(kind: str, key: str | int) -> str:
    raw = json.dumps({"k": kind, "v": key}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str, kind: str, value_type: type[Any]) -> Any:
    """The key carried by ``cursor``; raises InvalidCursor unless it is one of ``kind``."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        document = json.loads(raw)
    except (binascii.Error, ValueError) as exc:
        raise InvalidCursor("the cursor is not one this API handed out") from exc
    value = document.get("v") if isinstance(document, dict) else None
    valid = isinstance(value, value_type) and not isinstance(value, bool)
    if not valid or document.get("k") != kind:
        raise InvalidCursor("the cursor is not one this API handed out")
    return value
