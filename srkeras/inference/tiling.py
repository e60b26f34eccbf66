"""Tiled super-resolution with bounded memory whose stitched output equals the untiled one.

Why tiles must overlap. A fully convolutional generator's output pixel depends only on the LR
pixels within its receptive field of radius ``R`` (LR pixels). A tile cut out of the image sees
zero padding (or reflected borders) where the real image continues, which changes every output
pixel closer than ``R`` to the cut. So each tile is the *core* region we keep plus an overlap margin
``>= R`` on every side that is computed and thrown away; the kept cores then equal the untiled
result to float rounding. Image borders are real borders in both cases, so no margin is needed there.

How ``R`` is found (:func:`receptive_field`). Empirically, by probing with an impulse: run the
model on two base inputs (uniform noise and mid-grey, so a ReLU that is off at one base is on at
the other) and on the same inputs with their centre pixel moved by 1, and take the largest
Chebyshev distance, in LR pixels, of any output pixel that changed by more than ``tol`` (1e-5, far
below the 1/255 quantisation step and far above float32 rounding noise). The probe grows
(48 -> 96 -> 192 -> 384 LR pixels) until the changed region no longer touches its border; a model
whose change reaches every pixel (global pooling, attention) is reported as global (``None``):
tiling cannot be exact for it and :func:`upscale` warns. This works for any layer, custom ones
included, at the price of one probe per model (cached). The analytic radius of a deep model
(RRDBNet: 350+ convolutions) vastly overstates the distance at which anything measurable
happens; the probe measures the latter. The margin used is ``R + 2``.

Trunk and tail. Post-upsampling generators are split (:mod:`srkeras.inference.split`) into an LR
trunk (~1 KB of live activations per LR pixel for SRResNet) and an upsampling tail (~8 KB per LR
pixel, receptive field of a few LR pixels). The trunk runs on large tiles whose margin covers the
whole model's receptive field ``R``; each trunk tile's features, cropped to its core plus the
tail's margin ``R_tail + 2``, are tiled again with small tail tiles. The tail tiles reproduce
``model(trunk window)`` on the core exactly, and that equals the untiled output on the core by the
argument above. ``R_tail`` is probed on the trunk's features of the two base images. Models that
cannot be split (SRCNN upsamples first, ESPCN's tail is a bare PixelShuffle) run whole.

Tiles. Along each axis the image is covered by the fewest windows of at most the planned size;
all windows have one size (so they batch and the traced graph is reused) and are spread evenly,
each core ending halfway into the overlap with its neighbour, so the only pixels computed twice
are the margins the receptive field requires (border tiles need no margin on the border side).
``tile`` is the (largest) core edge in LR pixels (Real-ESRGAN's ``--tile`` convention); windows
are at most ``tile + 2 * overlap``. The image is processed one row of trunk tiles (a *band*) at
a time; only a batch of tiles is ever handed to the accelerator, and :func:`upscale_bands` yields
the output band by band for streaming writers.

Memory plan (``tile=None``). The budget covers the whole process; ``ACTIVATION_SHARE`` of it
(the rest is the TF runtime, weights, the input image: measured in benchmarks/bench_inference)
must hold the output band being filled (handed to the caller in chunks of ``CHUNK_BYTES``, so a
streaming writer never holds a second band) plus the larger of the trunk's live activations and
(trunk features + tail live activations). Live
activations per pixel come from walking the graph (:func:`~srkeras.inference.split.live_floats_per_pixel`)
times ``LIVE_SAFETY`` for executor and oneDNN layout copies. Among the window sizes that fit, the
plan takes the smallest estimated peak whose convolution FLOPs (overlaps included, plus a per-call
cost) are within ``PLAN_SLACK`` (3%) of the fewest. The FLOPs are flat near their minimum: once a
window is several receptive fields wide its overlap costs a few per cent, so the strictly cheapest
plan is usually whichever fills the budget, and its peak would grow with the image up to the
budget. The slack keeps the peak near what the model needs, nearly independent of image size.
"""

from __future__ import annotations

import dataclasses
import functools
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
LIVE_SAFETY = 2.0
CHUNK_BYTES = 8 * 1024**2  # upscale_bands yields output rows in pieces of about this size
CALL_FLOPS = 2e7  # per-call overhead (dispatch, padding, copies) counted as this many FLOPs
PLAN_SLACK = 0.03  # extra FLOPs the planner accepts for a smaller peak (module docstring)
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


def _input_channels(model) -> list:
    shapes = model.input_shape if isinstance(model.input_shape, list) else [model.input_shape]
    if any(sh[-1] is None for sh in shapes):
        raise ValueError("the model's input channel count is not fixed; build it with Input(shape=(None, None, C))")
    return [int(sh[-1]) for sh in shapes]


def model_channels(model) -> int:
    return _input_channels(model)[0]


def _runner(model):
    """A traced inference function on (N, H, W, C) float32 with dynamic N, H, W.

    A model with several inputs takes them concatenated along channels; several outputs come back
    concatenated the same way (trunk -> tail features travel as one array).
    """
    cache = _model_cache(model)
    if "runner" not in cache:
        import tensorflow as tf

        chans = _input_channels(model)
        # A weak reference: the runner lives in the model's entry of the weak-keyed cache, and a
        # strong one would keep every model ever run (weights included) alive in a long-lived app.
        ref = weakref.ref(model)

        @tf.function(input_signature=[tf.TensorSpec([None, None, None, sum(chans)], tf.float32)], reduce_retracing=True)
        def run(x):
            xs = x if len(chans) == 1 else tf.split(x, chans, axis=-1)
            y = ref()(xs, training=False)
            ys = [tf.cast(t, tf.float32) for t in (y if isinstance(y, (list, tuple)) else [y])]
            return ys[0] if len(ys) == 1 else tf.concat(ys, axis=-1)

        cache["runner"] = run
    return cache["runner"]


def run_model(model, batch: np.ndarray) -> np.ndarray:
    return np.asarray(_runner(model)(np.ascontiguousarray(batch, dtype=np.float32)))


def model_scale(model) -> int:
    """Integer upscaling factor of a generator, found by running it on a small probe."""
    cache = _model_cache(model)
    if "scale" not in cache:
        c = sum(_input_channels(model))
        n = 12
        out = run_model(model, np.full((1, n, n, c), 0.5, np.float32))
        sh, sw = out.shape[1] / n, out.shape[2] / n
        if sh != sw or sh != int(sh) or sh < 1:
            raise ValueError(f"model maps {n}x{n} to {out.shape[1]}x{out.shape[2]}: not an integer upscaler")
        cache["scale"] = int(sh)
    return cache["scale"]


def _bases(c: int, p: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.stack([rng.random((p, p, c), dtype=np.float32), np.full((p, p, c), 0.5, np.float32)])


def _probe_radius(model, make_bases, s: int, tol: float, max_probe: int) -> int | None:
    """Impulse probe (module docstring) of ``model`` (scale ``s``) on ``make_bases(p)`` inputs."""
    for p in [q for q in _PROBE_SIZES if q <= max_probe] or [max_probe]:
        base = make_bases(p)
        probe = base.copy()
        cy = p // 2
        v = probe[:, cy, cy, :]
        probe[:, cy, cy, :] = np.where(v > 0.5, v - 1.0, v + 1.0)
        # One image per call: the probe must not need more memory than the tiles it plans.
        diff = np.zeros((p * s, p * s), np.float32)
        for b, q in zip(base, probe):
            out_b = run_model(model, b[None])[0]
            diff = np.maximum(diff, np.abs(run_model(model, q[None])[0] - out_b).max(axis=-1))
            out_b = None
        ys, xs = np.nonzero(diff > tol)
        if ys.size == 0:
            return 0
        # Distance from the impulse's HR block [cy*s, cy*s + s) in HR pixels, then in LR pixels.
        dy = np.maximum(cy * s - ys, ys - (cy * s + s - 1)).clip(0)
        dx = np.maximum(cy * s - xs, xs - (cy * s + s - 1)).clip(0)
        r = int(math.ceil(max(dy.max(), dx.max()) / s))
        if r < cy - 2:
            return r
    return None


def receptive_field(model, tol: float = RF_TOL, max_probe: int = _PROBE_SIZES[-1]) -> int | None:
    """Effective receptive-field radius in LR pixels (see module docstring); None if global."""
    cache = _model_cache(model)
    key = ("rf", tol, max_probe)
    if key not in cache:
        c = model_channels(model)
        cache[key] = _probe_radius(model, lambda p: _bases(c, p), model_scale(model), tol, max_probe)
    return cache[key]


@dataclass
class _Parts:
    """How a model is run: whole (``tail`` None) or as trunk + tail, with margins and costs."""

    trunk: object | None  # None when not split: the model runs whole
    tail: object | None
    scale: int
    rf: int | None  # receptive field of the whole model (LR px)
    tail_rf: int | None
    trunk_bpp: float  # live bytes per LR pixel
    tail_bpp: float
    trunk_flops: float  # per LR pixel
    tail_flops: float
    feat_channels: int
    out_channels: int


def _live_bpp(model, s: int) -> float:
    from srkeras.inference.split import live_floats_per_pixel

    f = live_floats_per_pixel(model)
    if f is None:  # not a functional graph: assume a few 64-channel maps at HR
        f = 64.0 * s * s * 3 + 64.0 * 2
    return 4.0 * f * LIVE_SAFETY


def activation_bytes_per_pixel(model) -> float:
    """Peak live activation bytes per LR input pixel of the whole model (graph walk x LIVE_SAFETY)."""
    cache = _model_cache(model)
    if "bpp" not in cache:
        cache["bpp"] = _live_bpp(model, model_scale(model))
    return cache["bpp"]


def _parts(model) -> _Parts:
    cache = _model_cache(model)
    if "parts" in cache:
        return cache["parts"]
    from srkeras.inference.split import flops_per_pixel, split_generator

    s = model_scale(model)
    c = model_channels(model)
    sp = split_generator(model)
    rf = receptive_field(model)
    out_c = int(run_model(model, np.zeros((1, 4, 4, c), np.float32)).shape[-1])
    if sp is None:
        f = flops_per_pixel(model) or 1.0
        # trunk None: the model runs whole (a reference to it here would keep it alive, see _runner)
        parts = _Parts(None, None, s, rf, 0, activation_bytes_per_pixel(model), 0.0, f, 0.0, 0, out_c)
    else:
        trunk, tail = sp.trunk, sp.tail
        tail_rf = _probe_radius(tail, lambda p: run_model(trunk, _bases(c, p)), s, RF_TOL, _PROBE_SIZES[-1])
        parts = _Parts(
            trunk, tail, s, rf, tail_rf, _live_bpp(trunk, 1), _live_bpp(tail, s),
            flops_per_pixel(trunk) or 1.0, flops_per_pixel(tail) or 1.0, sp.feature_channels, out_c,
        )  # fmt: skip
    cache["parts"] = parts
    return parts


@dataclass
class TilePlan:
    tile: int  # largest trunk core height in LR px (the whole image when untiled)
    overlap: int  # trunk margin (includes the tail's margin when the model is split)
    batch_size: int
    exact: bool  # False when a receptive field is global or bigger than the overlap used
    tile_w: int = 0  # largest trunk core width (0: same as tile)
    tail_tile: int = 0  # largest tail core edge; 0: the model runs whole
    tail_overlap: int = 0
    tail_batch: int = 1

    def __post_init__(self):
        self.tile_w = self.tile_w or self.tile

    @property
    def window(self):
        return self.tile + 2 * self.overlap

    @property
    def tail_window(self):
        return self.tail_tile + 2 * self.tail_overlap

    @property
    def split(self) -> bool:
        return self.tail_tile > 0


@functools.lru_cache(maxsize=4096)
def _axis(n: int, max_win: int, overlap: int, fixed: bool = False):
    """Split [0, n) into the fewest windows of one size <= max_win (see module docstring).

    Returns ([(core_start, core_end, window_start)], window). Every core lies at least ``overlap``
    inside its window, except on the image border. ``fixed``: windows of exactly ``max_win``
    (when n > max_win), so that crops of different lengths still give one tile shape.
    """
    max_win = max(int(max_win), 2 * overlap + 1)
    if n <= max_win:
        return ((0, n, 0),), n
    k = math.ceil((n - 2 * overlap) / (max_win - 2 * overlap))
    win = max_win if fixed else math.ceil((n + 2 * (k - 1) * overlap) / k)
    while True:
        starts = [i * (n - win) // (k - 1) for i in range(k)]
        if all(starts[i] + win - starts[i + 1] >= 2 * overlap for i in range(k - 1)):
            break
        if fixed:
            k += 1
        else:
            win += 1
    bounds = [0] + [starts[i] + (starts[i - 1] + win - starts[i]) // 2 for i in range(1, k)] + [n]
    return tuple((bounds[i], bounds[i + 1], starts[i]) for i in range(k) if bounds[i] < bounds[i + 1]), win


def _tail_axis(n: int, lo: int, hi: int, max_win: int, overlap: int):
    """Tail windows over a feature crop of length n whose output is needed only for [lo, hi).

    Windows have the fixed size ``max_win``: the crops of the trunk tiles differ in length by a
    few pixels, and every distinct tile shape costs memory that stays allocated (oneDNN caches a
    convolution primitive, with its reordered weights, per input shape: ~6 MB per shape for
    SRResNet's tail, measured), so the memory would grow with the number of trunk tiles.
    """
    cores, win = _axis(int(n), int(max_win), int(overlap), True)
    return [(max(a, lo), min(b, hi), ws) for a, b, ws in cores if a < hi and b > lo], win


def _crop(c0, c1, n, margin):
    return max(c0 - margin, 0), min(c1 + margin, n)


def _margins(parts: _Parts, overlap):
    """(trunk margin, tail margin, exact).

    The trunk window's margin must cover the *whole model's* receptive field: the tail tiles
    reproduce ``model(window)`` on the core exactly (their own margin covers the tail's field), and
    ``model(window)`` equals ``model(image)`` on the core when the window reaches ``R + 2`` beyond it,
    as for an unsplit model. The trunk window must also contain the tail's feature margin.
    """
    if overlap is not None:
        o = int(overlap)
        return o, (o if parts.tail is not None else 0), True
    exact = parts.rf is not None and (parts.tail is None or parts.tail_rf is not None)
    if not exact:
        warnings.warn(
            "this model's receptive field is global (pooling/attention): tiled output will differ "
            "from untiled; use --tile 0 if the image fits in memory",
            stacklevel=4,
        )
    t = (parts.rf if parts.rf is not None else 32) + 2
    if parts.tail is None:
        return t, 0, exact
    o = (parts.tail_rf if parts.tail_rf is not None else 32) + 2
    return max(t, o), o, exact


def _band_bytes(parts: _Parts, core_h: int, w: int, img_channels: int) -> float:
    # The output band being filled (its chunks are handed out one by one, each converted in place
    # or copied: a few CHUNK_BYTES on top).
    band = core_h * parts.scale * w * parts.scale * 4.0 * max(parts.out_channels, img_channels)
    return band + 3 * min(band, CHUNK_BYTES)


def _plan_bytes(parts: _Parts, rows, win_r, win_c, p: "TilePlan", w: int, img_channels: int) -> float:
    core_h = max(b - a for a, b, _ in rows)
    trunk = parts.trunk_bpp * win_r * win_c * p.batch_size
    if p.split:
        feat = win_r * win_c * parts.feat_channels * 4.0 * p.batch_size
        tw = min(p.tail_window, max(win_r, win_c))
        trunk = max(trunk, feat + parts.tail_bpp * tw * tw * p.tail_batch)
    return _band_bytes(parts, core_h, w, img_channels) + trunk


def plan_bytes(model, shape_hw, p: "TilePlan", channels: int = 3) -> float:
    """Estimated peak bytes of activations and output bands of ``p`` (excluding the TF runtime)."""
    h, w = shape_hw
    rows, win_r = _axis(h, p.tile + 2 * p.overlap, p.overlap)
    _, win_c = _axis(w, p.tile_w + 2 * p.overlap, p.overlap)
    return _plan_bytes(_parts(model), rows, win_r, win_c, p, w, channels)


def work_ratio(model, shape_hw, p: "TilePlan") -> float:
    """Convolution FLOPs that ``p`` computes (overlaps included) over those of one untiled run."""
    h, w = shape_hw
    parts = _parts(model)
    rows, win_r = _axis(h, p.tile + 2 * p.overlap, p.overlap)
    cols, win_c = _axis(w, p.tile_w + 2 * p.overlap, p.overlap)
    work = parts.trunk_flops * len(rows) * win_r * len(cols) * win_c
    if p.split:
        work += parts.tail_flops * _tail_work(parts, rows, cols, h, w, p.tail_window, p.tail_overlap)[0]
    return work / ((parts.trunk_flops + parts.tail_flops) * h * w)


@functools.lru_cache(maxsize=65536)
def _tail_axis_work(cores, n: int, tail_win: int, o: int):
    """(sum of tail window lengths, number of tail windows) along one axis over all trunk cores."""
    length = calls = 0
    for c0, c1, _ in cores:
        a, b = _crop(c0, c1, n, o)
        t, win = _tail_axis(b - a, c0 - a, c1 - a, tail_win, o)
        length += len(t) * win
        calls += len(t)
    return length, calls


def _tail_work(parts, rows, cols, h, w, tail_win, o):
    """(sum of tail window areas, number of tail windows) over all trunk blocks."""
    ar, nr = _tail_axis_work(tuple(rows), h, tail_win, o)
    ac, nc = _tail_axis_work(tuple(cols), w, tail_win, o)
    return ar * ac, nr * nc


def _tail_candidates(rows, cols, h, w, max_win, o, min_win) -> set:
    """Tail window sizes worth trying: those that split the common crop lengths into k equal-ish
    windows exactly (fixed windows waste less when they fit), plus a geometric grid."""
    lengths = {b - a for cores, n in ((rows, h), (cols, w)) for c0, c1, _ in cores for a, b in [_crop(c0, c1, n, o)]}
    out = set(_grid(min_win, max_win, 6))
    for n in lengths:
        k0 = max(1, math.ceil((n - 2 * o) / max(max_win - 2 * o, 1)))
        for k in range(k0, k0 + 3):  # the largest windows that split this length evenly
            t = math.ceil((n + 2 * (k - 1) * o) / k)
            if min_win <= t <= max_win:
                out.add(t)
    return out


def _grid(lo: int, hi: int, n: int = 36) -> list:
    if hi <= lo:
        return [max(lo, hi)]
    return sorted({int(round(lo * (hi / lo) ** (i / (n - 1)))) for i in range(n)} | {hi})


def _auto_plan(parts: _Parts, h, w, budget, o_t, o_h, img_channels, exact, batch=1) -> TilePlan:
    """The least-memory window sizes within ``PLAN_SLACK`` of the fewest FLOPs that fit ``budget``.

    Every (trunk window, tail window) pair that fits is costed (overlap FLOPs + per-call
    overhead) and its peak estimated as in :func:`plan_bytes`; see the module docstring.
    """
    avail = ACTIVATION_SHARE * budget
    min_tail = 2 * o_h + 8
    cands = []  # (cost, bytes, plan)
    for wr in _grid(2 * o_t + 16, h, 24):
        rows, win_r = _axis(h, wr, o_t)
        core_h = max(b - a for a, b, _ in rows)
        band = _band_bytes(parts, core_h, w, img_channels)
        for wc in _grid(2 * o_t + 16, w, 24):
            cols, win_c = _axis(w, wc, o_t)
            trunk_mem = parts.trunk_bpp * win_r * win_c * batch
            if band + trunk_mem > avail:
                break
            calls = len(rows) * len(cols)
            cost = parts.trunk_flops * len(rows) * win_r * len(cols) * win_c + CALL_FLOPS * calls
            tile_r = win_r - 2 * o_t if len(rows) > 1 else h
            tile_c = win_c - 2 * o_t if len(cols) > 1 else w
            if parts.tail is None:
                cands.append((cost, band + trunk_mem, TilePlan(tile_r, o_t, batch, exact, tile_c)))
                continue
            feat = win_r * win_c * parts.feat_channels * 4.0 * batch
            tw = int(math.sqrt(max(avail - band - feat, 0) / (parts.tail_bpp * batch)))
            if tw < min_tail:
                continue
            for t in _tail_candidates(rows, cols, h, w, min(tw, max(win_r, win_c)), o_h, min_tail):
                area, k = _tail_work(parts, rows, cols, h, w, t, o_h)
                mem = band + max(trunk_mem, feat + parts.tail_bpp * t * t * batch)
                p = TilePlan(tile_r, o_t, batch, exact, tile_c, t - 2 * o_h, o_h, batch)
                cands.append((cost + parts.tail_flops * area + CALL_FLOPS * k, mem, p))
    if not cands:
        tile = 16
        warnings.warn(f"memory budget of {budget / 1e9:.2f} GB is tight for this model; using {tile}px tiles", stacklevel=4)
        return TilePlan(tile, o_t, batch, exact, tile, tile if parts.tail is not None else 0, o_h, batch)
    cheapest = min(c for c, _, _ in cands)
    return min((m, c, i) + (p,) for i, (c, m, p) in enumerate(cands) if c <= cheapest * (1 + PLAN_SLACK))[-1]


def plan(model, shape_hw, tile=None, max_memory=None, batch_size=None, overlap=None, channels=3) -> TilePlan:
    """Choose tile sizes, overlaps and batches from an explicit ``tile`` or a memory budget.

    ``tile=0`` means untiled (one call of the whole model on the whole image). ``tile=N`` uses
    cores of at most N LR pixels for the trunk and for the tail. ``tile=None`` picks the window
    sizes that fit ``max_memory`` (default 2 GB) with the least work (module docstring).
    ``channels`` is the image's channel count (sizes the output bands).
    """
    h, w = shape_hw
    if tile == 0:
        return TilePlan(tile=h, overlap=0, batch_size=1, exact=True, tile_w=w)
    key = ("plan", h, w, tile, parse_memory(max_memory), batch_size, overlap, channels)
    cache = _model_cache(model)
    if key not in cache:  # tile_count() and upscale_bands() plan the same image: search once
        cache[key] = _plan(model, h, w, tile, max_memory, batch_size, overlap, channels)
    return dataclasses.replace(cache[key])


def _plan(model, h, w, tile, max_memory, batch_size, overlap, channels) -> TilePlan:
    parts = _parts(model)
    o_t, o_h, exact = _margins(parts, overlap)
    budget = parse_memory(max_memory) or DEFAULT_MAX_MEMORY
    if tile is None:
        p = _auto_plan(parts, h, w, budget, o_t, o_h, channels, exact, int(batch_size or 1))
    else:
        tile = int(tile)
        if tile < 1:
            raise ValueError(f"tile must be positive (or 0 for untiled), got {tile}")
        p = TilePlan(min(tile, h), o_t, 1, exact, min(tile, w), tile if parts.tail is not None else 0, o_h, 1)
        cols, win_c = _axis(w, p.tile_w + 2 * o_t, o_t)
        _, win_r = _axis(h, p.tile + 2 * o_t, o_t)
        p.batch_size = int(max(1, min(len(cols), 16, budget // max(parts.trunk_bpp * win_r * win_c, 1))))
        if p.split:
            tw = min(p.tail_window, win_r, win_c)
            p.tail_batch = int(max(1, min(16, budget // max(parts.tail_bpp * tw * tw, 1))))
    if batch_size is not None:
        p.batch_size = p.tail_batch = int(batch_size)
    return p


def count_tiles(shape_hw, p: TilePlan) -> int:
    """Trunk tiles plus tail tiles that :func:`upscale` runs for an image of ``shape_hw`` under ``p``."""
    h, w = shape_hw
    rows, _ = _axis(h, p.tile + 2 * p.overlap, p.overlap)
    cols, _ = _axis(w, p.tile_w + 2 * p.overlap, p.overlap)
    n = len(rows) * len(cols)
    if p.split:
        o = p.tail_overlap
        nr = sum(len(_tail_axis(b - a, c0 - a, c1 - a, p.tail_window, o)[0]) for c0, c1, _ in rows for a, b in [_crop(c0, c1, h, o)])
        nc = sum(len(_tail_axis(b - a, c0 - a, c1 - a, p.tail_window, o)[0]) for c0, c1, _ in cols for a, b in [_crop(c0, c1, w, o)])
        n += nr * nc
    return n


def _run_tail(tail, feat, rows, cols, win_r, win_c, s, batch, out, r_off, c_off, tick):
    """Tail-tile ``feat`` (h, w, C): write the HR cores of ``rows`` x ``cols`` into ``out``.

    ``out`` row 0 / column 0 correspond to feature row ``r_off`` / column ``c_off``.
    """
    tiles = [(r, c) for r in rows for c in cols]
    for b0 in range(0, len(tiles), batch):
        group = tiles[b0 : b0 + batch]
        x = np.stack([feat[rs : rs + win_r, cs : cs + win_c] for (_, _, rs), (_, _, cs) in group])
        y = run_model(tail, x)
        for ((r0, r1, rs), (c0, c1, cs)), o in zip(group, y):
            out[(r0 - r_off) * s : (r1 - r_off) * s, (c0 - c_off) * s : (c1 - c_off) * s] = o[
                (r0 - rs) * s : (r1 - rs) * s, (c0 - cs) * s : (c1 - cs) * s
            ]
        if tick is not None:
            tick(len(group))


def _model_bands(model, x: np.ndarray, p: TilePlan, s: int, progress):
    """Yield (hr_row_start, band) for the model applied to x (H, W, C) with the model's channels."""
    h, w = x.shape[:2]
    if p.overlap == 0 and p.tile >= h and p.tile_w >= w and not p.split:  # untiled
        yield 0, run_model(model, x[None])[0]
        if progress is not None:
            progress(1)
        return
    parts = _parts(model)
    split = p.split and parts.tail is not None
    stage1 = parts.trunk if split else model
    o_h = p.tail_overlap if split else 0
    rows, win_r = _axis(h, p.tile + 2 * p.overlap, p.overlap)
    cols, win_c = _axis(w, p.tile_w + 2 * p.overlap, p.overlap)
    for r0, r1, rs in rows:
        band = None
        for b0 in range(0, len(cols), p.batch_size):
            group = cols[b0 : b0 + p.batch_size]
            out = run_model(stage1, np.stack([x[rs : rs + win_r, cs : cs + win_c] for _, _, cs in group]))
            if progress is not None:
                progress(len(group))
            if band is None:
                band = np.empty(((r1 - r0) * s, w * s, parts.out_channels), np.float32)
            for (c0, c1, cs), o in zip(group, out):
                if not split:
                    band[:, c0 * s : c1 * s] = o[(r0 - rs) * s : (r1 - rs) * s, (c0 - cs) * s : (c1 - cs) * s]
                    continue
                (fa, fb), (ga, gb) = _crop(r0, r1, h, o_h), _crop(c0, c1, w, o_h)
                feat = o[fa - rs : fb - rs, ga - cs : gb - cs]
                trows, twr = _tail_axis(fb - fa, r0 - fa, r1 - fa, p.tail_window, o_h)
                tcols, twc = _tail_axis(gb - ga, c0 - ga, c1 - ga, p.tail_window, o_h)
                _run_tail(parts.tail, feat, trows, tcols, twr, twc, s, p.tail_batch, band[:, c0 * s : c1 * s],
                          r0 - fa, c0 - ga, progress)  # fmt: skip
            o = feat = out = None  # free this batch's features before the next trunk call
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
    p = plan(model, x.shape[:2], tile, max_memory, batch_size, overlap, channels=c)
    if callable(progress) or progress is None:
        tick = progress
    else:  # a tqdm-like object
        tick = progress.update
    for b0, full in _model_bands(model, x, p, s, tick):
        # Hand the band out in chunks of ~CHUNK_BYTES: the caller's work per piece (colour
        # conversion here, PNG filtering and compression in a streaming writer) then needs memory
        # for a chunk, not for a whole band of the trunk tile's height.
        step = max(1, int(CHUNK_BYTES // (full.shape[1] * max(c, full.shape[-1]) * 4)))
        for a in range(0, full.shape[0], step):
            band = full[a : a + step]
            r0, r1 = b0 + a, b0 + a + band.shape[0]
            if cm == 1 and c == 3:
                cbcr = bicubic_rows(ycc[..., 1:], s, r0, r1)
                band = ycbcr_to_rgb(np.concatenate([band, cbcr], axis=-1)).astype(np.float32)
            elif cm == 1:
                band = (band * 255.0 - 16.0) / 219.0
            elif c == 1:
                band = rgb_to_y_full(band)
            al = None if alpha is None else np.clip(bicubic_rows(np.asarray(alpha, np.float32), s, r0, r1), 0, 1)
            # A new array (not a view of the band): what the caller keeps must not pin the band.
            yield r0, np.clip(band, 0.0, 1.0), al
            band = None
        full = None


def rgb_to_y_full(rgb: np.ndarray) -> np.ndarray:
    """Full-range BT.601 luma (0.299, 0.587, 0.114) as (H, W, 1): grey from an RGB model's output."""
    return (rgb @ np.array([0.299, 0.587, 0.114], np.float32))[..., None].astype(np.float32)


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
    p = plan(model, image_shape[:2], tile, max_memory, batch_size, overlap, channels=c)
    return count_tiles(image_shape[:2], p)


__all__ = [
    "DEFAULT_MAX_MEMORY",
    "TilePlan",
    "activation_bytes_per_pixel",
    "bicubic_rows",
    "count_tiles",
    "model_scale",
    "parse_memory",
    "plan",
    "receptive_field",
    "rgb_to_y_full",
    "plan_bytes",
    "tile_count",
    "upscale",
    "upscale_bands",
    "work_ratio",
]
