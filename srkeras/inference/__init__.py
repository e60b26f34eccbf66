"""Inference: load a generator, upscale any image with bounded memory (tiles), serve and export.

``load_generator(spec)`` -> :class:`ServedModel` (the Keras model as ``.model``, with its scale,
pre-padding, receptive field...); ``upscale(model, image, tile=..., max_memory=...)`` -> float32
(H*s, W*s, C); ``model_scale(model)`` -> int. Every function taking a model takes a ServedModel or
a bare ``keras.Model``.

Modules, in dependency order: :mod:`~srkeras.inference.runtime` (traced runners),
:mod:`~srkeras.inference.split` (trunk / tail of a generator), :mod:`~srkeras.inference.probing`
(measuring scale, receptive field and costs), :mod:`~srkeras.inference.served` (the served model),
:mod:`~srkeras.inference.sidecar` (the JSON sidecar), :mod:`~srkeras.inference.store` (the models
directory), :mod:`~srkeras.inference.planning` (tile plans from a tile size or a memory budget),
:mod:`~srkeras.inference.running` (bands, colours, the public ``upscale``),
:mod:`~srkeras.inference.writing` (SR PNGs and files) and :mod:`~srkeras.inference.destinations`
(where the results of a batch of files go); :mod:`~srkeras.inference.loading`,
:mod:`~srkeras.inference.serving` and :mod:`~srkeras.inference.export` load, rewrite and save models;
:mod:`~srkeras.inference.compiled` is an installed model's serving artifact (its float32 forward pass
without the Keras model: a fast start) and :mod:`~srkeras.inference.lean` imports TensorFlow without Keras.
"""

from srkeras.inference.loading import load_generator
from srkeras.inference.planning import (
    DEFAULT_MAX_MEMORY,
    ProbeMemoryError,
    TilePlan,
    parse_memory,
    parse_memory_budget,
    plan,
)
from srkeras.inference.running import bicubic_rows, tile_count, upscale, upscale_bands
from srkeras.inference.served import NetworkFacts, ServedModel, model_scale, receptive_field, serve
from srkeras.inference.store import ModelNotFoundError, find_model, list_models, models_dir
from srkeras.inference.writing import upscale_to_png, write_upscaled

__all__ = [
    "DEFAULT_MAX_MEMORY",
    "ModelNotFoundError",
    "NetworkFacts",
    "ProbeMemoryError",
    "ServedModel",
    "TilePlan",
    "bicubic_rows",
    "find_model",
    "list_models",
    "load_generator",
    "model_scale",
    "models_dir",
    "parse_memory",
    "parse_memory_budget",
    "plan",
    "receptive_field",
    "serve",
    "tile_count",
    "upscale",
    "upscale_bands",
    "upscale_to_png",
    "write_upscaled",
]
