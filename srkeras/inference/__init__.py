"""Inference: load a generator, upscale any image with bounded memory (tiles), serve and export.

``load_generator(spec)`` -> keras.Model; ``upscale(model, image, tile=..., max_memory=...)`` ->
float32 (H*s, W*s, C); ``model_scale(model)`` -> int.

Modules, in dependency order: :mod:`~srkeras.inference.runtime` (traced runner, per-model cache),
:mod:`~srkeras.inference.split` (trunk / tail of a generator), :mod:`~srkeras.inference.probing`
(scale, receptive field, parts and their costs), :mod:`~srkeras.inference.planning` (tile plans
from a tile size or a memory budget), :mod:`~srkeras.inference.running` (bands, colours, the public
``upscale``); :mod:`~srkeras.inference.loading`, :mod:`~srkeras.inference.serving` and
:mod:`~srkeras.inference.export` load, rewrite and save models.
"""

from srkeras.inference.loading import ModelNotFoundError, list_models, load_generator, models_dir
from srkeras.inference.planning import DEFAULT_MAX_MEMORY, TilePlan, parse_memory, plan
from srkeras.inference.probing import model_scale, receptive_field
from srkeras.inference.running import bicubic_rows, tile_count, upscale, upscale_bands

__all__ = [
    "DEFAULT_MAX_MEMORY",
    "ModelNotFoundError",
    "TilePlan",
    "bicubic_rows",
    "list_models",
    "load_generator",
    "model_scale",
    "models_dir",
    "parse_memory",
    "plan",
    "receptive_field",
    "tile_count",
    "upscale",
    "upscale_bands",
]
