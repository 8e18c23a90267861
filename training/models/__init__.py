"""Forecast models sharing one contract (:class:`training.models.base.Forecaster`)."""
