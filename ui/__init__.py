"""gridcast ui package."""
