"""The composition root: the `chronicle` command line that wires every process together."""
