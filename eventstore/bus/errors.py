"""The bus's exception tree.

Every error the bus raises derives from :class:`BusError`; driver errors (aio-pika,
aiormq, sockets) are translated inside the adapters and never leak::

    BusError
    ├── BusUnavailable         the broker cannot be reached or dropped us: retry later
    │   └── PublishRejected    the broker refused (nacked) a message; retry may succeed
    ├── TopologyMismatch       an exchange or queue exists with other arguments
    ├── MessageDecodeError     a message does not follow the wire format (eventstore.bus.wire)
    └── BusClosed              the bus was closed; nothing more can be published or consumed
"""

from __future__ import annotations


class BusError(Exception):
    """Root of every error raised by the bus."""


class BusUnavailable(BusError):
    """The broker cannot be reached or the connection was lost; retrying may succeed.

    Messages of a failed publish may or may not have reached the broker: publishing
    is at least once, so the caller republishes them and consumers drop duplicates.
    """


class PublishRejected(BusUnavailable):
    """The broker answered a publish with a negative confirm (an internal error)."""


class TopologyMismatch(BusError):
    """An exchange or queue of the same name exists with different arguments."""


class MessageDecodeError(BusError, ValueError):
    """A message body or its headers do not follow the wire format."""


class BusClosed(BusError):
    """The bus was closed."""
