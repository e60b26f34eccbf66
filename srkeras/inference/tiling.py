"""Tiled super-resolution with bounded memory whose stitched output equals the untiled one.

Why tiles must overlap. A fully convolutional generator's output pixel depends only on the LR
pixels within its receptive field of radius ``R`` (LR pixels). A tile cut out of the image sees
zero padding (or reflected borders) where the real image continues, which changes every output
pixel closer than ``R`` to the cut. So each tile is the *core* region we keep plus an overlap margin
``>= R`` on every side that is computed and thrown away; the kept cores then equal the untiled
result to float rounding. Image borders are real borders in both cases, so no margin is needed there.

How ``R`` is found (:func:`receptive_field`). Empirically, by probing with an impulse: run the
model on a probe image and on the same image with its centre LR pixel raised by 1 (two bases:
uniform noise and mid-grey, so a ReLU that is off at one base is on at the other), and take the
largest Chebyshev distance, in LR pixels, of any output pixel that changed by more than ``tol``
(1e-5, far below the 1/255 quantisation step and far above float32 rounding noise). The probe
grows (48 -> 96 -> 192 -> 384 LR pixels) until the changed region no longer touches its border;
a model whose change reaches every pixel (global pooling, attention) is reported as global
(``None``): tiling cannot be exact for it and :func:`upscale` warns. This works for any layer,
custom ones included, at the price of one probe per model (cached). The analytic radius of a
deep model (RRDBNet: 350+ convolutions) vastly overstates the distance at which anything
measurable happens; the probe measures the latter. The margin used is ``R + 2``.

Tiles. ``tile`` is the core edge in LR pixels (Real-ESRGAN's ``--tile`` convention); the model
sees ``tile + 2 * overlap``. All tiles of an image have one shape (edge tiles are shifted inwards,
overlapping their neighbours more), so they batch and the model is traced once. The image is
processed one row of tiles (a *band*) at a time; only a batch of tiles is ever handed to the
accelerator, and :func:`upscale_bands` yields the output band by band for streaming writers.
"""

from __future__ import annotations

import math
import warnings
import weakref
from dataclasses import dataclass

import numpy as np

from srkeras.data.color import rgb_to_ycbcr, ycbcr_to_rgb
from srkeras.data.imresize import imresize

DEFAULT_MAX_MEMORY = 2 * 1024**3
RF_TOL = 1e-5
ACTIVATION_SHARE = 0.6
_PROBE_SIZES = (48, 96, 192, 384)
_cache: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def _model_cache(model) -> dict:
    try:
        return _cache.setdefault(model, {})
    except TypeError:
        return {}


def parse_memory(value) -> int | None:
    """'2GB', '512MiB', '1.5G', 2e9 -> bytes (decimal units for GB/MB, binary for GiB/MiB)."""
    if value is None:
        return None
    if isinstance(value, (int, float)):
        return int(value)
    s = str(value).strip().upper().replace(" ", "")
    units = {"KIB": 1024, "MIB": 1024**2, "GIB": 1024**3, "KB": 1e3, "MB": 1e6, "GB": 1e9, "K": 1e3, "M": 1e6, "G": 1e9, "B": 1}
    for u in sorted(units, key=len, reverse=True):
        if s.endswith(u):
            return int(float(s[: -len(u)]) * units[u])
    return int(float(s))


def model_channels(model) -> int:
    c = model.input_shape[-1] if not isinstance(model.input_shape, list) else model.input_shape[0][-1]
    if c is None:
        raise ValueError("the model's input channel count is not fixed; build it with Input(shape=(None, None, C))")
    return int(c)


def _runner(model):
    """A traced inference function on (N, H, W, C) float32 with dynamic N, H, W."""
    cache = _model_cache(model)
    if "runner" not in cache:
        import tensorflow as tf

        c = model_channels(model)

        @tf.function(input_signature=[tf.TensorSpec([None, None, None, c], tf.float32)], reduce_retracing=True)
        def run(x):
            y = model(x, training=False)
            return tf.cast(y, tf.float32)

        cache["runner"] = run
    return cache["runner"]


def run_model(model, batch: np.ndarray) -> np.ndarray:
    return np.asarray(_runner(model)(np.ascontiguousarray(batch, dtype=np.float32)))


def model_scale(model) -> int:
    """Integer upscaling factor of a generator, found by running it on a small probe."""
    cache = _model_cache(model)
    if "scale" not in cache:
        c = model_channels(model)
        n = 12
        out = run_model(model, np.full((1, n, n, c), 0.5, np.float32))
        sh, sw = out.shape[1] / n, out.shape[2] / n
        if sh != sw or sh != int(sh) or sh < 1:
            raise ValueError(f"model maps {n}x{n} to {out.shape[1]}x{out.shape[2]}: not an integer upscaler")
        cache["scale"] = int(sh)
    return cache["scale"]


def receptive_field(model, tol: float = RF_TOL, max_probe: int = _PROBE_SIZES[-1]) -> int | None:
    """Effective receptive-field radius in LR pixels (see module docstring); None if global."""
    cache = _model_cache(model)
    key = ("rf", tol, max_probe)
    if key in cache:
        return cache[key]
    s = model_scale(model)
    c = model_channels(model)
    rng = np.random.default_rng(0)
    result = None
    for p in [q for q in _PROBE_SIZES if q <= max_probe] or [max_probe]:
        base = np.stack([rng.random((p, p, c), dtype=np.float32), np.full((p, p, c), 0.5, np.float32)])
        probe = base.copy()
        cy = p // 2
        probe[:, cy, cy, :] = np.where(probe[:, cy, cy, :] > 0.5, 0.0, 1.0)  # change by >= 0.5
        out = run_model(model, np.concatenate([base, probe]))
        diff = np.abs(out[2:] - out[:2]).max(axis=(0, 3))  # (p*s, p*s)
        ys, xs = np.nonzero(diff > tol)
        if ys.size == 0:
            result = 0
            break
        # Distance from the impulse's HR block [cy*s, cy*s + s) in HR pixels, then in LR pixels.
        dy = np.maximum(cy * s - ys, ys - (cy * s + s - 1)).clip(0)
        dx = np.maximum(cy * s - xs, xs - (cy * s + s - 1)).clip(0)
        r = int(math.ceil(max(dy.max(), dx.max()) / s))
        if r < cy - 2:
            result = r
            break
    cache[key] = result
    return result


def activation_bytes_per_pixel(model) -> float:
    """Rough peak working memory per LR input pixel (float32): the four largest layer outputs x 1.5."""
    cache = _model_cache(model)
    if "bpp" in cache:
        return cache["bpp"]
    import keras

    c = model_channels(model)
    s = model_scale(model)
    n = 16
    per_px = []
    try:
        outs = [l.output for l in model.layers if len(getattr(l.output, "shape", ())) == 4]
        probe = keras.Model(model.inputs, outs)
        specs = probe.compute_output_spec(keras.KerasTensor((1, n, n, c)))
        for sp in specs if isinstance(specs, (list, tuple)) else [specs]:
            shp = sp.shape
            per_px.append(float(shp[1] * shp[2] * shp[3]) / (n * n))
    except Exception:
        per_px = [64.0 * s * s, 64.0 * s * s, 64.0, 64.0]
    top = sorted(per_px, reverse=True)[:4]
    bpp = 4.0 * sum(top) * 1.5
    cache["bpp"] = bpp
    return bpp


@dataclass
class TilePlan:
    tile: int  # core edge (LR px); the whole image when untiled
    overlap: int
    batch_size: int
    exact: bool  # False when the receptive field is global or bigger than the overlap used

    @property
    def window(self):
        return self.tile + 2 * self.overlap


def plan(model, shape_hw, tile=None, max_memory=None, batch_size=None, overlap=None) -> TilePlan:
    """Choose core tile size, overlap and batch from an explicit ``tile`` or a memory budget.

    ``tile=0`` means untiled (one call on the whole image). ``tile=None`` picks the largest window
    whose activations fit ``max_memory`` (default 2 GB) according to :func:`activation_bytes_per_pixel`.
    """
    h, w = shape_hw
    exact = True
    if tile == 0:
        return TilePlan(tile=max(h, w), overlap=0, batch_size=1, exact=True)
    if overlap is None:
        rf = receptive_field(model)
        if rf is None:
            exact = False
            rf = 32
            warnings.warn(
                "this model's receptive field is global (pooling/attention): tiled output will differ "
                "from untiled; use --tile 0 if the image fits in memory",
                stacklevel=3,
            )
        overlap = rf + 2
    budget = parse_memory(max_memory) or DEFAULT_MAX_MEMORY
    bpp = activation_bytes_per_pixel(model)
    if tile is None:
        # The budget is for the whole process: about 60% of it goes to activations, the rest is the
        # TF runtime, weights, the input image and one output band (measured: benchmarks/bench_inference).
        window = int(math.sqrt(ACTIVATION_SHARE * budget / bpp))
        tile = max(16, window - 2 * overlap)
        if window - 2 * overlap < 16:
            warnings.warn(f"memory budget of {budget / 1e9:.2f} GB is tight for this model; using {tile}px tiles", stacklevel=3)
    tile = int(tile)
    if tile < 1:
        raise ValueError(f"tile must be positive (or 0 for untiled), got {tile}")
    tile = min(tile, max(h, w))
    win_h, win_w = min(tile + 2 * overlap, h), min(tile + 2 * overlap, w)
    if batch_size is None:
        per_tile = bpp * win_h * win_w
        tiles_per_band = math.ceil(w / tile)
        batch_size = int(max(1, min(tiles_per_band, 16, budget // max(per_tile, 1))))
    return TilePlan(tile=tile, overlap=int(overlap), batch_size=int(batch_size), exact=exact)


def _windows(n, tile, overlap):
    """[(core_start, core_end, window_start)] along one axis; every window has the same length."""
    win = min(tile + 2 * overlap, n)
    out = []
    for c0 in range(0, n, tile):
        c1 = min(c0 + tile, n)
        ws = min(max(c0 - overlap, 0), n - win)
        out.append((c0, c1, ws))
    return out, win


def count_tiles(shape_hw, p: TilePlan) -> int:
    return math.ceil(shape_hw[0] / p.tile) * math.ceil(shape_hw[1] / p.tile)


def _model_bands(model, x: np.ndarray, p: TilePlan, s: int, progress):
    """Yield (hr_row_start, band) for the model applied to x (H, W, C) with the model's channels."""
    h, w = x.shape[:2]
    rows, win_h = _windows(h, p.tile, p.overlap)
    cols, win_w = _windows(w, p.tile, p.overlap)
    for c0, c1, ws in rows:
        band = None
        for b0 in range(0, len(cols), p.batch_size):
            group = cols[b0 : b0 + p.batch_size]
            batch = np.stack([x[ws : ws + win_h, cs : cs + win_w] for _, _, cs in group])
            out = run_model(model, batch)
            if band is None:
                band = np.empty(((c1 - c0) * s, w * s, out.shape[-1]), np.float32)
            for (d0, d1, cs), o in zip(group, out):
                band[:, d0 * s : d1 * s] = o[(c0 - ws) * s : (c1 - ws) * s, (d0 - cs) * s : (d1 - cs) * s]
            if progress is not None:
                progress(len(group))
        yield c0 * s, band


def bicubic_rows(img: np.ndarray, s: int, r0: int, r1: int, chunk: int = 512) -> np.ndarray:
    """Rows [r0, r1) of ``imresize(img, s)`` without resizing the whole image.

    For an integer upscale the MATLAB kernel reaches 2 LR pixels (plus symmetric reflection at
    real borders), so a window with a 3-pixel margin, resized on its own, reproduces those rows;
    columns are done in chunks the same way.
    """
    h, w = img.shape[:2]
    a, b = max(0, r0 // s - 3), min(h, -(-r1 // s) + 3)
    parts = []
    for c0 in range(0, w, chunk):
        c1 = min(w, c0 + chunk)
        ca, cb = max(0, c0 - 3), min(w, c1 + 3)
        up = imresize(img[a:b, ca:cb], float(s))
        parts.append(up[r0 - a * s : r1 - a * s, (c0 - ca) * s : (c1 - ca) * s])
    return np.concatenate(parts, axis=1)


def upscale_bands(model, image, tile=None, max_memory=None, batch_size=None, progress=None, overlap=None, alpha=None):
    """Generator of (hr_row_start, rgb_or_grey_band, alpha_band_or_None), clipped to [0, 1].

    Colour handling: a Y-only model (1 input channel) on colour input is applied to BT.601 Y, with
    Cb/Cr upscaled bicubically (MATLAB imresize); on grey input, the grey image is taken as R=G=B
    (Y = 16/255 + 219/255 g) and mapped back. An RGB model on grey input sees the grey replicated and
    the result is returned as grey (BT.601 luma of the output). Alpha is upscaled bicubically.
    """
    img = np.asarray(image, dtype=np.float32)
    if img.ndim == 2:
        img = img[..., None]
    if img.ndim != 3 or img.shape[-1] not in (1, 3):
        raise ValueError(f"image must be (H, W, 1) or (H, W, 3), got shape {img.shape}")
    s = model_scale(model)
    cm = model_channels(model)
    c = img.shape[-1]
    if cm == 1 and c == 3:
        ycc = rgb_to_ycbcr(img).astype(np.float32)
        x = ycc[..., :1]
    elif cm == 1:
        x = (16.0 + 219.0 * img) / 255.0
    elif cm == 3 and c == 1:
        x = np.repeat(img, 3, axis=-1)
    elif cm == 3:
        x = img
    else:
        raise ValueError(f"model takes {cm} channels; only 1 (Y) and 3 (RGB) models are supported")
    p = plan(model, x.shape[:2], tile, max_memory, batch_size, overlap)
    if callable(progress) or progress is None:
        tick = progress
    else:  # a tqdm-like object
        tick = progress.update
    for r0, band in _model_bands(model, x, p, s, tick):
        r1 = r0 + band.shape[0]
        if cm == 1 and c == 3:
            cbcr = bicubic_rows(ycc[..., 1:], s, r0, r1)
            band = ycbcr_to_rgb(np.concatenate([band, cbcr], axis=-1)).astype(np.float32)
        elif cm == 1:
            band = (band * 255.0 - 16.0) / 219.0
        elif c == 1:
            band = rgb_to_y_full(band)
        a = None if alpha is None else np.clip(bicubic_rows(np.asarray(alpha, np.float32), s, r0, r1), 0, 1)
        yield r0, np.clip(band, 0.0, 1.0), a


def rgb_to_y_full(rgb: np.ndarray) -> np.ndarray:
    """Full-range BT.601 luma (0.299, 0.587, 0.114) as (H, W, 1): grey from an RGB model's output."""
    return (rgb @ np.array([0.299, 0.587, 0.114], np.float32))[..., None].astype(np.float32)


def upscale(model, image, tile=None, max_memory=None, batch_size=None, progress=None, overlap=None) -> np.ndarray:
    """Super-resolve ``image`` (float32 (H, W, C) in [0, 1]) -> float32 (H*s, W*s, C) in [0, 1].

    ``tile``: None = from the ``max_memory`` budget (bytes or '2GB'; default 2 GB), 0 = untiled,
    N = core tile edge in LR pixels. ``progress``: None, a callable(n_tiles_done) or a tqdm bar
    (its total should be :func:`count_tiles`). See :func:`upscale_bands` for colour handling.
    """
    bands = [b for _, b, _ in upscale_bands(model, image, tile, max_memory, batch_size, progress, overlap)]
    return np.concatenate(bands, axis=0)


def tile_count(model, image_shape, tile=None, max_memory=None, batch_size=None, overlap=None) -> int:
    """Number of tiles :func:`upscale` will run for an image of ``image_shape`` (for progress bars)."""
    p = plan(model, image_shape[:2], tile, max_memory, batch_size, overlap)
    return count_tiles(image_shape[:2], p)


__all__ = [
    "DEFAULT_MAX_MEMORY",
    "TilePlan",
    "activation_bytes_per_pixel",
    "bicubic_rows",
    "model_scale",
    "parse_memory",
    "plan",
    "receptive_field",
    "rgb_to_y_full",
    "tile_count",
    "upscale",
    "upscale_bands",
]
