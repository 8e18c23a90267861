"""gridcast streaming package."""
