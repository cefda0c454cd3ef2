"""The read side's exception tree.

Every error the read side raises derives from :class:`ProjectionError`; database driver
errors (asyncpg, sqlite3 through SQLAlchemy) are translated where they are caught::

    ProjectionError
    ├── ReadModelUnavailable     the read database cannot be reached: retry later
    ├── UnknownProjection        no projection of that name in this build
    ├── PoisonEvent              applying one event failed on every attempt
    ├── ReplayError              a replay could not finish; the live model is untouched
    └── InvalidCursor            a pagination cursor that this API did not hand out
"""

from __future__ import annotations


class ProjectionError(Exception):
    """Root of every error raised by the read side."""


class ReadModelUnavailable(ProjectionError):
    """The read database cannot be reached or dropped the connection; retrying may work."""


class UnknownProjection(ProjectionError, LookupError):
    """No projection of that name exists in this build."""


class PoisonEvent(ProjectionError):
    """Applying the event at ``position`` failed ``attempts`` times; its projection halts.

    The event is never skipped: the projection stays halted (and the message parked)
    until the code or the data is fixed and the projector restarted.
    """

    def __init__(self, projection: str, position: int, event_type: str, cause: str) -> None:
        super().__init__(
            f"projection {projection!r} halted at event {event_type} (position {position}): {cause}"
        )
        self.projection = projection
        self.position = position
        self.event_type = event_type
        self.cause = cause


class ReplayError(ProjectionError):
    """A replay stopped before its swap; the live read model was not changed."""


class InvalidCursor(ProjectionError, ValueError):
    """A pagination cursor that does not decode to a position in the listing."""
