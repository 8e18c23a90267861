"""gridcast service package."""
