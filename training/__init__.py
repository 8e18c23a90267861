"""gridcast's training adapter: data (collect, import, quality, plots, synthetic),
backtests, and the train commands.

Training writes the BentoML model store (:mod:`gridcast.store`); the service only loads.
"""
