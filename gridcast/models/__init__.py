"""Forecast models sharing one contract (:class:`gridcast.models.base.Forecaster`)."""
