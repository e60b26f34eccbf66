"""Running a tile plan: the image goes through the model band by band, in the image's own colours.

Trunk and tail. Post-upsampling generators are split (:mod:`srkeras.inference.split`) into an LR
trunk (~1 KB of live activations per LR pixel for SRResNet) and an upsampling tail (~8 KB per LR
pixel, receptive field of a few LR pixels). The trunk runs on large tiles whose margin covers the
whole model's receptive field ``R``; each trunk tile's features, cropped to its core plus the
tail's margin ``R_tail + 2``, are tiled again with small tail tiles. The tail tiles reproduce
``model(trunk window)`` on the core exactly, and that equals the untiled output on the core by the
argument of :mod:`srkeras.inference.probing`. Models that cannot be split (SRCNN upsamples first,
ESPCN's tail is a bare PixelShuffle) run whole.

Bands. The image is processed one row of trunk tiles (a *band*) at a time; only a batch of tiles
is ever handed to the accelerator, and :func:`upscale_bands` yields the output band by band, in
chunks of about ``CHUNK_BYTES``, for streaming writers. Window sizes come from
:mod:`srkeras.inference.planning`.

Colours (:func:`upscale_bands`). A Y-only model on colour input is applied to BT.601 Y with Cb/Cr
upscaled bicubically; on grey input, the grey image is taken as R=G=B and its Y mapped back; an
RGB model on grey input sees the grey replicated and returns the luma of its output. The formulas
are those of :mod:`srkeras.data.color`.

Pre-padding (:mod:`srkeras.inference.sidecar`). A model whose original runtime reflect-pads its
input (Real-ESRGAN: 10 LR px) has the whole model input padded once; the padded image is planned
and tiled like any other and each band is shifted and cropped back (``pre_pad * scale`` HR px per
side), so tiled and untiled output both equal the original runtime's. A model with a
PixelUnshuffle input (RealESRGAN_x2plus) needs LR sizes that are multiples of 2 (x2) or 4 (x1):
the image is reflect-padded on the bottom and right to a multiple, as Real-ESRGAN does, and the
excess cropped; such a model runs untiled only (tile windows would have to sit on that grid).
"""

from __future__ import annotations

import numpy as np

from srkeras.data.color import grey_to_y, rgb_to_y_full, rgb_to_ycbcr, y_to_grey, ycbcr_to_rgb
from srkeras.data.imresize import imresize
from srkeras.inference.planning import (
    CHUNK_BYTES,
    TilePlan,
    count_tiles,
    crop_with_margin,
    plan,
    tail_axis_windows,
    trunk_windows,
)
from srkeras.inference.probing import model_parts, model_scale
from srkeras.inference.runtime import model_channels, run_model
from srkeras.inference.sidecar import pre_pad, reflect_pad, size_multiple


def _run_tail(tail, feat, rows, cols, win_h, win_w, scale, batch, out, row_offset, col_offset, tick):
    """Tail-tile ``feat`` (h, w, C): write the HR cores of ``rows`` x ``cols`` into ``out``.

    ``out`` row 0 / column 0 correspond to feature row ``row_offset`` / column ``col_offset``.
    """
    s = scale
    tiles = [(r, c) for r in rows for c in cols]
    for b0 in range(0, len(tiles), batch):
        group = tiles[b0 : b0 + batch]
        x = np.stack([feat[rs : rs + win_h, cs : cs + win_w] for (_, _, rs), (_, _, cs) in group])
        y = run_model(tail, x)
        for ((r0, r1, rs), (c0, c1, cs)), o in zip(group, y):
            out[(r0 - row_offset) * s : (r1 - row_offset) * s, (c0 - col_offset) * s : (c1 - col_offset) * s] = o[
                (r0 - rs) * s : (r1 - rs) * s, (c0 - cs) * s : (c1 - cs) * s
            ]
        if tick is not None:
            tick(len(group))


def _tail_into_band(tail, trunk_out, core, p: TilePlan, hw, scale, band, tick):
    """Run the tail tiles on one trunk tile's features ``trunk_out``, writing its core into ``band``.

    ``core``: ((r0, r1, row window start), (c0, c1, column window start)) of the trunk tile.
    """
    (r0, r1, rs), (c0, c1, cs) = core
    margin = p.tail_overlap
    (fa, fb), (ga, gb) = crop_with_margin(r0, r1, hw[0], margin), crop_with_margin(c0, c1, hw[1], margin)
    feat = trunk_out[fa - rs : fb - rs, ga - cs : gb - cs]
    tail_rows, win_h = tail_axis_windows(fb - fa, r0 - fa, r1 - fa, p.tail_window, margin)
    tail_cols, win_w = tail_axis_windows(gb - ga, c0 - ga, c1 - ga, p.tail_window, margin)
    out = band[:, c0 * scale : c1 * scale]
    _run_tail(tail, feat, tail_rows, tail_cols, win_h, win_w, scale, p.tail_batch, out, r0 - fa, c0 - ga, tick)


def model_bands(model, x: np.ndarray, p: TilePlan, progress=None):
    """Yield (hr_row_start, band) of ``model`` applied to ``x`` (H, W, model channels) under ``p``."""
    h, w = x.shape[:2]
    s = model_scale(model)
    if p.overlap == 0 and p.tile >= h and p.tile_w >= w and not p.split:  # untiled
        yield 0, run_model(model, x[None])[0]
        if progress is not None:
            progress(1)
        return
    parts = model_parts(model)
    split = p.split and parts.tail is not None
    first_stage = parts.trunk if split else model
    rows, win_h, cols, win_w = trunk_windows(p, h, w)
    for r0, r1, rs in rows:
        band = None
        for b0 in range(0, len(cols), p.batch_size):
            group = cols[b0 : b0 + p.batch_size]
            out = run_model(first_stage, np.stack([x[rs : rs + win_h, cs : cs + win_w] for _, _, cs in group]))
            if progress is not None:
                progress(len(group))
            if band is None:  # after the first trunk call, whose peak then does not include it
                band = np.empty(((r1 - r0) * s, w * s, parts.out_channels), np.float32)
            for (c0, c1, cs), o in zip(group, out):
                if split:
                    _tail_into_band(parts.tail, o, ((r0, r1, rs), (c0, c1, cs)), p, (h, w), s, band, progress)
                else:
                    band[:, c0 * s : c1 * s] = o[(r0 - rs) * s : (r1 - rs) * s, (c0 - cs) * s : (c1 - cs) * s]
            o = out = None  # free this batch's features before the next trunk call
        yield r0 * s, band
        band = None


def bicubic_rows(img: np.ndarray, s: int, r0: int, r1: int, chunk: int = 512) -> np.ndarray:
    """Rows [r0, r1) of ``imresize(img, s)`` without resizing the whole image.

    For an integer upscale the MATLAB kernel reaches 2 LR pixels (plus symmetric reflection at
    real borders), so a window with a 3-pixel margin, resized on its own, reproduces those rows;
    columns are done in chunks the same way.
    """
    h, w = img.shape[:2]
    a, b = max(0, r0 // s - 3), min(h, -(-r1 // s) + 3)
    pieces = []
    for c0 in range(0, w, chunk):
        c1 = min(w, c0 + chunk)
        ca, cb = max(0, c0 - 3), min(w, c1 + 3)
        up = imresize(img[a:b, ca:cb], float(s))
        pieces.append(up[r0 - a * s : r1 - a * s, (c0 - ca) * s : (c1 - ca) * s])
    return np.concatenate(pieces, axis=1)


def _colour_path(img: np.ndarray, model_c: int, scale: int):
    """(model input, to_image(band, r0, r1)) for an (H, W, 1 or 3) image and a 1- or 3-channel model."""
    image_c = img.shape[-1]
    if model_c == 1 and image_c == 3:
        ycc = rgb_to_ycbcr(img).astype(np.float32)

        def with_chroma(band, r0, r1):
            cbcr = bicubic_rows(ycc[..., 1:], scale, r0, r1)
            return ycbcr_to_rgb(np.concatenate([band, cbcr], axis=-1)).astype(np.float32)

        return ycc[..., :1], with_chroma
    if model_c == 1:
        return grey_to_y(img), lambda band, r0, r1: y_to_grey(band)
    if model_c == 3 and image_c == 1:
        return np.repeat(img, 3, axis=-1), lambda band, r0, r1: rgb_to_y_full(band)
    if model_c == 3:
        return img, lambda band, r0, r1: band
    raise ValueError(f"model takes {model_c} channels; only 1 (Y) and 3 (RGB) models are supported")


def _padded_input(model, x: np.ndarray, tile, max_memory, batch_size, overlap, channels):
    """(padded x, plan, pad, (h, w)): the model input with its pre-padding and size multiple applied."""
    h, w = x.shape[:2]
    pad, m = pre_pad(model), size_multiple(model)
    x = reflect_pad(x, pad)
    if m > 1:
        extra = (-x.shape[0] % m, -x.shape[1] % m)
        if any(extra):
            mode = "reflect" if min(x.shape[:2]) > m else "symmetric"
            x = np.pad(x, [(0, extra[0]), (0, extra[1]), (0, 0)], mode=mode)
        p = plan(model, x.shape[:2], 0, max_memory, batch_size, overlap, channels=channels)
        if tile not in (None, 0) and tile < max(x.shape[:2]):
            raise ValueError(
                f"this model (PixelUnshuffle input: LR sizes multiple of {m}) runs untiled only; use --tile 0"
            )  # fmt: skip
    else:
        p = plan(model, x.shape[:2], tile, max_memory, batch_size, overlap, channels=channels)
    return x, p, pad, (h, w)


def _cropped_bands(model, x, p: TilePlan, pad: int, hw, tick):
    """:func:`model_bands` of the padded input, shifted and cropped to the unpadded image."""
    s = model_scale(model)
    lo_r, hi_r, lo_c, hi_c = pad * s, (pad + hw[0]) * s, pad * s, (pad + hw[1]) * s
    for b0, full in model_bands(model, x, p, tick):
        a, b = max(0, lo_r - b0), min(full.shape[0], hi_r - b0)
        if b > a:
            yield b0 + a - lo_r, full[a:b, lo_c:hi_c]
        full = None


def upscale_bands(model, image, tile=None, max_memory=None, batch_size=None, progress=None, overlap=None, alpha=None):
    """Generator of (hr_row_start, rgb_or_grey_band, alpha_band_or_None), clipped to [0, 1].

    Colour handling (module docstring): a Y-only model (1 input channel) on colour input is applied
    to BT.601 Y, with Cb/Cr upscaled bicubically (MATLAB imresize); on grey input, the grey image is
    taken as R=G=B (Y = 16/255 + 219/255 g) and mapped back. An RGB model on grey input sees the grey
    replicated and the result is returned as grey (BT.601 luma of the output). Alpha is upscaled
    bicubically. A model's pre-padding (:func:`~srkeras.inference.sidecar.pre_pad`) is applied.
    """
    img = np.asarray(image, dtype=np.float32)
    if img.ndim == 2:
        img = img[..., None]
    if img.ndim != 3 or img.shape[-1] not in (1, 3):
        raise ValueError(f"image must be (H, W, 1) or (H, W, 3), got shape {img.shape}")
    s = model_scale(model)
    image_c = img.shape[-1]
    x, to_image = _colour_path(img, model_channels(model), s)
    x, p, pad, hw = _padded_input(model, x, tile, max_memory, batch_size, overlap, image_c)
    tick = progress if callable(progress) or progress is None else progress.update  # or a tqdm-like bar
    alpha = None if alpha is None else np.asarray(alpha, np.float32)
    for b0, full in _cropped_bands(model, x, p, pad, hw, tick):
        # Hand the band out in chunks of ~CHUNK_BYTES: the caller's work per piece (colour
        # conversion here, PNG filtering and compression in a streaming writer) then needs memory
        # for a chunk, not for a whole band of the trunk tile's height.
        step = max(1, int(CHUNK_BYTES // (full.shape[1] * max(image_c, full.shape[-1]) * 4)))
        for a in range(0, full.shape[0], step):
            band = full[a : a + step]
            r0, r1 = b0 + a, b0 + a + band.shape[0]
            band = to_image(band, r0, r1)
            band_alpha = None if alpha is None else np.clip(bicubic_rows(alpha, s, r0, r1), 0, 1)
            # A new array (not a view of the band): what the caller keeps must not pin the band.
            yield r0, np.clip(band, 0.0, 1.0), band_alpha
            band = None
        full = None


def upscale(model, image, tile=None, max_memory=None, batch_size=None, progress=None, overlap=None) -> np.ndarray:
    """Super-resolve ``image`` (float32 (H, W, C) in [0, 1]) -> float32 (H*s, W*s, C) in [0, 1].

    ``tile``: None = from the ``max_memory`` budget (bytes or '2GB'; default 2 GB), 0 = untiled,
    N = core tile edge in LR pixels. ``progress``: None, a callable(n_tiles_done) or a tqdm bar
    (its total should be :func:`tile_count`). See :func:`upscale_bands` for colour handling.
    """
    bands = [b for _, b, _ in upscale_bands(model, image, tile, max_memory, batch_size, progress, overlap)]
    return bands[0] if len(bands) == 1 else np.concatenate(bands, axis=0)


def tile_count(model, image_shape, tile=None, max_memory=None, batch_size=None, overlap=None) -> int:
    """Number of tiles :func:`upscale` will run for an image of ``image_shape`` (for progress bars)."""
    c = image_shape[2] if len(image_shape) > 2 else 1
    pad, m = pre_pad(model), size_multiple(model)
    h, w = (n + 2 * pad for n in image_shape[:2])
    if m > 1:
        return count_tiles((h, w), plan(model, (h + -h % m, w + -w % m), 0))
    return count_tiles((h, w), plan(model, (h, w), tile, max_memory, batch_size, overlap, channels=c))


__all__ = ["bicubic_rows", "model_bands", "tile_count", "upscale", "upscale_bands"]
