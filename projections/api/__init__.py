"""The query API (`chronicle serve queries`): read models and the raw log over HTTP."""

from projections.api.app import create_app

__all__ = ["create_app"]
