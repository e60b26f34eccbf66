"""The catalogue of frozen ``keras.applications`` backbones for perceptual / style losses: weights, preprocessing.

* :data:`BACKBONES` names each supported network with its ``keras.applications`` constructor, its
  input preprocessing mode and the exact ImageNet weights file (``include_top=False``) that
  ``keras.applications`` would download (file name, URL, hash: read from keras/src/applications).
* :func:`preprocess` reproduces ``keras.applications.<net>.preprocess_input`` in ``keras.ops``
  (differentiable) from images in ``input_range`` (default [0, 1]).
* :func:`build_backbone` builds a frozen, ``include_top=False``, dynamic-size backbone; weights come
  from ``None`` (random), a local file, or ``"imagenet"`` from the Keras cache only. A missing cache
  file fails fast, naming the file, its URL and where to put it; nothing is ever downloaded.

Feature taps on these networks (layers before or after activation) live in
:mod:`srkeras.losses.features`.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import keras
from keras import ops

_KA = "https://storage.googleapis.com/tensorflow/keras-applications/"

# ImageNet means / stds used by keras.applications.imagenet_utils.
CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)
TORCH_MEAN = (0.485, 0.456, 0.406)
TORCH_STD = (0.229, 0.224, 0.225)
MODES = ("caffe", "torch", "tf", "none")


@dataclass(frozen=True)
class BackboneSpec:
    """A ``keras.applications`` network and its ImageNet ``include_top=False`` weights file."""

    constructor: str  # attribute of keras.applications
    module: str  # keras.applications.<module>.preprocess_input is the reference preprocessing
    mode: str  # caffe | torch | tf | none (network contains its own preprocessing layers)
    file_name: str  # name in ~/.keras/models/, as keras.applications downloads it
    url: str
    file_hash: str  # md5 (32 hex) or sha256 (64 hex), as in keras.applications
    min_size: int = 32  # smallest input side the architecture accepts


def _spec(constructor, module, mode, file_name, subdir, file_hash, min_size=32):
    return BackboneSpec(constructor, module, mode, file_name, f"{_KA}{subdir}/{file_name}", file_hash, min_size)


_TF = "_weights_tf_dim_ordering_tf_kernels_notop.h5"
BACKBONES: dict[str, BackboneSpec] = {
    "vgg16": _spec("VGG16", "vgg16", "caffe", "vgg16" + _TF, "vgg16", "6d6bbae143d832006294945121d1f1fc"),
    "vgg19": _spec("VGG19", "vgg19", "caffe", "vgg19" + _TF, "vgg19", "253f8cb515780f3b799900260a226db6"),
    "resnet50": _spec("ResNet50", "resnet", "caffe", "resnet50" + _TF, "resnet", "4d473c1dd8becc155b73f8504c6f6626"),
    "resnet152": _spec("ResNet152", "resnet", "caffe", "resnet152" + _TF, "resnet", "ee4c566cf9a93f14d82f913c2dc6dd0c"),
    "resnet50v2": _spec(
        "ResNet50V2", "resnet_v2", "tf", "resnet50v2" + _TF, "resnet", "fac2f116257151a9d068a22e544a4917"
    ),
    "resnet152v2": _spec(
        "ResNet152V2", "resnet_v2", "tf", "resnet152v2" + _TF, "resnet", "ed17cf2e0169df9d443503ef94b23b33"
    ),
    "densenet121": _spec(
        "DenseNet121", "densenet", "torch", "densenet121" + _TF, "densenet", "30ee3e1110167f948a6b9946edeeb738"
    ),
    "densenet201": _spec(
        "DenseNet201", "densenet", "torch", "densenet201" + _TF, "densenet", "c13680b51ded0fb44dff2d8f86ac8bb1"
    ),
    "inception_v3": _spec(
        "InceptionV3", "inception_v3", "tf", "inception_v3" + _TF, "inception_v3",
        "bcbd6486424b2319ff4ef7d526e38f63", min_size=75,
    ),
    "convnext_tiny": _spec(
        "ConvNeXtTiny", "convnext", "none", "convnext_tiny_notop.h5", "convnext",
        "d547c096cabd03329d7be5562c5e14798aa39ed24b474157cef5e85ab9e49ef1",
    ),
    "convnext_small": _spec(
        "ConvNeXtSmall", "convnext", "none", "convnext_small_notop.h5", "convnext",
        "6fc8009faa2f00c1c1dfce59feea9b0745eb260a7dd11bee65c8e20843da6eab",
    ),
    "efficientnetv2_b0": _spec(
        "EfficientNetV2B0", "efficientnet_v2", "none", "efficientnetv2-b0_notop.h5", "efficientnet_v2",
        "893217f2bb855e2983157299931e43ff",
    ),
    "efficientnetv2_s": _spec(
        "EfficientNetV2S", "efficientnet_v2", "none", "efficientnetv2-s_notop.h5", "efficientnet_v2",
        "af0682fb74e8c54910f2d4393339c070",
    ),
    # torchvision's VGG16 (ImageNet, as LPIPS-vgg / DISTS use it) with torch preprocessing: the
    # vgg16_imagenet metric asset (``python -m pipelines.pretrained fetch vgg16_imagenet``).
    "vgg16_torch": BackboneSpec("VGG16", "vgg16", "torch", "vgg16_imagenet.npz",
                                "python -m pipelines.pretrained fetch vgg16_imagenet", ""),
}
_ALIASES = {"inceptionv3": "inception_v3", "convnexttiny": "convnext_tiny", "efficientnetv2s": "efficientnetv2_s"}


class WeightsNotFoundError(FileNotFoundError):
    """Pretrained backbone weights are not available locally (no download is attempted)."""


def backbone_spec(name: str) -> BackboneSpec:
    key = name.lower().replace("-", "_")
    key = _ALIASES.get(key.replace("_", ""), _ALIASES.get(key, key))
    if key not in BACKBONES:
        raise ValueError(f"unknown backbone {name!r}; known: {', '.join(BACKBONES)}")
    return BACKBONES[key]


# --------------------------------------------------------------------------- preprocessing


def parse_range(input_range) -> tuple[float, float]:
    lo, hi = (float(v) for v in input_range)
    if not hi > lo:
        raise ValueError(f"input_range must be (low, high) with high > low, got {input_range!r}")
    return lo, hi


def preprocess(x, mode: str, input_range=(0.0, 1.0)):
    """``keras.applications`` preprocessing in ``keras.ops`` (differentiable), NHWC RGB input.

    ``x`` in ``input_range`` (e.g. (0, 1) or (-1, 1)) is first mapped linearly to 0..255, then:
    caffe: RGB->BGR minus the ImageNet BGR mean; torch: /255, minus mean, over std (RGB);
    tf: /127.5 - 1; none: identity on 0..255 (ConvNeXt / EfficientNetV2 contain their own layers).
    """
    if mode not in MODES:
        raise ValueError(f"unknown preprocessing mode {mode!r}; expected one of {MODES}")
    lo, hi = parse_range(input_range)
    x = ops.cast(x, "float32")
    if (lo, hi) != (0.0, 255.0):
        x = (x - lo) * (255.0 / (hi - lo)) if lo else x * (255.0 / hi)
    if mode == "caffe":
        return ops.flip(x, axis=-1) - ops.convert_to_tensor(CAFFE_MEAN_BGR, "float32")
    if mode == "torch":
        mean = ops.convert_to_tensor(TORCH_MEAN, "float32")
        std = ops.convert_to_tensor(TORCH_STD, "float32")
        return (x / 255.0 - mean) / std
    if mode == "tf":
        return x / 127.5 - 1.0
    return x


# --------------------------------------------------------------------------- weights


def keras_cache_dirs() -> list[Path]:
    """Directories ``keras.utils.get_file`` uses for ``cache_subdir="models"``, read at call time."""
    if os.environ.get("KERAS_HOME"):
        # Honour the variable at call time (keras reads it once at import).
        return [Path(os.environ["KERAS_HOME"]).expanduser() / "models"]
    from keras.src.backend.config import keras_home  # the import-time value keras itself uses

    dirs = [Path(keras_home()).expanduser() / "models", Path.home() / ".keras" / "models"]
    # get_file falls back to /tmp/.keras when the cache dir is not writable.
    dirs.append(Path("/tmp/.keras/models"))
    return list(dict.fromkeys(dirs))


def _file_digest(path: Path, algorithm: str) -> str:
    h = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def resolve_weights(spec: BackboneSpec, weights, check_hash: bool = True):
    """Path (or None) of the weights to load; never downloads.

    ``weights``: None (random init), a local file path, or ``"imagenet"`` looked up in the Keras cache.
    """
    if weights is None:
        return None
    if isinstance(weights, (str, os.PathLike)) and str(weights) != "imagenet":
        path = Path(weights).expanduser()
        if not path.is_file():
            raise WeightsNotFoundError(f"{spec.constructor} weights file not found: {path}")
        return path
    if weights != "imagenet":
        raise ValueError(f"weights must be None, 'imagenet' or a file path, got {weights!r}")
    dirs = keras_cache_dirs()
    for d in dirs:
        path = d / spec.file_name
        if path.is_file():
            if check_hash:
                algorithm = "sha256" if len(spec.file_hash) == 64 else "md5"
                digest = _file_digest(path, algorithm)
                if digest != spec.file_hash:
                    raise WeightsNotFoundError(
                        f"{path} is incomplete or corrupted ({algorithm} {digest}, expected {spec.file_hash}). "
                        f"Replace it with a fresh copy of {spec.url}"
                    )
            return path
    raise WeightsNotFoundError(
        f"ImageNet weights for {spec.constructor} (include_top=False) are not in the Keras cache and "
        f"srkeras never downloads at run time. Missing file: {spec.file_name}\n"
        f"  download it from {spec.url}\n"
        f"  and put it at {dirs[0] / spec.file_name} (the cache used by keras.applications, "
        f"$KERAS_HOME/models or ~/.keras/models), or pass weights='/path/to/{spec.file_name}'."
    )


def build_backbone(name: str = "vgg19", weights="imagenet", check_hash: bool = True) -> keras.Model:
    """Frozen ``include_top=False`` backbone with dynamic input size (H, W, 3), built offline.

    The weights path is resolved *before* building, so a missing file fails within milliseconds.
    """
    spec = backbone_spec(name)
    if spec.file_name == "vgg16_imagenet.npz" and weights == "imagenet":
        return _torchvision_vgg16()
    path = resolve_weights(spec, weights, check_hash=check_hash)
    ctor = getattr(keras.applications, spec.constructor)
    model = ctor(include_top=False, weights=None, input_shape=(None, None, 3))
    if path is not None:
        try:
            model.load_weights(str(path))
        except Exception as e:  # keep the file name in the message
            raise ValueError(f"could not load {spec.constructor} weights from {path}: {e}") from e
    model.trainable = False
    return model


def _torchvision_vgg16() -> keras.Model:
    """keras.applications VGG16 (same layers: 3x3 'same' convs, 2x2 max pools) carrying torchvision's
    ImageNet weights from the installed ``vgg16_imagenet`` asset (MissingAssetError names the fetch)."""
    from srkeras.pretrained.metric_assets import load

    arrays = load("vgg16_imagenet")
    model = keras.applications.VGG16(include_top=False, weights=None, input_shape=(None, None, 3))
    convs = [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]
    for i, layer in enumerate(convs):
        layer.set_weights([arrays[f"conv{i}/kernel"], arrays[f"conv{i}/bias"]])
    model.trainable = False
    return model
