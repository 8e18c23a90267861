"""The synthetic generator lives in the core now (:mod:`gridcast.synthetic`).

Kept as a name only: tests and docstrings outside ``training/`` still import
``training.data.synthetic``. New code imports :mod:`gridcast.synthetic`.
"""

from gridcast.synthetic import DEFAULT_CLIMATE, TIMEZONES, generate  # noqa: F401 - the names callers use
