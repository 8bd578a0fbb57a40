"""The gitrepro release (pyproject.toml says the same), stamped in reports and `--version`."""

__version__ = "0.1.0"
