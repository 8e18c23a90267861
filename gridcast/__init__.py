"""gridcast's core: what every adapter (service, streaming, ui, training) stands on.

Settings, errors, the canonical schema, features, the models (one contract), the
forecast path, the state and cache stores (Redis and embedded) and the model-store
adapter. Nothing here imports an adapter.
"""
