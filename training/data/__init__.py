"""Data layer: synthetic generator, import, quality checks, plots."""
