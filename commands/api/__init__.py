"""The command API (FastAPI): thin routes over the write side."""
