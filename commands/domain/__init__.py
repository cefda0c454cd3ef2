"""The bank ledger's pure domain: deciders for accounts and transfers. No I/O here."""
