"""Image data: loading, colour, MATLAB-compatible resizing and degradations.

``tf.data`` training pipelines live in :mod:`srkeras.data.dataset` (imports TensorFlow).
"""

from srkeras.data.color import rgb_to_y, rgb_to_ycbcr, ycbcr_to_rgb
from srkeras.data.degradations import DEGRADATIONS, UPSAMPLERS, degrade, upsample
from srkeras.data.imresize import imresize, imresize_tf
from srkeras.data.io import (
    DEFAULT_MAX_PIXELS,
    IMAGE_EXTENSIONS,
    ImageLoadError,
    LoadedImage,
    list_images,
    load_image,
    modcrop,
    quantize,
    read_image,
    save_image,
)

__all__ = [
    "DEFAULT_MAX_PIXELS",
    "DEGRADATIONS",
    "IMAGE_EXTENSIONS",
    "ImageLoadError",
    "LoadedImage",
    "UPSAMPLERS",
    "degrade",
    "imresize",
    "imresize_tf",
    "list_images",
    "load_image",
    "modcrop",
    "quantize",
    "read_image",
    "rgb_to_y",
    "rgb_to_ycbcr",
    "save_image",
    "upsample",
    "ycbcr_to_rgb",
]
