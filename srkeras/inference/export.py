"""Export a generator as ``.keras``, a TensorFlow SavedModel, or TFLite.

The SavedModel has a ``serving_default`` signature on ``(N, H, W, C)`` float32 with dynamic N, H
and W (input ``lr`` in [0, 1] -> output ``sr``) and a ``scale`` constant; it is a traced graph, so it
loads with ``tf.saved_model.load`` alone, without srkeras or its custom layers (the tests check this
in a fresh interpreter where ``import srkeras`` fails). A ``.keras`` file stores the layer configs,
so models with srkeras layers (PixelShuffle, BicubicUpsample) need srkeras to load it.
TFLite: converted from the same concrete function with dynamic H and W (call
``interpreter.resize_tensor_input`` before ``allocate_tensors``).
"""

from __future__ import annotations

from pathlib import Path

FORMATS = ("keras", "savedmodel", "tflite")


def _serving_module(model):
    import tensorflow as tf

    from srkeras.inference.tiling import model_channels, model_scale

    c = model_channels(model)
    s = model_scale(model)

    class Serving(tf.Module):
        def __init__(self):
            super().__init__()
            self.model = model
            self.scale = tf.Variable(s, dtype=tf.int32, trainable=False, name="scale")

        @tf.function(input_signature=[tf.TensorSpec([None, None, None, c], tf.float32, name="lr")])
        def serve(self, lr):
            return {"sr": tf.cast(self.model(lr, training=False), tf.float32)}

    return Serving()


def export_keras(model, path) -> Path:
    path = Path(path)
    if path.suffix != ".keras":
        path = path / "model.keras"
    path.parent.mkdir(parents=True, exist_ok=True)
    model.save(str(path))
    return path


def export_savedmodel(model, directory) -> Path:
    import tensorflow as tf

    directory = Path(directory)
    directory.parent.mkdir(parents=True, exist_ok=True)
    module = _serving_module(model)
    tf.saved_model.save(module, str(directory), signatures={"serving_default": module.serve})
    return directory


def export_tflite(model, path) -> Path:
    """TFLite flatbuffer with dynamic H, W. Variables are frozen to constants first: converting the
    Keras 3 graph directly leaves READ_VARIABLE ops that TFLite runs on uninitialised memory."""
    import tensorflow as tf
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

    path = Path(path)
    if path.suffix != ".tflite":
        path = path / "model.tflite"
    path.parent.mkdir(parents=True, exist_ok=True)
    module = _serving_module(model)
    frozen = convert_variables_to_constants_v2(module.serve.get_concrete_function())
    conv = tf.lite.TFLiteConverter.from_concrete_functions([frozen])
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS, tf.lite.OpsSet.SELECT_TF_OPS]
    path.write_bytes(conv.convert())
    return path


def export(model, out_dir, fmt: str = "savedmodel") -> Path:
    """Write ``model`` to ``out_dir`` in format ``fmt`` (keras | savedmodel | tflite)."""
    out_dir = Path(out_dir)
    if fmt == "keras":
        return export_keras(model, out_dir / "model.keras")
    if fmt == "savedmodel":
        return export_savedmodel(model, out_dir / "saved_model")
    if fmt == "tflite":
        return export_tflite(model, out_dir / "model.tflite")
    raise ValueError(f"unknown export format {fmt!r}; choose from {FORMATS}")
