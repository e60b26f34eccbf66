"""Feature taps on a frozen backbone for perceptual / style losses.

:class:`FeatureExtractor` taps named layers after *or before* their activation. Keras fuses ReLU into
``Conv2D``; for a pre-activation tap (ESRGAN's conv5_4 before ReLU, Wang et al. 2018 sec. 3.3) the
backbone graph is rebuilt with that layer split into a linear view sharing the *same* kernel/bias
variables plus a separate activation layer, so relu(pre) is bit-identical to the fused output. Which
networks exist, their weights and their input preprocessing: :mod:`srkeras.losses.backbones`.
"""

from __future__ import annotations

import keras
from keras import ops

from srkeras.losses.backbones import MODES, backbone_spec, build_backbone, parse_range, preprocess

_ACTIVATION_LAYERS = (
    keras.layers.Activation,
    keras.layers.ReLU,
    keras.layers.LeakyReLU,
    keras.layers.ELU,
    keras.layers.PReLU,
    keras.layers.Softmax,
)


def _fused_activation(layer) -> bool:
    """True for a layer computing ``activation(linear(x))`` in one call (Conv2D(activation="relu"), Dense)."""
    if isinstance(layer, _ACTIVATION_LAYERS):
        return False
    act = getattr(layer, "activation", None)
    return act is not None and act is not keras.activations.linear and getattr(act, "__name__", "") != "linear"


class PreActivation(keras.layers.Layer):
    """Linear view of a layer with a fused activation: ``layer`` minus its activation, same variables.

    Runs ``layer.call`` with the activation temporarily set to identity, so the linear part uses
    exactly the fused layer's ops and variables (no copy; frozen backbones stay shared).
    """

    def __init__(self, layer, **kwargs):
        kwargs.setdefault("name", f"{layer.name}_preact")
        kwargs.setdefault("dtype", layer.dtype_policy)
        super().__init__(trainable=False, **kwargs)
        self.wrapped = layer

    def call(self, inputs):
        act = self.wrapped.activation
        self.wrapped.activation = keras.activations.linear
        try:
            return self.wrapped.call(inputs)
        finally:
            self.wrapped.activation = act

    def compute_output_shape(self, input_shape):
        return self.wrapped.compute_output_shape(input_shape)


def parse_layers(layers, before_activation: bool = False) -> dict[tuple[str, bool], float]:
    """``"name"`` | ``["a", "b"]`` | ``{"a": w}`` -> ``{(name, pre): weight}``.

    A ``":pre"`` / ``":post"`` suffix on a name overrides ``before_activation`` for that layer.
    """
    if isinstance(layers, str):
        layers = {layers: 1.0}
    elif not isinstance(layers, dict):
        layers = {name: 1.0 for name in layers}
    out = {}
    for name, w in layers.items():
        pre = before_activation
        if name.endswith(":pre") or name.endswith(":post"):
            name, suffix = name.rsplit(":", 1)
            pre = suffix == "pre"
        out[(name, bool(pre))] = float(w)
    if not out:
        raise ValueError("no feature layers given")
    return out


def layer_name(backbone: keras.Model, ref: str) -> str:
    """The name of the layer ``ref`` denotes: a layer name, or ``"#N"``, the N-th of ``backbone.layers``.

    Some ``keras.applications`` layers have only automatic names (InceptionV3's stem, ConvNeXt's residual
    sums: ``activation_4``, ``add_12``), numbered per Python session; their position is stable.
    """
    if isinstance(ref, str) and ref.startswith("#"):
        try:
            return backbone.layers[int(ref[1:])].name
        except (ValueError, IndexError):
            raise ValueError(f"{backbone.name} has no layer {ref!r} (it has {len(backbone.layers)} layers)") from None
    return ref


def tap_model(backbone: keras.Model, taps) -> keras.Model:
    """Functional model: backbone input -> features at ``taps`` (list of ``(layer_name, pre)``).

    Post-activation taps are the layers' own outputs. Pre-activation taps rebuild the graph
    (``keras.models.clone_model`` reusing every layer, i.e. sharing all weights) with each such layer
    split into :class:`PreActivation` + ``Activation(layer.activation)``; for an activation layer
    (ResNet/DenseNet/EfficientNet style), the pre-activation feature is simply its input.
    """
    taps = list(taps)
    names = {name for name, _ in taps}
    known = {layer.name for layer in backbone.layers}
    missing = sorted(names - known)
    if missing:
        raise ValueError(f"{backbone.name} has no layer(s) {missing}; e.g. {[layer.name for layer in backbone.layers[1:6]]}")
    pre_names = {name for name, pre in taps if pre}
    for name in pre_names:
        layer = backbone.get_layer(name)
        if not (_fused_activation(layer) or isinstance(layer, _ACTIVATION_LAYERS)):
            raise ValueError(f"layer {name!r} of {backbone.name} has no activation to tap before")
    found: dict[tuple[str, bool], object] = {}

    def call_function(layer, *args, **kwargs):
        if layer.name in pre_names:
            if _fused_activation(layer):
                pre = PreActivation(layer)(*args, **kwargs)
                out = keras.layers.Activation(layer.activation, name=f"{layer.name}_split_activation")(pre)
            else:
                pre = args[0]
                out = layer(*args, **kwargs)
            found[(layer.name, True)] = pre
        else:
            out = layer(*args, **kwargs)
        if layer.name in names:
            found[(layer.name, False)] = out
        return out

    inp = keras.Input(shape=backbone.input.shape[1:], dtype=backbone.input.dtype)
    if pre_names:
        # clone_function returns each layer itself: the rebuilt graph shares every variable.
        keras.models.clone_model(
            backbone, input_tensors=inp, clone_function=lambda layer: layer, call_function=call_function
        )
        outputs = [found[t] for t in taps]
        model = keras.Model(inp, outputs, name=f"{backbone.name}_features")
    else:
        outputs = [backbone.get_layer(name).output for name, _ in taps]
        model = keras.Model(backbone.input, outputs, name=f"{backbone.name}_features")
    model.trainable = False
    return model


class FeatureExtractor:
    """Images in ``input_range`` -> list of backbone features at ``layers`` (frozen, inference mode).

    Args:
      backbone: a :data:`BACKBONES` name (e.g. ``"vgg19"``) or a ``keras.Model`` (then give ``preprocessing``).
      layers: layer name, list of names or ``{name: weight}``; ``name:pre`` / ``name:post`` per layer;
        ``"#N"`` names the N-th of ``backbone.layers`` (layers with only automatic names).
      weights: None, a local file path, or ``"imagenet"`` (Keras cache only; see :func:`resolve_weights`).
      before_activation: default tap point (ESRGAN: True; SRGAN/Johnson: False).
      input_range: value range of the images, e.g. (0, 1) (srkeras convention) or (-1, 1).
      preprocessing: override the backbone's mode (caffe | torch | tf | none).
    """

    def __init__(
        self,
        backbone="vgg19",
        layers="block5_conv4",
        weights="imagenet",
        before_activation: bool = False,
        input_range=(0.0, 1.0),
        preprocessing: str | None = None,
        check_hash: bool = True,
    ):
        self.layer_weights = parse_layers(layers, before_activation)
        if isinstance(backbone, keras.Model):
            self.backbone = backbone
            self.backbone.trainable = False
            mode = preprocessing or "none"
        else:
            self.backbone = build_backbone(backbone, weights, check_hash=check_hash)
            mode = preprocessing or backbone_spec(backbone).mode
        if mode not in MODES:
            raise ValueError(f"unknown preprocessing mode {mode!r}; expected one of {MODES}")
        self.mode = mode
        self.input_range = parse_range(input_range)
        # "#N" (a layer by position, see layer_name) becomes the layer's name in this session.
        self.layer_weights = {(layer_name(self.backbone, n), pre): w for (n, pre), w in self.layer_weights.items()}
        self.taps = list(self.layer_weights)
        self.model = tap_model(self.backbone, self.taps)

    def __call__(self, images) -> list:
        x = ops.convert_to_tensor(images)
        if len(x.shape) == 3:
            x = x[None]
        if x.shape[-1] == 1:  # grey / Y images: replicate to RGB
            x = ops.repeat(x, 3, axis=-1)
        x = preprocess(x, self.mode, self.input_range)
        out = self.model(x, training=False)
        return list(out) if isinstance(out, (list, tuple)) else [out]
