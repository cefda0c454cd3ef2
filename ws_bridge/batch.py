"""Frames written together at the end of one fan-out step.

While one event is offered to every subscription, the frames that can go straight to
their sockets are collected here, grouped by content, and written with one
``websockets.broadcast`` call per distinct frame. Nothing else runs on the event loop
in between, so each socket still receives its frames in order.
"""

from __future__ import annotations

from websockets.asyncio.server import ServerConnection, broadcast


class Batch:
    """Frames waiting to be written, grouped by content."""

    __slots__ = ("_groups",)

    def __init__(self) -> None:
        self._groups: dict[bytes, list[ServerConnection]] = {}

    def add(self, frame: bytes, connection: ServerConnection) -> None:
        group = self._groups.get(frame)
        if group is None:
            self._groups[frame] = [connection]
        else:
            group.append(connection)

    def flush(self) -> None:
        """Write every collected frame (a connection that closed meanwhile is skipped)."""
        groups, self._groups = self._groups, {}
        for frame, connections in groups.items():
            broadcast(connections, frame, text=True)
