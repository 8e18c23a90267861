"""gridcast load_tests package."""
