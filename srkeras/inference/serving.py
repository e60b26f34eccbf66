"""Serving-side model rewrites: float32 CPU clones, bfloat16, channels_first -> channels_last.

* CPUs have no fast float16 arithmetic and several TF CPU kernels lack float16 variants, so a model
  trained with the ``mixed_float16`` policy is served on CPU as a float32 clone
  (:func:`as_float32`, same weights: mixed-precision variables are float32 already). Dtype clones
  are layer-by-layer rebuilds (:func:`srkeras.models.graph.rebuild`); these functions take and give
  ``keras.Model``s, and :meth:`srkeras.inference.served.ServedModel.rebuilt` applies one to a served
  model keeping what is known of the network (scale, receptive fields, pre-padding).
* bfloat16 (:func:`as_bfloat16`, policy ``mixed_bfloat16``: float32 weights, bfloat16 maths; see
  :mod:`srkeras.inference.precision` for which layers stay float32) is
  fast only where the CPU has bfloat16 instructions (x86 AVX512_BF16 / AMX, Arm BF16);
  :func:`bf16_supported` checks. It costs accuracy: 8 mantissa bits; the benchmark reports the
  PSNR change.
* :func:`to_channels_last` rebuilds a model built with ``data_format="channels_first"`` (the fast
  layout on NVIDIA GPUs) as a channels-last model with the same weights, and checks both give the
  same output. The rebuild rewrites the whole serialized config (the input shapes change, which a
  layer-by-layer clone cannot do): ``data_format``, input/tensor shapes
  (NCHW -> NHWC), channel ``axis`` arguments (1 -> -1) and PReLU ``shared_axes``; weights whose
  shape is a permutation (PReLU alpha (C, 1, 1) -> (1, 1, C)) are transposed. Convolution kernels
  are stored (kh, kw, in, out) in both layouts and copy as they are.
"""

from __future__ import annotations

import copy

import numpy as np

from srkeras.inference.precision import (
    DEFAULT_KEEP,
    as_float32,
    bf16_supported,
    compute_dtypes,
    float32_layers,
    with_policies,
)


def with_dtype_policy(model, policy: str):
    """Clone of ``model`` with every layer's dtype policy set to ``policy`` and the same weights."""
    return with_policies(model, policy)


def as_bfloat16(model, keep=DEFAULT_KEEP):
    """Clone computing in bfloat16 with float32 weights (``mixed_bfloat16``); the layers of
    :func:`srkeras.inference.precision.float32_layers` (``keep``; ``()``: none) stay float32."""
    return with_policies(model, "mixed_bfloat16", float32_layers(model, keep))


# ------------------------------------------------------------------------------------------------
# channels_first -> channels_last
# ------------------------------------------------------------------------------------------------

_NCHW_TO_NHWC = (0, 2, 3, 1)
_AXIS_MAP = {1: -1, 2: 1, 3: 2, -3: 1, -2: 2}  # channels_first axis of a 4-D tensor -> channels_last


def _cf_to_cl(cfg, in_layer=None):
    if isinstance(cfg, dict):
        cls = cfg.get("class_name", in_layer)
        for k, v in list(cfg.items()):
            if k == "data_format" and v == "channels_first":
                cfg[k] = "channels_last"
            elif k in ("batch_shape", "shape", "batch_input_shape") and isinstance(v, (list, tuple)) and len(v) == 4:
                cfg[k] = [v[i] for i in _NCHW_TO_NHWC]
            elif k == "axis" and cls not in (None,) and _is_4d_axis_layer(cls):
                cfg[k] = [_AXIS_MAP.get(a, a) for a in v] if isinstance(v, list) else _AXIS_MAP.get(v, v)
            elif k == "shared_axes" and cls == "PReLU" and isinstance(v, list):
                cfg[k] = sorted({_AXIS_MAP.get(a, a) % 4 for a in v})
            elif k == "build_config":
                cfg[k] = None  # rebuilt from the graph
            else:
                _cf_to_cl(v, cls if isinstance(v, dict) and "class_name" not in v else None)
    elif isinstance(cfg, (list, tuple)):
        for v in cfg:
            _cf_to_cl(v, in_layer)


def _is_4d_axis_layer(cls):
    return cls in ("BatchNormalization", "LayerNormalization", "Concatenate", "Softmax", "GroupNormalization")


def _drop_none(cfg):
    if isinstance(cfg, dict):
        for k in [k for k, v in cfg.items() if k == "build_config" and v is None]:
            del cfg[k]
        for v in cfg.values():
            _drop_none(v)
    elif isinstance(cfg, list):
        for v in cfg:
            _drop_none(v)


def _convert_weight(w: np.ndarray, target_shape) -> np.ndarray:
    if w.shape == tuple(target_shape):
        return w
    if w.ndim == 3 and tuple(np.transpose(w, (1, 2, 0)).shape) == tuple(target_shape):
        return np.transpose(w, (1, 2, 0))  # (C, H, W)-shaped per-position weights, e.g. PReLU alpha
    raise ValueError(f"cannot map a weight of shape {w.shape} onto {tuple(target_shape)}")


def run_reference(model, x_nchw: np.ndarray):
    """Run a channels_first model: eagerly if the device supports NCHW, else through XLA.

    Returns (output, how) or (None, reason). TF's classic CPU kernels only support NHWC for some
    ops; with oneDNN (TF >= 2.9 on x86) and with XLA, NCHW convolutions run on CPU too.
    """
    import tensorflow as tf

    try:
        return np.asarray(model(x_nchw, training=False)), "eager"
    except Exception as e_eager:  # noqa: BLE001 - report why, then try XLA
        try:
            f = tf.function(lambda t: model(t, training=False), jit_compile=True)
            return np.asarray(f(x_nchw)), "xla"
        except Exception as e_xla:  # noqa: BLE001
            return None, f"channels_first model not runnable here (eager: {e_eager}; XLA: {e_xla})"


def to_channels_last(model, check: bool = True, size: int = 24, atol: float = 1e-4):
    """Rebuild a channels_first ``model`` as channels_last with the same weights.

    Returns ``(nhwc_model, report)``; ``report`` has ``max_abs_diff`` between the two on a random
    input (NCHW vs NHWC, transposed) and ``reference`` (how the original was run), or ``checked:
    False`` with the reason when the original cannot run on this machine. Raises if they disagree
    by more than ``atol``.
    """
    import keras

    cfg = copy.deepcopy(keras.saving.serialize_keras_object(model))
    _cf_to_cl(cfg)
    _drop_none(cfg)
    new = keras.saving.deserialize_keras_object(cfg)
    old_w = model.get_weights()
    new_w = new.get_weights()
    if len(old_w) != len(new_w):
        raise ValueError(f"rebuilt model has {len(new_w)} weight arrays, original {len(old_w)}")
    new.set_weights([_convert_weight(np.asarray(o), n.shape) for o, n in zip(old_w, new_w)])
    report = {"checked": False}
    if check:
        c = int(model.input_shape[1])
        x = np.random.default_rng(0).random((1, c, size, size + 3), dtype=np.float32)
        ref, how = run_reference(model, x)
        if ref is None:
            report["reason"] = how
        else:
            got = np.asarray(new(np.transpose(x, (0, 2, 3, 1)), training=False))
            diff = float(np.abs(got - np.transpose(ref, (0, 2, 3, 1))).max())
            report = {"checked": True, "reference": how, "max_abs_diff": diff}
            if diff > atol:
                raise ValueError(f"channels_last rebuild disagrees with the original by {diff:.3g} (> {atol})")
    return new, report


__all__ = [
    "as_bfloat16",
    "as_float32",
    "bf16_supported",
    "compute_dtypes",
    "run_reference",
    "to_channels_last",
    "with_dtype_policy",
]
