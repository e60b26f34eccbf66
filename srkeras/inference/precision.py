"""Compute precision of a served model: ``float32``, ``bfloat16`` or ``auto``.

``float32`` is the reference: exact to the original runtimes. ``bfloat16`` runs the convolutions in
bfloat16 (8 mantissa bits; oneDNN accumulates in float32) with float32 weights (Keras'
``mixed_bfloat16`` policy). It is fast only where the hardware has bfloat16 instructions -- x86
AVX512-BF16 or AMX (``avx512_bf16`` / ``amx_bf16`` in ``/proc/cpuinfo``), Arm BF16, GPUs -- and is
refused elsewhere (:class:`PrecisionError`): emulated, it would be slower than float32.
``auto`` is bfloat16 where it is fast and the purpose is *serving* (``pipelines.upscale``, the Try-it
page), float32 otherwise: evaluation tables and study stimuli are float32 unless bfloat16 is asked
for by name (:func:`resolve_precision`). "Fast" is the hardware and the model: a model of fewer than
:data:`AUTO_MIN_FLOPS` convolution FLOPs per LR pixel (a toy, ESPCN) spends its time on casts and
memory, not on arithmetic, and stays float32.

Which layers stay float32 (:func:`float32_layers`; measured in ``benchmarks/bench_precision.py``,
table in the README). Rounding every layer's output to bfloat16 costs most where a value is carried
a long way: the residual stream (RRDBNet adds ``0.2 * block(x)`` to ``x`` 69 times; its bfloat16
sum loses the small updates). ``"residual"`` keeps the residual sums (``Add``) in float32 -- cheap:
element-wise ops, the convolutions stay bfloat16. ``"ends"`` keeps the first and the last
convolution float32 (the input's and the output's full precision; a few per cent of the work).
``"tail"`` keeps everything from the first upsampling layer on (PixelShuffle / UpSampling) float32:
the HR convolutions are 8% of RRDBNet's FLOPs but would then run at float32 speed.
:data:`DEFAULT_KEEP` is what measured best.
"""

from __future__ import annotations

import copy
import platform
import re

PRECISIONS = ("float32", "bfloat16", "auto")
KEEP_OPTIONS = ("residual", "ends", "tail")
DEFAULT_KEEP = ("residual", "ends")
AUTO_MIN_FLOPS = 5e5  # per LR pixel: below it ``auto`` keeps float32 (module docstring)
_UPSAMPLERS = ("PixelShuffle", "UpSampling2D", "Conv2DTranspose", "BicubicUpsample", "BilinearUpsample", "DepthToSpace")
_CONVS = ("Conv2D", "Conv2DTranspose", "DepthwiseConv2D", "SeparableConv2D")


class PrecisionError(ValueError):
    """A precision this machine cannot run fast (bfloat16 without hardware support) or an unknown name."""


def cpu_bf16_flags() -> list[str]:
    """The bfloat16 CPU flags of this machine (``amx_bf16``, ``avx512_bf16``, Arm ``bf16``) from /proc/cpuinfo."""
    try:
        with open("/proc/cpuinfo") as f:
            flags = set(re.findall(r"\b(amx_bf16|avx512_bf16|bf16)\b", f.read()))
    except OSError:
        return ["bf16"] if platform.system() == "Darwin" and platform.machine() == "arm64" else []
    return sorted(flags)


def cpu_model() -> str:
    """The CPU model name (for messages and benchmark tables)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def bf16_supported(device: str = "cpu") -> bool:
    """Whether bfloat16 runs natively on ``device`` ("gpu": assumed; "cpu": :func:`cpu_bf16_flags`)."""
    return device == "gpu" or bool(cpu_bf16_flags())


def resolve_precision(precision: str | None, purpose: str = "serve", device: str = "cpu", model=None) -> str:
    """"float32" or "bfloat16" for the ``precision`` asked for (module docstring).

    ``purpose``: "serve" (``auto`` may pick bfloat16) or "score" (evaluation, stimuli: ``auto`` is
    float32). ``model``: under ``auto``, one below :data:`AUTO_MIN_FLOPS` stays float32. Raises
    :class:`PrecisionError` for bfloat16 on a CPU without bfloat16 instructions.
    """
    precision = precision or "float32"
    if precision not in PRECISIONS:
        raise PrecisionError(f"unknown precision {precision!r}; choose one of {', '.join(PRECISIONS)}")
    if precision == "auto":
        if purpose != "serve" or not bf16_supported(device):
            return "float32"
        if model is not None:
            from srkeras.inference.split import flops_per_pixel

            flops = flops_per_pixel(model)
            if flops is not None and flops < AUTO_MIN_FLOPS:
                return "float32"
        return "bfloat16"
    if precision == "bfloat16" and not bf16_supported(device):
        raise PrecisionError(
            f"bfloat16 needs a CPU with AMX or AVX512-BF16 (or a GPU); this CPU ({cpu_model()}) has neither, "
            "and emulated bfloat16 is slower than float32: use --precision float32"
        )
    return precision


def float32_layers(model, keep=DEFAULT_KEEP) -> set[str]:
    """Names of the top-level layers of ``model`` kept float32 under ``keep`` (module docstring)."""
    unknown = set(keep) - set(KEEP_OPTIONS)
    if unknown:
        raise ValueError(f"unknown float32 layer group(s) {sorted(unknown)}; choose from {KEEP_OPTIONS}")
    layers = list(getattr(model, "layers", []))
    kinds = [type(layer).__name__ for layer in layers]
    names: set[str] = set()
    if "residual" in keep:
        names |= {layer.name for layer, k in zip(layers, kinds) if k == "Add"}
    convs = [i for i, k in enumerate(kinds) if k in _CONVS]
    if "ends" in keep and convs:
        names |= {layers[convs[0]].name, layers[convs[-1]].name}
        names |= {layer.name for layer in layers[convs[-1] + 1 :]}  # what follows the last convolution
    ups = [i for i, k in enumerate(kinds) if k in _UPSAMPLERS]
    if "tail" in keep and ups:
        names |= {layer.name for layer in layers[ups[0] :]}
    return names


def _set_policy(cfg, policy) -> None:
    if isinstance(cfg, dict):
        for k, v in list(cfg.items()):
            is_policy = isinstance(v, dict) and v.get("class_name", "").endswith("DTypePolicy")
            if k == "dtype" and "keras_history" not in cfg and is_policy:
                cfg[k] = policy
            else:
                _set_policy(v, policy)
    elif isinstance(cfg, list):
        for v in cfg:
            _set_policy(v, policy)


def with_policies(model, policy: str, float32_names=frozenset()):
    """Clone of ``model`` computing under ``policy``, except the layers named in ``float32_names``
    (float32); the same (float32) weights. Input layers keep float32."""
    import numpy as np

    from srkeras.models.graph import rebuild

    def config_of(layer):
        cfg = copy.deepcopy(layer.get_config())
        if type(layer).__name__ != "InputLayer":
            _set_policy(cfg, "float32" if layer.name in float32_names else policy)
        return cfg

    new = rebuild(model, config_of=config_of, weights=False)
    new.set_weights([np.asarray(w, dtype=np.float32) for w in model.get_weights()])
    return new


def compute_dtypes(model) -> set:
    """Compute dtypes of every layer of ``model``, nested models' layers included."""
    from srkeras.models.graph import all_layers

    return {str(getattr(layer, "compute_dtype", "float32")) for layer in all_layers(model)}


def as_float32(model):
    """``model`` itself if it computes in float32, else a float32 clone (for CPU serving)."""
    if compute_dtypes(model) <= {"float32"}:
        return model
    return with_policies(model, "float32")


def as_precision(model, precision: str, keep=DEFAULT_KEEP):
    """``model`` computing in ``precision`` ("float32" or "bfloat16", already resolved), float32 weights;
    under bfloat16 the layers of :func:`float32_layers` (``keep``) stay float32."""
    if precision == "float32":
        return as_float32(model)
    if precision != "bfloat16":
        raise PrecisionError(f"cannot build a {precision!r} model; resolve_precision() first")
    if "bfloat16" in compute_dtypes(model):
        return model
    return with_policies(model, "mixed_bfloat16", float32_layers(model, keep))


def precision_of(model) -> str:
    """"bfloat16" if any layer of ``model`` computes in bfloat16, else "float32" (or "float16")."""
    dtypes = compute_dtypes(model)
    return "bfloat16" if "bfloat16" in dtypes else ("float16" if "float16" in dtypes else "float32")


__all__ = [
    "AUTO_MIN_FLOPS",
    "DEFAULT_KEEP",
    "KEEP_OPTIONS",
    "PRECISIONS",
    "PrecisionError",
    "as_float32",
    "as_precision",
    "bf16_supported",
    "compute_dtypes",
    "cpu_bf16_flags",
    "cpu_model",
    "float32_layers",
    "precision_of",
    "resolve_precision",
    "with_policies",
]
