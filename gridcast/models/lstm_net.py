"""The LSTM forecaster's network: its Keras definition (training) and its forward pass in numpy (serving).

Both describe the same computation: an LSTM over the day blocks of the input window,
a context layer, a per-lead context, and a three-layer head whose output corrects the
seasonal-naive ratio (so an untrained network *is* the seasonal naive). Training builds
and fits the Keras model; forecasting runs :func:`forward` on its weights, so a served
model needs neither TensorFlow nor Keras.
"""

from __future__ import annotations

import numpy as np

from gridcast.schema import TEMPERATURE

#: Fourier orders for the LSTM's calendar terms (a finer daily shape than the default)
FOURIER: dict[str, tuple[float, int]] = {"daily": (1.0, 4), "weekly": (7.0, 3), "annual": (365.25, 2)}
#: annual terms only when the training data covers this many days: on a few months
#: they act as a trend the network extrapolates wildly
ANNUAL_MIN_DAYS = 2 * 365
#: holiday flags only with a year of data: from a few months the network learns one
#: holiday's dip (Tết's, say) and applies it to every other public holiday
HOLIDAY_MIN_DAYS = 365
#: calendar columns of a model saved before it recorded its own (``flags_``; see
#: ``lstm_features.CALENDAR_FLAGS``); numeric ``hour``/``month`` are left out
FLAGS = ("is_weekend", "holiday", "holiday_eve", "holiday_after")
#: weather terms used (from weather_features); other weather columns are ignored
WEATHER_TERMS = (TEMPERATURE, "hdd", "cdd")
#: probabilities of the conformal quantile grid
QUANTILE_PROBS = np.round(np.linspace(0.005, 0.995, 199), 6)
#: an input window may miss at most this share of its load values (filled) before the
#: forecast is refused and the caller falls back
MAX_MISSING_SHARE = 0.25

#: the layers with weights, in the order of the forward pass (names given in :func:`build_network`)
NET_LAYERS = ("lstm", "context", "lead_context", "head_1", "head_2", "head_out")


def build_network(enc_shape: tuple[int, int], dec_shape: tuple[int, int], *, units: int, horizon: int,
                  learning_rate: float, ema_momentum: float = 0.0, steps_per_epoch: int | None = None):
    """The Keras model: it outputs a correction added to the seasonal-naive ratio.

    The last layer starts at zero, so an untrained network *is* the seasonal naive
    forecast, and training only has to learn what naive gets wrong.

    ``ema_momentum`` > 0: the optimizer keeps an exponential moving average of the
    weights and writes it into the model at the end of every epoch
    (``steps_per_epoch``) and of training, so validation, early stopping and the saved
    weights all see the averaged weights (no cost when forecasting).
    """
    import keras
    from keras import layers

    H = horizon
    enc_in = keras.Input(shape=enc_shape, name="encoder")
    dec_in = keras.Input(shape=dec_shape, name="decoder")
    base_in = keras.Input(shape=(H,), name="base")
    state = layers.LSTM(units, name="lstm")(enc_in)
    context = layers.Dense(units // 2, activation="relu", name="context")(state)
    shared = layers.RepeatVector(H, name="repeat")(context)
    per_lead = layers.Reshape((H, 4), name="per_lead")(layers.Dense(H * 4, name="lead_context")(context))
    x = layers.Concatenate(name="join")([dec_in, shared, per_lead])
    x = layers.Dense(2 * units, activation="relu", name="head_1")(x)
    x = layers.Dense(units, activation="relu", name="head_2")(x)
    correction = layers.Reshape((H,), name="correction")(
        layers.Dense(1, kernel_initializer="zeros", name="head_out")(x)
    )
    out = layers.Add(name="ratio")([base_in, correction])
    model = keras.Model([enc_in, dec_in, base_in], out, name="gridcast_lstm")
    if ema_momentum > 0:
        optimizer = keras.optimizers.Adam(learning_rate, use_ema=True, ema_momentum=ema_momentum,
                                          ema_overwrite_frequency=steps_per_epoch)
    else:
        optimizer = keras.optimizers.Adam(learning_rate)
    model.compile(optimizer=optimizer, loss="mae")
    return model


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (np.tanh(0.5 * x) + 1.0)  # = 1 / (1 + exp(-x)), without overflow


def forward(w: dict[str, np.ndarray], enc: np.ndarray, dec: np.ndarray, base: np.ndarray,
            leads: np.ndarray | None = None) -> np.ndarray:
    """The Keras network of :func:`build_network`, forward, in float64 numpy.

    Keras' LSTM: gates in the order input, forget, cell, output; ``tanh`` activation,
    ``sigmoid`` recurrent activation, zero initial state; the last hidden state out.

    Float64, not the float32 Keras trains in: a sample's output must not depend on
    which other samples share its batch, and float32 BLAS does not promise that (on
    AVX-512 CPUs OpenBLAS picks its kernels by batch size, and a row of a batch of 4
    differed from the same row alone by 3.6e-6 MW). In float64 such differences are
    rounding at 1e-16; the cost is 20-70 % more time in this function.

    ``leads`` (optional, one count per sample): the head runs on each sample's first
    ``leads[i]`` steps only, and the later steps come back NaN. The head is per step and
    most of the network's work, so a batch of short horizons costs what it asks for;
    the steps computed are the same arithmetic as without ``leads``.
    """
    enc, dec, base = (np.asarray(a, dtype=np.float64) for a in (enc, dec, base))
    b, steps, _ = enc.shape
    H = base.shape[1]
    kernel, recurrent, bias = w["lstm/0"], w["lstm/1"], w["lstm/2"]
    u = recurrent.shape[0]
    h = np.zeros((b, u))
    c = np.zeros((b, u))
    # every product as one 2-D matrix product: numpy runs a stacked (3-D) one about 3x slower
    x_all = (enc.reshape(b * steps, -1) @ kernel).reshape(b, steps, -1) + bias
    for t in range(steps):
        z = x_all[:, t] + h @ recurrent
        c = _sigmoid(z[:, u:2 * u]) * c + _sigmoid(z[:, :u]) * np.tanh(z[:, 2 * u:3 * u])
        h = _sigmoid(z[:, 3 * u:]) * np.tanh(c)
    context = np.maximum(h @ w["context/0"] + w["context/1"], 0.0)
    per_lead = (context @ w["lead_context/0"] + w["lead_context/1"]).reshape(b * H, -1)
    # the head's first layer on [decoder, context repeated, per-lead context], without
    # materialising the repeated context: the kernel split by input block
    k1 = w["head_1/0"]
    n_dec, n_ctx = dec.shape[-1], context.shape[-1]
    dec_rows = dec.reshape(b * H, n_dec)
    ctx_term = context @ k1[n_dec:n_dec + n_ctx] + w["head_1/1"]
    if leads is None:
        x = (dec_rows @ k1[:n_dec] + per_lead @ k1[n_dec + n_ctx:]).reshape(b, H, -1)
        x += ctx_term[:, None, :]
        x = x.reshape(b * H, -1)
    else:  # only the steps asked for: (sample, step) rows with step < leads[sample]
        counts = np.clip(np.asarray(leads, dtype=np.int64), 0, H)
        keep = (np.arange(H)[None, :] < counts[:, None]).reshape(-1)
        x = dec_rows[keep] @ k1[:n_dec] + per_lead[keep] @ k1[n_dec + n_ctx:]
        x += np.repeat(ctx_term, counts, axis=0)
    np.maximum(x, 0.0, out=x)
    x = x @ w["head_2/0"]
    x += w["head_2/1"]
    np.maximum(x, 0.0, out=x)
    rows = (x @ w["head_out/0"])[:, 0] + w["head_out/1"][0]
    if leads is None:
        return base + rows.reshape(b, H)
    out = np.full((b, H), np.nan)
    out.reshape(-1)[keep] = base.reshape(-1)[keep] + rows
    return out


def conformal_grid(residuals: np.ndarray, spd: int) -> np.ndarray:
    """Per-lead quantiles of relative residuals, pooled over neighbouring leads.

    Pooling a few leads either side (an eighth of a day) steadies the tails when the
    validation split is short; leads that close have near-identical error.
    """
    n, H = residuals.shape
    k = max(1, spd // 8)
    grid = np.empty((H, len(QUANTILE_PROBS)))
    for j in range(H):
        pool = residuals[:, max(0, j - k): j + k + 1].reshape(-1)
        grid[j] = np.quantile(pool, QUANTILE_PROBS)
    return grid


def grid_quantile(grid: np.ndarray, prob: float) -> np.ndarray:
    """Interpolate each lead's quantile at ``prob`` (clipped to the grid's range)."""
    prob = float(np.clip(prob, QUANTILE_PROBS[0], QUANTILE_PROBS[-1]))
    i = int(np.searchsorted(QUANTILE_PROBS, prob))
    if QUANTILE_PROBS[i] == prob or i == 0:
        return grid[:, i]
    w = (prob - QUANTILE_PROBS[i - 1]) / (QUANTILE_PROBS[i] - QUANTILE_PROBS[i - 1])
    return grid[:, i - 1] * (1 - w) + grid[:, i] * w
