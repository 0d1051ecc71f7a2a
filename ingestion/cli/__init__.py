"""Console scripts declared in pyproject.toml."""
