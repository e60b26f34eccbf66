"""Running a model for inference: one traced function per model, on float32 NumPy batches."""

from __future__ import annotations

import weakref

import numpy as np


def input_channels(model) -> list[int]:
    """Channel count of each input of ``model``; raises if one is not fixed."""
    shapes = model.input_shape if isinstance(model.input_shape, list) else [model.input_shape]
    if any(sh[-1] is None for sh in shapes):
        raise ValueError("the model's input channel count is not fixed; build it with Input(shape=(None, None, C))")
    return [int(sh[-1]) for sh in shapes]


def model_channels(model) -> int:
    """Channel count of the (first) input of ``model``: 1 for a Y-only model, 3 for RGB."""
    return input_channels(model)[0]


EAGER_PIXELS = 48 * 48  # batch pixels (N x H x W) up to which the first calls run eagerly
EAGER_CALLS = 2  # calls run eagerly before the function is traced


def traced_runner(model):
    """An inference function on (N, H, W, C) float32 with dynamic N, H, W: traced (``tf.function``),
    except the first :data:`EAGER_CALLS` calls on at most :data:`EAGER_PIXELS` batch pixels, which run
    eagerly: tracing a deep model (RRDBNet: 700+ layers) costs seconds, more than running it eagerly
    on one small image does (a fresh process upscaling a thumbnail; the scale check), and a process
    that makes many calls traces once.

    A model with several inputs takes them concatenated along channels; several outputs come back
    concatenated the same way (trunk -> tail features travel as one array). The function holds
    ``model`` weakly: it is kept beside the model (:class:`~srkeras.inference.served.ServedModel`),
    and a strong reference would keep every model ever run (weights included) alive in a long-lived app.
    """
    import tensorflow as tf

    chans = input_channels(model)
    ref = weakref.ref(model)

    def forward(x):
        xs = x if len(chans) == 1 else tf.split(x, chans, axis=-1)
        y = ref()(xs, training=False)
        ys = [tf.cast(t, tf.float32) for t in (y if isinstance(y, (list, tuple)) else [y])]
        return ys[0] if len(ys) == 1 else tf.concat(ys, axis=-1)

    traced = tf.function(forward, input_signature=[tf.TensorSpec([None, None, None, sum(chans)], tf.float32)],
                         reduce_retracing=True)  # fmt: skip
    calls = [0]

    def run(x):
        calls[0] += 1
        if calls[0] <= EAGER_CALLS and int(np.prod(np.shape(x)[:3])) <= EAGER_PIXELS:
            return forward(tf.convert_to_tensor(x))
        return traced(x)

    return run


def run_model(runner, batch: np.ndarray) -> np.ndarray:
    """A traced ``runner`` (:func:`traced_runner`) on a float32 (N, H, W, C) batch, as a NumPy array."""
    return np.asarray(runner(np.ascontiguousarray(batch, dtype=np.float32)))


__all__ = ["input_channels", "model_channels", "run_model", "traced_runner"]
