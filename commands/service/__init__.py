"""The write side's application layer: load state, decide, append; idempotency."""
