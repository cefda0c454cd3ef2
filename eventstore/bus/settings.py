"""Settings of every process that talks to the bus (environment, 12-factor)."""

from __future__ import annotations

from pydantic import Field

from eventstore.bus.topology import Topology
from eventstore.settings import EventStoreSettings


class BrokerSettings(EventStoreSettings):
    """``CHRONICLE_BROKER_*``: which bus, and the names of its broker objects."""

    broker_url: str = Field(
        default="memory://", description="memory:// (in-process) or amqp://user:pass@host/vhost"
    )
    broker_prefix: str = Field(
        default="chronicle", description="prefix of every exchange and queue name"
    )
    broker_connect_timeout: float = Field(default=5.0, gt=0, description="seconds")
    broker_stream_max_bytes: int = Field(
        default=1 << 30, ge=1 << 20, description="retention of the broadcast stream, bytes"
    )
    broker_stream_max_age: str = Field(
        default="7D", description="retention of the broadcast stream, e.g. 7D, 12h"
    )
    broker_stream_segment_bytes: int = Field(
        default=64 << 20, ge=1 << 20, description="segment size of the broadcast stream"
    )

    def topology(self) -> Topology:
        segment = min(self.broker_stream_segment_bytes, self.broker_stream_max_bytes)
        return Topology(
            prefix=self.broker_prefix,
            stream_max_bytes=self.broker_stream_max_bytes,
            stream_max_age=self.broker_stream_max_age,
            stream_segment_bytes=segment,
        )
