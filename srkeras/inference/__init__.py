"""Inference: load a generator, upscale any image with bounded memory (tiles), serve and export.

``load_generator(spec)`` -> keras.Model; ``upscale(model, image, tile=..., max_memory=...)`` ->
float32 (H*s, W*s, C); ``model_scale(model)`` -> int. See :mod:`srkeras.inference.tiling`.
"""

from srkeras.inference.loading import ModelNotFoundError, list_models, load_generator, models_dir
from srkeras.inference.tiling import (
    DEFAULT_MAX_MEMORY,
    model_scale,
    parse_memory,
    receptive_field,
    tile_count,
    upscale,
    upscale_bands,
)

__all__ = [
    "DEFAULT_MAX_MEMORY",
    "ModelNotFoundError",
    "list_models",
    "load_generator",
    "model_scale",
    "models_dir",
    "parse_memory",
    "receptive_field",
    "tile_count",
    "upscale",
    "upscale_bands",
]
