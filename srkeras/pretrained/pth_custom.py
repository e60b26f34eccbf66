"""Converters of the PyTorch architectures that need a loader of their own (:mod:`srkeras.pretrained.pth`
dispatches to :data:`CUSTOM`): SPAN (Wan et al. 2024), whose ``Conv3XC`` layers are fused as the
original's eval forward does, and Real-CUGAN (UpCunet 2x/3x/4x), whose modules map onto the Keras
layers of :mod:`srkeras.models.realcugan` in order."""

from __future__ import annotations

import numpy as np

from srkeras.pretrained.convert import assign, conv_arrays
from srkeras.pretrained.errors import ShapeMismatchError, UnknownArchitectureError


def bounded(source, config: dict, **limits) -> None:
    """Hyper-parameters read from shapes within plausible bounds, before anything is built."""
    for key, most in limits.items():
        value = config[key]
        if not 1 <= (max(value) if isinstance(value, list) else value) <= most:
            raise UnknownArchitectureError(f"{source}: {key}={value} is implausible (at most {most} expected)")


def fuse_conv3xc(sd, prefix: str, source) -> tuple[np.ndarray, np.ndarray]:
    """SPAN's ``Conv3XC.update_params`` in numpy: the 3x3 conv (OIHW weight, bias) equal to
    ``conv.2(conv.1(conv.0(x)))`` (1x1, 3x3, 1x1, all with biases) plus the 1x1 ``sk(x)``, as the
    original's eval forward recomputes ``eval_conv`` before every call."""
    w1, w2, w3, sk = (np.asarray(sd[f"{prefix}.{k}.weight"], np.float64) for k in ("conv.0", "conv.1", "conv.2", "sk"))
    b1, b2, b3, skb = (np.asarray(sd[f"{prefix}.{k}.bias"], np.float64) for k in ("conv.0", "conv.1", "conv.2", "sk"))
    mid_in, c_in = w1.shape[:2]
    mid_out = w2.shape[0]
    c_out = w3.shape[0]
    want = {"conv.0": (mid_in, c_in, 1, 1), "conv.1": (mid_out, mid_in, 3, 3), "conv.2": (c_out, mid_out, 1, 1),
            "sk": (c_out, c_in, 1, 1)}  # fmt: skip
    for k, shape in want.items():
        if tuple(np.shape(sd[f"{prefix}.{k}.weight"])) != shape or np.shape(sd[f"{prefix}.{k}.bias"]) != shape[:1]:
            raise ShapeMismatchError(f"{source}: {prefix}.{k} has weight {np.shape(sd[f'{prefix}.{k}.weight'])}, "
                                     f"bias {np.shape(sd[f'{prefix}.{k}.bias'])}; Conv3XC needs {shape}")  # fmt: skip
    # one contraction at a time (a three-operand einsum may loop over all four channel indices)
    w = np.einsum("ob,bihw->oihw", w3[:, :, 0, 0], np.einsum("bahw,ai->bihw", w2, w1[:, :, 0, 0]))
    w[:, :, 1, 1] += sk[:, :, 0, 0]
    b = w3[:, :, 0, 0] @ (w2.sum((2, 3)) @ b1 + b2) + b3 + skb
    return w.astype(np.float32), b.astype(np.float32)


#: SPAN's Conv3XC modules, in the order of the Keras convs (:data:`srkeras.pretrained.ncnn_span.SPAN_CONVS`).
_SPAN_CONV3XC = ["conv_1", *[f"block_{b}.c{i}_r" for b in range(1, 7) for i in (1, 2, 3)], "conv_2"]


def _span(found, source, sd):
    """SPAN: Keras layer name -> (OIHW weight, bias, shuffle); every Conv3XC fused."""
    from srkeras.models.span import build_span
    from srkeras.pretrained.ncnn_span import SPAN_CONVS

    c = found.config
    bounded(source, c, feature_channels=512, in_channels=16, out_channels=16)
    config = {k: c[k] for k in ("feature_channels", "in_channels", "out_channels", "norm")}
    arrays, used = {}, set()
    for name, prefix in zip(SPAN_CONVS, _SPAN_CONV3XC):
        keys = [f"{prefix}.{k}.{t}" for k in ("sk", "conv.0", "conv.1", "conv.2") for t in ("weight", "bias")]
        missing = [k for k in keys if k not in sd]
        if missing:
            raise UnknownArchitectureError(f"{source}: missing key(s) {missing[:4]} of SPAN's {prefix}")
        arrays[name] = (*fuse_conv3xc(sd, prefix, source), 0)
        used.update(keys + [f"{prefix}.eval_conv.weight", f"{prefix}.eval_conv.bias"])
    for name, prefix, shuffle in (("conv_cat", "conv_cat", 0), ("upsampler", "upsampler.0", found.scale)):
        keys = [f"{prefix}.weight", f"{prefix}.bias"]
        if any(k not in sd for k in keys):
            raise UnknownArchitectureError(f"{source}: missing key(s) {[k for k in keys if k not in sd]}")
        arrays[name] = (sd[keys[0]], sd[keys[1]], shuffle)
        used.update(keys)

    def load(model):
        for name, (w, b, shuffle) in arrays.items():
            assign(model, name, conv_arrays(w, b, shuffle), source, name)
        return used | {"no_norm"}

    return lambda: build_span(found.scale, **config), config, load


def _realcugan(found, source, sd):
    """Real-CUGAN: the weighted modules in upcunet_v3.py order onto the Keras layers (ncnn's order)."""
    from srkeras.models.realcugan import build_realcugan, torch_module_names, weighted_layer_names

    c = found.config
    if c["in_channels"] != c["out_channels"] or not 1 <= c["in_channels"] <= 16:
        raise UnknownArchitectureError(f"{source}: Real-CUGAN with {c['in_channels']} input and {c['out_channels']} "
                                       "output channels (the Keras UpCunet takes as many outputs as inputs)")  # fmt: skip
    config = {"channels": c["in_channels"], "pro": c["pro"]}
    pairs = list(zip(weighted_layer_names(found.scale), torch_module_names(found.scale)))
    missing = [f"{p}.{t}" for _n, p in pairs for t in ("weight", "bias") if f"{p}.{t}" not in sd]
    if missing:
        raise UnknownArchitectureError(f"{source}: missing key(s) {missing[:4]} of Real-CUGAN x{found.scale}")

    def load(model):
        used = {"pro"}
        for name, prefix in pairs:
            w, b = (np.asarray(sd[f"{prefix}.{t}"], np.float32) for t in ("weight", "bias"))
            kind = type(model.get_layer(name)).__name__
            if kind == "Dense":  # the SE blocks' 1x1 convs on the pooled vector
                arrays = [w.reshape(w.shape[:2]).T if w.ndim == 4 and w.shape[2:] == (1, 1) else w, b]
            elif kind == "Conv2DTranspose":  # ConvTranspose2d (in, out, kh, kw) -> Keras (kh, kw, out, in)
                arrays = [np.transpose(w, (2, 3, 1, 0)) if w.ndim == 4 else w, b]
            else:
                arrays = conv_arrays(w, b, 2 if name == "final" else 0) if w.ndim == 4 else [w, b]
            assign(model, name, arrays, source, prefix)
            used.update((f"{prefix}.weight", f"{prefix}.bias"))
        return used

    return lambda: build_realcugan(found.scale, **config), config, load


#: Architectures converted by a loader of their own: ``(found, source, sd) -> (build, config, load)``,
#: ``load(model)`` returning the checkpoint keys it used (every key and shape is checked).
CUSTOM = {"span": _span, "realcugan": _realcugan}
