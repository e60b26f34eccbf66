"""LPIPS (Zhang et al. 2018, v0.1) and DISTS (Ding et al. 2020) in ``keras.ops``, bit-for-bit the
networks of the PyTorch originals (``lpips`` 0.1.4, ``DISTS_pytorch`` 0.1) on their torchvision
ImageNet backbones, batched, differentiable (LPIPS as a training loss), NHWC.

* Backbones: torchvision AlexNet / VGG16 ``features`` with PyTorch's explicit zero padding and
  floor-mode pooling, weights from the installed ``lpips_alex`` / ``vgg16_imagenet`` assets (HWIO).
* LPIPS: input in [-1, 1], ScalingLayer (shift -.030 -.088 -.188, scale .458 .448 .450), the five
  ReLU taps unit-normalised over channels (eps 1e-10), squared differences weighted by the v0.1
  linear layers, spatial means summed. Whole image, no resize.
* DISTS: input in [0, 1], ImageNet mean/std, VGG16 with max pooling replaced by L2 pooling (3x3
  Hann window, stride 2, padding 1); structure/texture terms over the image and the five stages,
  weighted by the package's alpha/beta. Whole image (the original's optional resize to 256 is off
  by default, as here).
"""

from __future__ import annotations

import numpy as np

from srkeras.metrics.inputs import as_uint8_scale, check_min_size, check_pair

LPIPS_SHIFT = (-0.030, -0.088, -0.188)
LPIPS_SCALE = (0.458, 0.448, 0.450)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
VGG16_STAGES = (2, 2, 3, 3, 3)  # convs per stage; taps relu1_2 .. relu5_3
DISTS_CHANNELS = (3, 64, 128, 256, 512, 512)
NETS = {"alex": "lpips_alex", "vgg": "lpips_vgg"}
MIN_SIZE = {"alex": 31, "vgg": 16, "dists": 2}  # smallest side each network accepts (pooling)

_cache: dict = {}


def weights(asset: str) -> dict:
    """The installed asset's arrays as float32 tensors (cached per file and modification time)."""
    from keras import ops

    from srkeras.pretrained.metric_assets import asset_path, get, load

    paths = [asset_path(n) for n in (asset, *get(asset).requires)]
    key = (asset, tuple((str(p), p.stat().st_mtime_ns if p.is_file() else None) for p in paths))
    if key not in _cache:
        _cache[key] = {k: ops.convert_to_tensor(np.asarray(v, np.float32)) for k, v in load(asset).items()}
    return _cache[key]


def _conv_relu(x, w: dict, i: int, stride: int = 1, pad: int = 1):
    from keras import ops

    if pad:
        x = ops.pad(x, [[0, 0], [pad, pad], [pad, pad], [0, 0]])
    return ops.relu(ops.conv(x, w[f"conv{i}/kernel"], strides=stride, padding="valid") + w[f"conv{i}/bias"])


def alexnet_taps(x, w: dict) -> list:
    """torchvision AlexNet ``features``: the outputs of its five ReLUs."""
    from keras import ops

    t1 = _conv_relu(x, w, 0, stride=4, pad=2)
    t2 = _conv_relu(ops.max_pool(t1, 3, 2, padding="valid"), w, 1, pad=2)
    t3 = _conv_relu(ops.max_pool(t2, 3, 2, padding="valid"), w, 2)
    t4 = _conv_relu(t3, w, 3)
    return [t1, t2, t3, t4, _conv_relu(t4, w, 4)]


def l2_pool(x):
    """DISTS ``L2pooling``: sqrt(depthwise 3x3 Hann (0.5 1 0.5)^2 / 4 of x^2, stride 2, pad 1 + 1e-12)."""
    from keras import ops

    a = np.hanning(5)[1:-1]
    g = np.outer(a, a)
    g = (g / g.sum()).astype(np.float32)
    k = ops.convert_to_tensor(np.tile(g[:, :, None, None], (1, 1, x.shape[-1], 1)))
    y = ops.depthwise_conv(ops.pad(x * x, [[0, 0], [1, 1], [1, 1], [0, 0]]), k, strides=2, padding="valid")
    return ops.sqrt(y + 1e-12)


def vgg16_taps(x, w: dict, pool: str = "max", depth: int = 5) -> list:
    """torchvision VGG16 ``features``: relu1_2, relu2_2, relu3_3, relu4_3, relu5_3 (first ``depth``),
    with max pooling (LPIPS, perceptual losses) or DISTS's L2 pooling between the stages."""
    from keras import ops

    taps, i = [], 0
    for stage, n in enumerate(VGG16_STAGES[:depth]):
        if stage:
            x = ops.max_pool(x, 2, 2, padding="valid") if pool == "max" else l2_pool(x)
        for _ in range(n):
            x = _conv_relu(x, w, i)
            i += 1
        taps.append(x)
    return taps


def _unit(f):
    from keras import ops

    return f / (ops.sqrt(ops.sum(f * f, axis=-1, keepdims=True)) + 1e-10)


def lpips_batch(y_true, y_pred, net: str = "alex"):
    """Per-image LPIPS v0.1 of two (N, H, W, 3) batches in [0, 1], as an (N,) tensor."""
    from keras import ops

    if net not in NETS:
        raise ValueError(f"net must be one of {', '.join(NETS)}, got {net!r}")
    w = weights(NETS[net])
    shift = ops.convert_to_tensor(np.array(LPIPS_SHIFT, np.float32))
    scale = ops.convert_to_tensor(np.array(LPIPS_SCALE, np.float32))

    def feats(x):
        x = (ops.cast(x, "float32") * 2.0 - 1.0 - shift) / scale
        return alexnet_taps(x, w) if net == "alex" else vgg16_taps(x, w)

    total = 0.0
    for i, (a, b) in enumerate(zip(feats(y_true), feats(y_pred))):
        d = ops.square(_unit(a) - _unit(b))
        total = total + ops.mean(ops.matmul(d, ops.reshape(w[f"lin{i}"], (-1, 1))), axis=(1, 2, 3))
    return total


def dists_batch(y_true, y_pred):
    """Per-image DISTS of two (N, H, W, 3) batches in [0, 1], as an (N,) tensor."""
    from keras import ops

    w = weights("dists")
    mean = ops.convert_to_tensor(np.array(IMAGENET_MEAN, np.float32))
    std = ops.convert_to_tensor(np.array(IMAGENET_STD, np.float32))

    def feats(x):
        x = ops.cast(x, "float32")
        return [x, *vgg16_taps((x - mean) / std, w, pool="l2")]

    wsum = ops.sum(w["alpha"]) + ops.sum(w["beta"])
    bounds = np.cumsum((0,) + DISTS_CHANNELS)
    d1 = d2 = 0.0
    for k, (fx, fy) in enumerate(zip(feats(y_true), feats(y_pred))):
        alpha = w["alpha"][bounds[k]:bounds[k + 1]] / wsum
        beta = w["beta"][bounds[k]:bounds[k + 1]] / wsum
        xm, ym = ops.mean(fx, axis=(1, 2)), ops.mean(fy, axis=(1, 2))
        s1 = (2 * xm * ym + 1e-6) / (xm * xm + ym * ym + 1e-6)
        xv = ops.mean(ops.square(fx - xm[:, None, None]), axis=(1, 2))
        yv = ops.mean(ops.square(fy - ym[:, None, None]), axis=(1, 2))
        cov = ops.mean(fx * fy, axis=(1, 2)) - xm * ym
        s2 = (2 * cov + 1e-6) / (xv + yv + 1e-6)
        d1 = d1 + ops.sum(alpha * s1, axis=-1)
        d2 = d2 + ops.sum(beta * s2, axis=-1)
    return 1.0 - (d1 + d2)


def _pair(img, ref, name, metric: str, min_side: int):
    what = name or "img"
    check_pair(img, ref, what)
    a = as_uint8_scale(img, what, colour=True)
    b = as_uint8_scale(ref, f"{what} (reference)", colour=True)
    check_min_size(a, (min_side, min_side), what, metric, "the network's pooling")
    return (a / 255.0).astype(np.float32)[None], (b / 255.0).astype(np.float32)[None]


def lpips(img, ref, net: str = "alex", name: str | None = None) -> float:
    """LPIPS v0.1 between HxWx3 uint8 ``img`` and ``ref`` (``lpips.LPIPS(net=...)`` on
    ``lpips.im2tensor`` of both); ``name`` (e.g. the file name) is used in error messages."""
    if net not in NETS:
        raise ValueError(f"net must be one of {', '.join(NETS)}, got {net!r}")
    a, b = _pair(img, ref, name, f"LPIPS-{net}", MIN_SIZE[net])
    return float(np.asarray(lpips_batch(b, a, net=net))[0])


def dists(img, ref, name: str | None = None) -> float:
    """DISTS between HxWx3 uint8 ``img`` and ``ref`` (``DISTS()(ref, dist)`` on ``ToTensor`` of
    both, no resize)."""
    a, b = _pair(img, ref, name, "DISTS", MIN_SIZE["dists"])
    return float(np.asarray(dists_batch(b, a))[0])


def _keras_metric(name: str, fn, **fixed):
    import keras

    @keras.saving.register_keras_serializable(package="srkeras")
    class _Metric(keras.metrics.Mean):
        def __init__(self, name=name, **kwargs):
            super().__init__(name=name, **kwargs)

        def update_state(self, y_true, y_pred, sample_weight=None):
            from keras import ops

            return super().update_state(fn(y_true, ops.clip(y_pred, 0.0, 1.0), **fixed), sample_weight)

    _Metric.__name__ = _Metric.__qualname__ = name.upper()
    return _Metric


_classes: dict = {}


def keras_metric_class(attr: str):
    """The Keras metric class LPIPS (alex) or DISTS (lower is better), built on first use."""
    if attr not in _classes:
        _classes[attr] = _keras_metric("lpips", lpips_batch, net="alex") if attr == "LPIPS" else \
            _keras_metric("dists", dists_batch)
    return _classes[attr]
