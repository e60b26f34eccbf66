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

Pre-padding (:class:`~srkeras.inference.served.ServedModel`, :class:`ModelInput`). A model whose original runtime reflect-pads its
input (Real-ESRGAN: 10 LR px) has the whole model input padded once; the padded image is planned
and tiled like any other and each band is shifted and cropped back (``pre_pad * scale`` HR px per
side), so tiled and untiled output both equal the original runtime's. A model with a
PixelUnshuffle input (RealESRGAN_x2plus) needs LR sizes that are multiples of 2 (x2) or 4 (x1):
the image is reflect-padded on the bottom and right to a multiple, as Real-ESRGAN does, and the
excess cropped; such a model runs untiled only (tile windows would have to sit on that grid).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

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
from srkeras.inference.runtime import run_model
from srkeras.inference.served import ServedModel, reflect_pad, serve


@dataclass(frozen=True)
class TailTiles:
    """Tail tiles over one trunk tile's features: cores and window starts along each axis."""

    rows: list  # (core start, core end, window start), feature rows
    cols: list
    win_h: int
    win_w: int
    row_offset: int  # feature row of the output's row 0
    col_offset: int


@dataclass(frozen=True)
class BandRun:
    """One model input (H, W, model channels) run band by band under a tile plan."""

    served: ServedModel
    plan: TilePlan
    tick: Callable[[int], None] | None = None  # called with the number of tiles just run

    def bands(self, x: np.ndarray):
        """Yield (hr_row_start, band) of the model applied to ``x``."""
        h, w = x.shape[:2]
        p, s = self.plan, self.served.scale
        if p.overlap == 0 and p.tile >= h and p.tile_w >= w and not p.split:  # untiled
            yield 0, run_model(self.served.runner, x[None])[0]
            self._ticked(1)
            return
        split = p.split and self.served.split is not None
        first_stage = self.served.stage_runners[0] if split else self.served.runner
        out_channels = self.served.costs.out_channels
        rows, win_h, cols, win_w = trunk_windows(p, h, w)
        for r0, r1, rs in rows:
            band = None
            for b0 in range(0, len(cols), p.batch_size):
                group = cols[b0 : b0 + p.batch_size]
                out = run_model(first_stage, np.stack([x[rs : rs + win_h, cs : cs + win_w] for _, _, cs in group]))
                self._ticked(len(group))
                if band is None:  # after the first trunk call, whose peak then does not include it
                    band = np.empty(((r1 - r0) * s, w * s, out_channels), np.float32)
                for (c0, c1, cs), o in zip(group, out):
                    if split:
                        self._tail_into_band(o, ((r0, r1, rs), (c0, c1, cs)), (h, w), band)
                    else:
                        band[:, c0 * s : c1 * s] = o[(r0 - rs) * s : (r1 - rs) * s, (c0 - cs) * s : (c1 - cs) * s]
                o = out = None  # free this batch's features before the next trunk call
            yield r0 * s, band
            band = None

    def _ticked(self, n: int) -> None:
        if self.tick is not None:
            self.tick(n)

    def _tail_into_band(self, trunk_out, core, hw, band) -> None:
        """Run the tail tiles on one trunk tile's features ``trunk_out``, writing its core into ``band``.

        ``core``: ((r0, r1, row window start), (c0, c1, column window start)) of the trunk tile;
        ``hw``: the model input's size.
        """
        (r0, r1, rs), (c0, c1, cs) = core
        margin, window = self.plan.tail_overlap, self.plan.tail_window
        (fa, fb), (ga, gb) = crop_with_margin(r0, r1, hw[0], margin), crop_with_margin(c0, c1, hw[1], margin)
        rows, win_h = tail_axis_windows(fb - fa, r0 - fa, r1 - fa, window, margin)
        cols, win_w = tail_axis_windows(gb - ga, c0 - ga, c1 - ga, window, margin)
        tiles = TailTiles(rows, cols, win_h, win_w, r0 - fa, c0 - ga)
        s = self.served.scale
        self._run_tail(trunk_out[fa - rs : fb - rs, ga - cs : gb - cs], tiles, band[:, c0 * s : c1 * s])

    def _run_tail(self, feat, tiles: TailTiles, out) -> None:
        """Tail-tile ``feat`` (h, w, C): write the HR cores of ``tiles`` into ``out``."""
        s, batch, tail = self.served.scale, self.plan.tail_batch, self.served.stage_runners[1]
        ro, co = tiles.row_offset, tiles.col_offset
        pairs = [(r, c) for r in tiles.rows for c in tiles.cols]
        for b0 in range(0, len(pairs), batch):
            group = pairs[b0 : b0 + batch]
            x = np.stack([feat[rs : rs + tiles.win_h, cs : cs + tiles.win_w] for (_, _, rs), (_, _, cs) in group])
            y = run_model(tail, x)
            for ((r0, r1, rs), (c0, c1, cs)), o in zip(group, y):
                out[(r0 - ro) * s : (r1 - ro) * s, (c0 - co) * s : (c1 - co) * s] = o[
                    (r0 - rs) * s : (r1 - rs) * s, (c0 - cs) * s : (c1 - cs) * s
                ]
            self._ticked(len(group))


def model_bands(model, x: np.ndarray, p: TilePlan, progress=None):
    """Yield (hr_row_start, band) of ``model`` applied to ``x`` (H, W, model channels) under ``p``."""
    return BandRun(serve(model), p, progress).bands(x)


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


@dataclass(frozen=True)
class ModelInput:
    """Where an (H, W) LR image sits in the model input: ``pad`` px of reflect pre-padding around
    it, then bottom/right padding to a multiple of ``multiple`` (module docstring)."""

    height: int
    width: int
    pad: int
    multiple: int

    @property
    def padded_hw(self) -> tuple[int, int]:
        h, w = self.height + 2 * self.pad, self.width + 2 * self.pad
        return h + -h % self.multiple, w + -w % self.multiple

    def padded(self, x: np.ndarray) -> np.ndarray:
        """``x`` (H, W, C) padded into the model input."""
        x = reflect_pad(x, self.pad)
        extra = (-x.shape[0] % self.multiple, -x.shape[1] % self.multiple)
        if any(extra):
            mode = "reflect" if min(x.shape[:2]) > self.multiple else "symmetric"
            x = np.pad(x, [(0, extra[0]), (0, extra[1]), (0, 0)], mode=mode)
        return x

    def cropped(self, bands, scale: int):
        """(hr_row_start, band) of the model input's output, shifted and cropped to the image."""
        lo_r, hi_r = self.pad * scale, (self.pad + self.height) * scale
        lo_c, hi_c = self.pad * scale, (self.pad + self.width) * scale
        for b0, full in bands:
            a, b = max(0, lo_r - b0), min(full.shape[0], hi_r - b0)
            if b > a:
                yield b0 + a - lo_r, full[a:b, lo_c:hi_c]
            full = None


def input_plan(served: ServedModel, hw, tile=None, max_memory=None, batch_size=None, overlap=None, channels=3):
    """(:class:`ModelInput`, :class:`~srkeras.inference.planning.TilePlan`) of an LR image of size ``hw``
    with ``channels`` channels: the one place where pre-padding and the size multiple meet the plan."""
    geometry = ModelInput(int(hw[0]), int(hw[1]), served.pre_pad, served.size_multiple)
    if geometry.multiple > 1:
        if tile not in (None, 0) and tile < max(geometry.padded_hw):
            raise ValueError(
                f"this model (PixelUnshuffle input: LR sizes multiple of {geometry.multiple}) runs untiled only; use --tile 0"
            )  # fmt: skip
        tile = 0
    return geometry, plan(served, geometry.padded_hw, tile, max_memory, batch_size, overlap, channels=channels)


def upscale_bands(model, image, tile=None, max_memory=None, batch_size=None, progress=None, overlap=None, alpha=None):
    """Generator of (hr_row_start, rgb_or_grey_band, alpha_band_or_None), clipped to [0, 1].

    Colour handling (module docstring): a Y-only model (1 input channel) on colour input is applied
    to BT.601 Y, with Cb/Cr upscaled bicubically (MATLAB imresize); on grey input, the grey image is
    taken as R=G=B (Y = 16/255 + 219/255 g) and mapped back. An RGB model on grey input sees the grey
    replicated and the result is returned as grey (BT.601 luma of the output). Alpha is upscaled
    bicubically. A model's pre-padding (:attr:`~srkeras.inference.served.ServedModel.pre_pad`) is applied.
    """
    img = np.asarray(image, dtype=np.float32)
    if img.ndim == 2:
        img = img[..., None]
    if img.ndim != 3 or img.shape[-1] not in (1, 3):
        raise ValueError(f"image must be (H, W, 1) or (H, W, 3), got shape {img.shape}")
    served = serve(model)
    s = served.scale
    image_c = img.shape[-1]
    x, to_image = _colour_path(img, served.channels, s)
    geometry, p = input_plan(served, x.shape[:2], tile, max_memory, batch_size, overlap, image_c)
    tick = progress if callable(progress) or progress is None else progress.update  # or a tqdm-like bar
    alpha = None if alpha is None else np.asarray(alpha, np.float32)
    for b0, full in geometry.cropped(BandRun(served, p, tick).bands(geometry.padded(x)), s):
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

    ``model``: a :class:`~srkeras.inference.served.ServedModel` (what ``load_generator`` returns) or a
    keras.Model. ``tile``: None = from the ``max_memory`` budget (bytes or '2GB'; default 2 GB),
    0 = untiled, N = core tile edge in LR pixels. ``progress``: None, a callable(n_tiles_done) or a
    tqdm bar (its total should be :func:`tile_count`). See :func:`upscale_bands` for colour handling.
    """
    bands = [b for _, b, _ in upscale_bands(model, image, tile, max_memory, batch_size, progress, overlap)]
    return bands[0] if len(bands) == 1 else np.concatenate(bands, axis=0)


def tile_count(model, image_shape, tile=None, max_memory=None, batch_size=None, overlap=None) -> int:
    """Number of tiles :func:`upscale` will run for an image of ``image_shape`` (for progress bars)."""
    c = image_shape[2] if len(image_shape) > 2 else 1
    geometry, p = input_plan(serve(model), image_shape[:2], tile, max_memory, batch_size, overlap, c)
    return count_tiles(geometry.padded_hw, p)


__all__ = ["BandRun", "ModelInput", "TailTiles", "bicubic_rows", "input_plan", "model_bands", "tile_count", "upscale", "upscale_bands"]
