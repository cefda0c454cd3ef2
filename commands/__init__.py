"""The write side: the bank ledger domain (pure deciders) and the command API."""
