"""Names and arguments of the broker objects (see docs/messaging.md for the design).

Every name starts with a configurable prefix (``CHRONICLE_BROKER_PREFIX``), so several
systems, or tests, share one broker without seeing each other's messages:

* ``<prefix>.events``: the durable topic exchange the relay publishes to;
* ``<prefix>.projection.<name>``: a consumer's durable quorum queue with a single active
  consumer, bound to the routing keys it needs (the projector's is
  ``<prefix>.projection.all``, bound to every event and fanned out to its projections);
* ``<prefix>.broadcast``: a durable RabbitMQ stream bound to every routing key, read by
  every bridge replica from an offset; retention is bounded by size and age.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

_PREFIX = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")
_AGE = re.compile(r"^[0-9]+[YMDhms]$")


@dataclass(frozen=True, slots=True)
class Topology:
    """The broker objects of one Chronicle system."""

    prefix: str = "chronicle"
    stream_max_bytes: int = 1 << 30
    """The broadcast keeps at most this many bytes (whole segments are dropped)."""
    stream_max_age: str = "7D"
    """…and drops segments older than this (RabbitMQ syntax: 7D, 12h, 30m)."""
    stream_segment_bytes: int = 64 << 20
    """Segment size: retention removes whole segments, so keep it well below the maximum."""

    def __post_init__(self) -> None:
        if not _PREFIX.match(self.prefix):
            raise ValueError(f"broker prefix {self.prefix!r}: letters, digits, '.', '-', '_'")
        if not _AGE.match(self.stream_max_age):
            raise ValueError(f"stream max age {self.stream_max_age!r}: like 7D, 12h or 30m")
        if not 0 < self.stream_segment_bytes <= self.stream_max_bytes:
            raise ValueError("stream segments must be positive and at most the maximum size")

    @property
    def exchange(self) -> str:
        return f"{self.prefix}.events"

    @property
    def broadcast(self) -> str:
        return f"{self.prefix}.broadcast"

    def queue_name(self, projection: str) -> str:
        return f"{self.prefix}.projection.{projection}"

    @staticmethod
    def queue_arguments() -> dict[str, Any]:
        # Quorum: replicated and durable. Single active consumer: one worker at a time
        # applies the projection's events, in order; the others stand by.
        return {"x-queue-type": "quorum", "x-single-active-consumer": True}

    def stream_arguments(self) -> dict[str, Any]:
        return {
            "x-queue-type": "stream",
            "x-max-length-bytes": self.stream_max_bytes,
            "x-max-age": self.stream_max_age,
            "x-stream-max-segment-size-bytes": self.stream_segment_bytes,
        }
