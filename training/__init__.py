"""gridcast training side: data (collect, import, quality), features, models, backtest.

Training writes the BentoML model store; the service only loads from it.
"""
