"""Export a generator as ``.keras``, a TensorFlow SavedModel, or TFLite.

The SavedModel has a ``serving_default`` signature on ``(N, H, W, C)`` float32 with dynamic N, H
and W (input ``lr`` in [0, 1] -> output ``sr``) and a ``scale`` constant; it is a traced graph, so it
loads with ``tf.saved_model.load`` alone, without srkeras or its custom layers (the tests check this
in a fresh interpreter where ``import srkeras`` fails). A ``.keras`` file stores layer configs, not
code, so :func:`export_keras` first rewrites the model with built-in Keras layers only
(:func:`builtin_layers_only`): it then loads with plain ``keras.saving.load_model``. A model with
a layer that has no exact built-in equivalent (BicubicUpsample: MATLAB's symmetric borders on
dynamic shapes) is saved as is, and loading it needs srkeras; the SavedModel never does.
TFLite: converted from the same concrete function with dynamic H and W (call
``interpreter.resize_tensor_input`` before ``allocate_tensors``).
"""

from __future__ import annotations

from pathlib import Path

from srkeras.files import write_atomically
from srkeras.inference.served import ServedModel, serve
from srkeras.inference.sidecar import ModelSidecar

FORMATS = ("keras", "savedmodel", "tflite")


def _serving_module(served: ServedModel):
    import tensorflow as tf

    model, c, s = served.model, served.channels, served.scale
    p = served.pre_pad  # the original runtime's reflect padding (Real-ESRGAN: 10 LR px), in the graph

    class Serving(tf.Module):
        def __init__(self):
            super().__init__()
            self.model = model
            self.scale = tf.Variable(s, dtype=tf.int32, trainable=False, name="scale")
            self.pre_pad = tf.Variable(p, dtype=tf.int32, trainable=False, name="pre_pad")

        @tf.function(input_signature=[tf.TensorSpec([None, None, None, c], tf.float32, name="lr")])
        def serve(self, lr):
            if p == 0:
                return {"sr": tf.cast(self.model(lr, training=False), tf.float32)}
            sr = tf.cast(self.model(tf.pad(lr, [[0, 0], [p, p], [p, p], [0, 0]], mode="REFLECT"), training=False), tf.float32)
            return {"sr": sr[:, p * s : -p * s, p * s : -p * s, :]}

    return Serving()


def _builtin_config(obj_config, where: str):
    """``obj_config`` (a layer config) with srkeras initializers replaced by their built-in twins."""
    import keras

    from srkeras.models.layers import ScaledHeNormal

    out = {}
    for k, v in obj_config.items():
        if isinstance(v, dict) and "module" in v and not str(v["module"]).startswith("keras"):
            obj = keras.saving.deserialize_keras_object(v)
            if not isinstance(obj, ScaledHeNormal):
                raise ValueError(f"{where}: {k} is a custom {type(obj).__name__} with no built-in Keras equivalent")
            # He normal x factor is VarianceScaling(2 factor^2, fan_in, untruncated normal) exactly.
            v = keras.initializers.serialize(
                keras.initializers.VarianceScaling(obj.scale, obj.mode, obj.distribution, seed=obj.seed)
            )
        out[k] = v
    return out


def builtin_layers_only(model):
    """A copy of ``model`` built from Keras's own layers, with the same weights and outputs.

    PixelShuffle(r) (ESPCN eq. 4) becomes a frozen ``Conv2DTranspose(C, r, strides=r)`` whose
    kernel is depth_to_space's permutation, ``K[i, j, c, (i r + j) C + c] = 1``: each output is one
    input times 1 plus zeros, so the result is bit-exact (at r^4 C^2 extra multiply-adds per input
    pixel, ~15% of SRResNet). srkeras initializers become the equivalent built-in VarianceScaling.
    Raises ValueError naming the layer when one has no exact built-in equivalent.
    """
    import keras
    import numpy as np

    from srkeras.models.graph import rebuild
    from srkeras.models.layers import PixelShuffle

    shuffles = {}

    def replace(layer):
        if isinstance(layer, PixelShuffle):
            r = layer.scale
            c = int(layer.input.shape[-1]) // (r * r)
            shuffles[layer.name] = (r, c)
            return keras.layers.Conv2DTranspose(c, r, strides=r, use_bias=False, trainable=False, name=layer.name)
        if not type(layer).__module__.startswith("keras"):
            raise ValueError(f"layer {layer.name!r} ({type(layer).__name__}) has no exact built-in Keras equivalent")
        return None

    def builtin_config(layer):
        return _builtin_config(layer.get_config(), f"layer {layer.name!r}")

    new = rebuild(model, config_of=builtin_config, weights=False, layer_of=replace)
    for old_layer in model.layers:
        layer = new.get_layer(old_layer.name)
        if old_layer.name in shuffles:
            r, c = shuffles[old_layer.name]
            k = np.zeros((r, r, c, r * r * c), np.float32)
            for i in range(r):
                for j in range(r):
                    k[i, j, np.arange(c), (i * r + j) * c + np.arange(c)] = 1.0
            layer.set_weights([k])
        else:
            layer.set_weights(old_layer.get_weights())
    return new


def export_keras(model, path, portable: bool = True) -> Path:
    """Save ``model`` (a ServedModel or keras.Model) as ``.keras``; ``portable``: rewritten with
    built-in layers when every layer has an exact built-in equivalent (then srkeras is not needed to
    load it), else as is, with a warning saying why. Its pre-padding and measured receptive fields
    travel in the sidecar (:mod:`srkeras.inference.sidecar`) when it has any."""
    import warnings

    import numpy as np

    served = serve(model)
    path, model = Path(path), served.model
    if path.suffix != ".keras":
        path = path / "model.keras"
    path.parent.mkdir(parents=True, exist_ok=True)
    if portable:
        try:
            rewritten = builtin_layers_only(model)
        except ValueError as e:
            warnings.warn(f"{e}: {path} is saved with srkeras layers and needs srkeras to load; "
                          "the SavedModel export does not", stacklevel=2)  # fmt: skip
        else:
            x = np.random.default_rng(0).random((1, 13, 11, served.channels), dtype=np.float32)
            want, got = np.asarray(model(x, training=False)), np.asarray(rewritten(x, training=False))
            if np.abs(got - want).max() > 1e-5 * (1 + np.abs(want).max()):  # a guard; exact in practice
                raise RuntimeError(f"built-in rewrite differs from the model by {np.abs(got - want).max():.3g}")
            model = rewritten
    written = write_atomically(path, lambda tmp: model.save(str(tmp)))
    facts = served.facts
    if facts.pre_pad or isinstance(facts.receptive_field, int):  # else a plain load finds out as much
        ModelSidecar.recording(facts).write(written)
    return written


def export_savedmodel(model, directory) -> Path:
    import tensorflow as tf

    directory = Path(directory)
    directory.parent.mkdir(parents=True, exist_ok=True)
    module = _serving_module(serve(model))
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
    module = _serving_module(serve(model))
    frozen = convert_variables_to_constants_v2(module.serve.get_concrete_function())
    conv = tf.lite.TFLiteConverter.from_concrete_functions([frozen])
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS, tf.lite.OpsSet.SELECT_TF_OPS]
    data = conv.convert()
    return write_atomically(path, lambda tmp: Path(tmp).write_bytes(data))


EXPORTED_NAMES = {"keras": "model.keras", "savedmodel": "saved_model", "tflite": "model.tflite"}


def export_path(out_dir, fmt: str) -> Path:
    """Where :func:`export` writes format ``fmt`` in ``out_dir``."""
    if fmt not in EXPORTED_NAMES:
        raise ValueError(f"unknown export format {fmt!r}; choose from {FORMATS}")
    return Path(out_dir) / EXPORTED_NAMES[fmt]


def export(model, out_dir, fmt: str = "savedmodel") -> Path:
    """Write ``model`` (a ServedModel or keras.Model) to ``out_dir`` in format ``fmt`` (keras | savedmodel | tflite)."""
    write = {"keras": export_keras, "savedmodel": export_savedmodel, "tflite": export_tflite}
    return write[fmt](model, export_path(out_dir, fmt))
