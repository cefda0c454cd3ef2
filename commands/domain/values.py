"""Value types shared by the ledger's commands: identifiers, amounts, owner names."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, StrictInt, StringConstraints

MAX_AMOUNT = 1_000_000_000_000
"""The largest amount one command may move: 10^12 minor units (10 billion in major)."""

MAX_BALANCE = 1_000_000_000_000_000
"""The largest balance an account may hold (10^15 minor units), far inside a signed
64-bit integer so every read model can store balances and sums as ``bigint``."""

ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$"

Identifier = Annotated[
    str,
    Field(
        pattern=ID_PATTERN,
        description="1-64 characters: letters, digits, '_', '.', ':' or '-'; "
        "starting with a letter or digit",
        examples=["acc-7f3a"],
    ),
]

Amount = Annotated[
    StrictInt,
    Field(gt=0, le=MAX_AMOUNT, description="minor units (cents)", examples=[2500]),
]

Owner = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=200),
    Field(pattern=r"^[^\x00-\x1f\x7f]+$", examples=["Ada Lovelace"]),
]
