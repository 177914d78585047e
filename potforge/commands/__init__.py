"""One module per CLI verb; see :mod:`potforge.cli`."""
