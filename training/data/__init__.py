"""Data in: import someone else's files onto the canonical table (:mod:`training.data.importer`).

The checks that validate a table, the synthetic demo generator, the fault injector and
the overview plots are the core's (:mod:`gridcast.quality`, :mod:`gridcast.synthetic`):
the service runs them too. ``training.data.synthetic`` re-exports the generator for old
callers.
"""
