"""SQL migrations of the write side (idempotency keys, snapshots)."""
