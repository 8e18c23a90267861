"""JSON text written column-wise: numbers by one orjson call, objects by joining pieces.

What :func:`gridcast.forecast.render_bytes` builds a response's points from, without a
dict per point.

Example:
    >>> import numpy as np
    >>> json_numbers(np.array([1.0, 0.5, np.nan]))
    ['1.0', '0.5', 'null']
    >>> points_json(["90"], [["t0"], ["1.0"], ["0.5"], ["2.0"], ["0.5"], ["2.0"]])
    '{"timestamp":"t0","mean":1.0,"lower":0.5,"upper":2.0,"intervals":{"90":{"lower":0.5,"upper":2.0}}}'
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import orjson

#: JSON number arrays: orjson writes a float64 array's numbers as it writes Python floats
NUMPY = orjson.OPT_SERIALIZE_NUMPY


def json_numbers(values: np.ndarray) -> list[str]:
    """Each float's JSON text (``null`` for NaN), written by orjson in one call."""
    text = orjson.dumps(np.ascontiguousarray(values, dtype=np.float64), option=NUMPY).decode()[1:-1]
    return text.split(",") if text else []


def points_json(keys: Sequence[str], columns: Sequence[list[str]]) -> str:
    """The points array's inside: each point's JSON pieces interleaved by slice assignment, then one join.

    ``columns``: timestamps, mean, lower, upper, then (lower, upper) per level, as JSON text.
    """
    fixed = ['{"timestamp":"', '","mean":', ',"lower":', ',"upper":']
    for i, k in enumerate(keys):
        fixed += [(',"intervals":{' if i == 0 else "},") + f'"{k}":{{"lower":', ',"upper":']
    fixed.append("}}},")
    n, width = len(columns[0]), len(fixed) + len(columns)
    pieces: list[str] = [""] * (n * width)
    for j, text in enumerate(fixed):
        pieces[2 * j::width] = [text] * n
    for j, column in enumerate(columns):
        pieces[2 * j + 1::width] = column
    return "".join(pieces)[:-1]  # the last point's trailing comma
