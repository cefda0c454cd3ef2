"""The bridge's exception tree::

BridgeError
├── ConfigurationError   the settings cannot run a bridge (e.g. auth without a key)
├── BadFrame             a client frame is not valid JSON or not a valid operation
└── AuthError            a client cannot be admitted or may not do what it asked
    ├── Unauthenticated  no token, or an invalid or expired one (close 1008)
    └── Forbidden        the token's claims do not cover the subscription (error frame)
"""

from __future__ import annotations


class BridgeError(Exception):
    """Root of every error the bridge raises."""


class ConfigurationError(BridgeError):
    """The settings cannot run a bridge."""


class BadFrame(BridgeError):
    """A client frame does not follow the protocol; ``code`` is the error frame's code."""

    def __init__(self, message: str, code: str = "bad_frame") -> None:
        super().__init__(message)
        self.code = code


class AuthError(BridgeError):
    """Authentication or authorisation failed."""

    code = "auth_failed"


class Unauthenticated(AuthError):
    """No valid token."""

    code = "unauthenticated"


class Forbidden(AuthError):
    """The token's claims do not allow the request."""

    code = "forbidden"
