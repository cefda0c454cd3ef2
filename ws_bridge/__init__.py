"""The WebSocket bridge: a stateless fan-out of committed events to WebSocket clients.

Each replica reads the broker's broadcast whole, encodes every event once, and hands it
to the clients whose filters match; clients resuming with ``after_position`` are
backfilled from the event store (read-only) first. See docs/bridge.md.
"""
