"""Validation: raw canonical table → quality report + cleaned table (``raw → validated → features``).

The checks that ``gridcast data check`` and the service's ``POST /data/check`` run, in
the order a forecaster needs them (:mod:`gridcast.quality.checks` runs them and writes
the report). Along the same seams:

* :mod:`~gridcast.quality.checks` — :func:`check` runs every check in order; the report.
* :mod:`~gridcast.quality.clock` — time zones and clock-change stretches.
* :mod:`~gridcast.quality.cleaning` — duplicates, grid, units, bounds, spikes,
  flatlines, interpolation.
* :mod:`~gridcast.quality.calendar_model`, :mod:`~gridcast.quality.transposition`,
  :mod:`~gridcast.quality.date_shifts` — the calendar checks.
* :mod:`~gridcast.quality.report`, :mod:`~gridcast.quality.arrays` — bookkeeping and
  array helpers the checks share.
* :mod:`~gridcast.quality.tables` — a table sent over HTTP (CSV text or columns) →
  canonical frame, and back.
* :mod:`~gridcast.quality.faults` — the known faults the checks must find (demo data
  and tests); :mod:`~gridcast.quality.plots` — the figures a person looks at first.

Only :func:`check` and :class:`QualityResult` are re-exported here; matplotlib is
imported by :mod:`~gridcast.quality.plots` alone.
"""

from gridcast.quality.checks import CHECKS, QualityResult, check

__all__ = ["CHECKS", "QualityResult", "check"]
