"""`python -m chronicle` runs the command line."""

from chronicle.cli import app

app()
