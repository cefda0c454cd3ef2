"""commands.service.context: the event ids a command appends, and the write side's
group-commit setting."""

from __future__ import annotations

from uuid import uuid4

import pytest
from pydantic import ValidationError

from commands.service.context import derived_ids, random_ids
from commands.settings import CommandsSettings


def test_commands_without_a_key_append_time_ordered_ids() -> None:
    ids = [random_ids(index) for index in range(1000)]
    assert all(event_id.version == 7 for event_id in ids)
    assert ids == sorted(ids)
    assert len(set(ids)) == len(ids)


def test_keyed_commands_append_ids_derived_from_the_claim() -> None:
    seed = uuid4()
    assert [derived_ids(seed)(i) for i in range(3)] == [derived_ids(seed)(i) for i in range(3)]
    assert derived_ids(seed)(0) != derived_ids(uuid4())(0)


def test_append_statements_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHRONICLE_AUTH", "disabled")
    assert CommandsSettings().append_statements == 4
    monkeypatch.setenv("CHRONICLE_APPEND_STATEMENTS", "1")
    assert CommandsSettings().append_statements == 1
    monkeypatch.setenv("CHRONICLE_APPEND_STATEMENTS", "0")
    with pytest.raises(ValidationError, match="append_statements"):
        CommandsSettings()
