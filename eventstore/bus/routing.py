"""Topic routing as RabbitMQ does it, for the in-process bus: words split on ``.``,
``*`` matches exactly one word, ``#`` matches zero or more words."""

from __future__ import annotations

from functools import lru_cache


def topic_matches(pattern: str, key: str) -> bool:
    """Whether a binding ``pattern`` routes messages with routing key ``key``."""
    return _match(tuple(pattern.split(".")), tuple(key.split(".")))


@lru_cache(maxsize=4096)
def _match(pattern: tuple[str, ...], words: tuple[str, ...]) -> bool:
    if not pattern:
        return not words
    head, rest = pattern[0], pattern[1:]
    if head == "#":
        return any(_match(rest, words[i:]) for i in range(len(words) + 1))
    if not words:
        return False
    return (head in ("*", words[0])) and _match(rest, words[1:])
