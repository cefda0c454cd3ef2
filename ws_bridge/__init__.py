"""The stateless WebSocket bridge that fans committed events out to dashboards."""
