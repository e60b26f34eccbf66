"""Tile planning: window sizes, margins and batches from an explicit tile size or a memory budget.

Tiles. Along each axis the image is covered by the fewest windows of at most the planned size
(:func:`axis_windows`); all windows have one size (so they batch and the traced graph is reused)
and are spread evenly, each core ending halfway into the overlap with its neighbour, so the only
pixels computed twice are the margins the receptive field requires (border tiles need no margin
on the border side; margins come from :meth:`srkeras.inference.served.ServedModel.margins`). ``tile`` is the
(largest) core edge in LR pixels (Real-ESRGAN's ``--tile`` convention); windows are at most
``tile + 2 * overlap``. A split model's trunk runs on large tiles whose margin covers the whole
model's receptive field ``R``; each trunk tile's features, cropped to its core plus the tail's
margin ``R_tail + 2``, are tiled again with small tail tiles (:mod:`srkeras.inference.running`).

Memory plan (``tile=None``). The budget covers the whole process; ``ACTIVATION_SHARE`` of it
(the rest is the TF runtime, weights, the input image: measured in benchmarks/bench_inference)
must hold the output band being filled (handed to the caller in chunks of ``CHUNK_BYTES``, so a
streaming writer never holds a second band) plus the larger of the trunk's live activations and
(trunk features + tail live activations). Among the window sizes that fit, the plan takes the
smallest estimated peak whose convolution FLOPs (overlaps included, plus a per-call cost) are
within ``PLAN_SLACK`` (3%) of the fewest. The FLOPs are flat near their minimum: once a window is
several receptive fields wide its overlap costs a few per cent, so the strictly cheapest plan is
usually whichever fills the budget, and its peak would grow with the image up to the budget. The
slack keeps the peak near what the model needs, nearly independent of image size.

The impulse probe (:mod:`srkeras.inference.probing`), when a model's tile margins need it, is held to
the same budget: each probe size is one untiled window, estimated by :func:`plan_bytes` like any tile
plus the two HR maps the probe keeps beside the output (:func:`probe_bytes`); only the sizes that fit
``ACTIVATION_SHARE`` of the budget run (:func:`limit_probe`), and a budget too small for the smallest
is refused (:class:`ProbeMemoryError`) before the probe starts.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import warnings
from dataclasses import dataclass

from srkeras.inference import probing
from srkeras.inference.served import Margins, ServedModel, serve

DEFAULT_MAX_MEMORY = 2 * 1024**3
ACTIVATION_SHARE = 0.6
CHUNK_BYTES = 8 * 1024**2  # upscale_bands yields output rows in pieces of about this size
CALL_FLOPS = 2e7  # per-call overhead (dispatch, padding, copies) counted as this many FLOPs
PLAN_SLACK = 0.03  # extra FLOPs the planner accepts for a smaller peak (module docstring)
TIGHT_TILE = 16  # tile edge used when no window fits the budget
BOUND_WASTE = 1.25  # a plan from the analytic receptive-field bound computing more than this x the untiled
# FLOPs: the effective receptive field is probed once instead (served.ServedModel.bound_margins)


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


def parse_memory_budget(value) -> int:
    """A memory budget the user typed ('2GB', '512MiB'...) as a positive number of bytes; ValueError
    (saying what is accepted) for anything else. Used by ``pipelines.upscale`` and the Try-it page."""
    try:
        n = parse_memory(value)
    except (ValueError, OverflowError):
        n = None
    if n is None:
        raise ValueError(f"{str(value).strip()!r} is not a memory size: give one such as 2GB, 512MB or 1.5GiB")
    if n <= 0:
        raise ValueError(f"{str(value).strip()!r} is not more than 0 bytes: give a size such as 2GB, 512MB or 1.5GiB")
    return n


@dataclass(kw_only=True)
class TilePlan:
    """Tile sizes (cores, LR px), margins and batches for the trunk and, when split, the tail."""

    tile: int  # largest trunk core height in LR px (the whole image when untiled)
    overlap: int  # trunk margin (includes the tail's margin when the model is split)
    batch_size: int  # trunk tiles per model call
    exact: bool  # False when a receptive field is global or bigger than the overlap used
    tile_w: int = 0  # largest trunk core width (0: same as tile)
    tail_tile: int = 0  # largest tail core edge; 0: the model runs whole
    tail_overlap: int = 0  # tail margin
    tail_batch: int = 1  # tail tiles per model call

    def __post_init__(self):
        self.tile_w = self.tile_w or self.tile

    @property
    def window(self) -> int:
        """Largest trunk window height: core plus both margins."""
        return self.tile + 2 * self.overlap

    @property
    def window_w(self) -> int:
        """Largest trunk window width."""
        return self.tile_w + 2 * self.overlap

    @property
    def tail_window(self) -> int:
        return self.tail_tile + 2 * self.tail_overlap

    @property
    def split(self) -> bool:
        return self.tail_tile > 0


@functools.lru_cache(maxsize=4096)
def axis_windows(n: int, max_win: int, margin: int, fixed: bool = False):
    """Split [0, n) into the fewest windows of one size <= max_win (see module docstring).

    Returns ([(core_start, core_end, window_start)], window). Every core lies at least ``margin``
    inside its window, except on the image border. ``fixed``: windows of exactly ``max_win``
    (when n > max_win), so that crops of different lengths still give one tile shape.
    """
    max_win = max(int(max_win), 2 * margin + 1)
    if n <= max_win:
        return ((0, n, 0),), n
    k = math.ceil((n - 2 * margin) / (max_win - 2 * margin))
    win = max_win if fixed else math.ceil((n + 2 * (k - 1) * margin) / k)
    while True:
        starts = [i * (n - win) // (k - 1) for i in range(k)]
        if all(starts[i] + win - starts[i + 1] >= 2 * margin for i in range(k - 1)):
            break
        if fixed:
            k += 1
        else:
            win += 1
    bounds = [0] + [starts[i] + (starts[i - 1] + win - starts[i]) // 2 for i in range(1, k)] + [n]
    return tuple((bounds[i], bounds[i + 1], starts[i]) for i in range(k) if bounds[i] < bounds[i + 1]), win


def tail_axis_windows(n: int, lo: int, hi: int, max_win: int, margin: int):
    """Tail windows over a feature crop of length n whose output is needed only for [lo, hi).

    Windows have the fixed size ``max_win``: the crops of the trunk tiles differ in length by a
    few pixels, and every distinct tile shape costs memory that stays allocated (oneDNN caches a
    convolution primitive, with its reordered weights, per input shape: ~6 MB per shape for
    SRResNet's tail, measured), so the memory would grow with the number of trunk tiles.
    """
    cores, win = axis_windows(int(n), int(max_win), int(margin), True)
    return [(max(a, lo), min(b, hi), ws) for a, b, ws in cores if a < hi and b > lo], win


def crop_with_margin(start: int, end: int, n: int, margin: int) -> tuple[int, int]:
    """[start, end) widened by ``margin`` on both sides, clipped to [0, n)."""
    return max(start - margin, 0), min(end + margin, n)


def trunk_windows(p: TilePlan, h: int, w: int):
    """(row cores, window height, column cores, window width) of the trunk tiles of ``p``."""
    rows, win_h = axis_windows(h, p.window, p.overlap)
    cols, win_w = axis_windows(w, p.window_w, p.overlap)
    return rows, win_h, cols, win_w


# ------------------------------------------------------------------------------------------------
# Costs: memory and FLOPs of a plan
# ------------------------------------------------------------------------------------------------


def _band_bytes(served: ServedModel, core_h: int, w: int, img_channels: int) -> float:
    # The output band being filled (its chunks are handed out one by one, each converted in place
    # or copied: a few CHUNK_BYTES on top).
    band = core_h * served.scale * w * served.scale * 4.0 * max(served.costs.out_channels, img_channels)
    return band + 3 * min(band, CHUNK_BYTES)


def plan_bytes(model, shape_hw, p: TilePlan, channels: int = 3) -> float:
    """Estimated peak bytes of activations and output bands of ``p`` (excluding the TF runtime)."""
    h, w = shape_hw
    served = serve(model)
    costs = served.costs
    rows, win_h, _, win_w = trunk_windows(p, h, w)
    core_h = max(b - a for a, b, _ in rows)
    trunk = costs.trunk_live_bytes * win_h * win_w * p.batch_size
    if p.split:
        feat = win_h * win_w * costs.feat_channels * 4.0 * p.batch_size
        tail_win = min(p.tail_window, max(win_h, win_w))
        trunk = max(trunk, feat + costs.tail_live_bytes * tail_win * tail_win * p.tail_batch)
    return _band_bytes(served, core_h, w, channels) + trunk


class ProbeMemoryError(ValueError):
    """The memory budget is too small for the smallest impulse probe of a model (nothing was run)."""


def probe_bytes(model, size: int, channels: int = 3) -> float:
    """Estimated peak bytes of one impulse-probe run on ``size`` x ``size`` LR px: :func:`plan_bytes` of that
    untiled window (as trunk and, when split, tail tile) plus the base output and the difference map the
    probe keeps (:func:`srkeras.inference.probing.measure_receptive_field`)."""
    served = serve(model)
    p = TilePlan(tile=size, overlap=0, batch_size=1, exact=True, tail_tile=size if served.split is not None else 0)
    kept = (size * served.scale) ** 2 * 4.0 * (served.costs.out_channels + 1)
    return plan_bytes(served, (size, size), p, channels) + kept


def probe_sizes(model, max_memory=None, channels: int = 3) -> tuple[int, ...]:
    """The sizes of :data:`~srkeras.inference.probing.PROBE_SIZES` whose :func:`probe_bytes` fit
    ``ACTIVATION_SHARE`` of ``max_memory`` (default 2 GB), as a tile must; :class:`ProbeMemoryError`
    (saying what the smallest needs) when none does."""
    budget = parse_memory(max_memory) or DEFAULT_MAX_MEMORY
    need = {p: probe_bytes(model, p, channels) for p in probing.PROBE_SIZES}
    fits = tuple(p for p, b in need.items() if b <= ACTIVATION_SHARE * budget)
    if not fits:
        p = probing.PROBE_SIZES[0]
        raise ProbeMemoryError(
            f"this model's receptive field must be measured (impulse probe) to tile it, and its smallest probe "
            f"({p}x{p} LR px) needs about {need[p] / ACTIVATION_SHARE / 1e9:.2f} GB of budget, more than the "
            f"{budget / 1e9:.2f} GB allowed: raise --max-memory (max_memory) to at least that, or give --tile 0 "
            "(untiled) for images that fit"
        )
    return fits


def limit_probe(model, max_memory=None, channels: int = 3) -> ServedModel:
    """Hold the impulse probe of ``model`` to ``max_memory`` (:func:`probe_sizes`) when one is still
    pending (:meth:`~srkeras.inference.served.ServedModel.probe_pending`); raises :class:`ProbeMemoryError`
    before any probe runs. Returns the served model."""
    served = serve(model)
    if served.probe_pending():
        served.probe_sizes = probe_sizes(served, max_memory, channels)
    return served


@functools.lru_cache(maxsize=65536)
def _tail_axis_work(cores, n: int, tail_win: int, margin: int):
    """(sum of tail window lengths, number of tail windows) along one axis over all trunk cores."""
    length = calls = 0
    for c0, c1, _ in cores:
        a, b = crop_with_margin(c0, c1, n, margin)
        windows, win = tail_axis_windows(b - a, c0 - a, c1 - a, tail_win, margin)
        length += len(windows) * win
        calls += len(windows)
    return length, calls


def _tail_work(rows, cols, h, w, tail_win, margin):
    """(sum of tail window areas, number of tail windows) over all trunk blocks."""
    len_r, n_r = _tail_axis_work(tuple(rows), h, tail_win, margin)
    len_c, n_c = _tail_axis_work(tuple(cols), w, tail_win, margin)
    return len_r * len_c, n_r * n_c


def work_ratio(model, shape_hw, p: TilePlan) -> float:
    """Convolution FLOPs that ``p`` computes (overlaps included) over those of one untiled run."""
    h, w = shape_hw
    costs = serve(model).costs
    rows, win_h, cols, win_w = trunk_windows(p, h, w)
    work = costs.trunk_flops * len(rows) * win_h * len(cols) * win_w
    if p.split:
        work += costs.tail_flops * _tail_work(rows, cols, h, w, p.tail_window, p.tail_overlap)[0]
    return work / ((costs.trunk_flops + costs.tail_flops) * h * w)


def count_tiles(shape_hw, p: TilePlan) -> int:
    """Trunk tiles plus tail tiles that :func:`~srkeras.inference.upscale` runs for ``shape_hw`` under ``p``."""
    h, w = shape_hw
    rows, _, cols, _ = trunk_windows(p, h, w)
    n = len(rows) * len(cols)
    if p.split:
        n += _tail_work(rows, cols, h, w, p.tail_window, p.tail_overlap)[1]
    return n


# ------------------------------------------------------------------------------------------------
# Planning
# ------------------------------------------------------------------------------------------------


def _tail_candidates(rows, cols, h, w, max_win, margin, min_win) -> set:
    """Tail window sizes worth trying: those that split the common crop lengths into k equal-ish
    windows exactly (fixed windows waste less when they fit), plus a geometric grid."""
    lengths = {b - a for cores, n in ((rows, h), (cols, w)) for c0, c1, _ in cores
               for a, b in [crop_with_margin(c0, c1, n, margin)]}  # fmt: skip
    out = set(_grid(min_win, max_win, 6))
    for n in lengths:
        k0 = max(1, math.ceil((n - 2 * margin) / max(max_win - 2 * margin, 1)))
        for k in range(k0, k0 + 3):  # the largest windows that split this length evenly
            t = math.ceil((n + 2 * (k - 1) * margin) / k)
            if min_win <= t <= max_win:
                out.add(t)
    return out


def _grid(lo: int, hi: int, n: int = 36) -> list:
    if hi <= lo:
        return [max(lo, hi)]
    return sorted({int(round(lo * (hi / lo) ** (i / (n - 1)))) for i in range(n)} | {hi})


@dataclass(frozen=True)
class PlanRequest:
    """What a plan is asked for (and the key of :attr:`ServedModel.plans <srkeras.inference.served.ServedModel.plans>`)."""

    height: int
    width: int
    tile: int | None  # None: from the budget
    budget: int  # bytes
    batch_size: int | None
    overlap: int | None
    channels: int  # the image's (sizes the output bands)


def _budget_plan(served: ServedModel, req: PlanRequest, m: Margins) -> TilePlan:
    """The least-memory window sizes within ``PLAN_SLACK`` of the fewest FLOPs that fit the budget.

    Every (trunk window, tail window) pair that fits is costed (overlap FLOPs + per-call
    overhead) and its peak estimated as in :func:`plan_bytes`; see the module docstring.
    """
    h, w, batch, costs = req.height, req.width, int(req.batch_size or 1), served.costs
    avail = ACTIVATION_SHARE * req.budget
    min_tail = 2 * m.tail + 8
    common = {"overlap": m.trunk, "batch_size": batch, "exact": m.exact}
    cands = []  # (flops, bytes, plan)
    for max_h in _grid(2 * m.trunk + 16, h, 24):
        rows, win_h = axis_windows(h, max_h, m.trunk)
        band = _band_bytes(served, max(b - a for a, b, _ in rows), w, req.channels)
        for max_w in _grid(2 * m.trunk + 16, w, 24):
            cols, win_w = axis_windows(w, max_w, m.trunk)
            trunk_mem = costs.trunk_live_bytes * win_h * win_w * batch
            if band + trunk_mem > avail:
                break
            flops = costs.trunk_flops * len(rows) * win_h * len(cols) * win_w + CALL_FLOPS * len(rows) * len(cols)
            cores = {"tile": win_h - 2 * m.trunk if len(rows) > 1 else h,
                     "tile_w": win_w - 2 * m.trunk if len(cols) > 1 else w}  # fmt: skip
            if served.split is None:
                cands.append((flops, band + trunk_mem, TilePlan(**common, **cores)))
                continue
            feat = win_h * win_w * costs.feat_channels * 4.0 * batch
            largest_tail = int(math.sqrt(max(avail - band - feat, 0) / (costs.tail_live_bytes * batch)))
            if largest_tail < min_tail:
                continue
            for t in _tail_candidates(rows, cols, h, w, min(largest_tail, max(win_h, win_w)), m.tail, min_tail):
                area, calls = _tail_work(rows, cols, h, w, t, m.tail)
                mem = band + max(trunk_mem, feat + costs.tail_live_bytes * t * t * batch)
                p = TilePlan(**common, **cores, tail_tile=t - 2 * m.tail, tail_overlap=m.tail, tail_batch=batch)
                cands.append((flops + costs.tail_flops * area + CALL_FLOPS * calls, mem, p))
    if not cands:
        warnings.warn(f"memory budget of {req.budget / 1e9:.2f} GB is tight for this model; using {TIGHT_TILE}px tiles",
                      stacklevel=3)  # fmt: skip
        tail_tile = TIGHT_TILE if served.split is not None else 0
        return TilePlan(**common, tile=TIGHT_TILE, tile_w=TIGHT_TILE, tail_tile=tail_tile, tail_overlap=m.tail,
                        tail_batch=batch)  # fmt: skip
    fewest = min(f for f, _, _ in cands)
    return min((mem, f, i, p) for i, (f, mem, p) in enumerate(cands) if f <= fewest * (1 + PLAN_SLACK))[-1]


def _tile_plan(served: ServedModel, req: PlanRequest, m: Margins) -> TilePlan:
    """Plan for an explicit core edge ``req.tile``: batches as large as the budget allows (at most 16)."""
    h, w, tile, costs = req.height, req.width, int(req.tile), served.costs
    if tile < 1:
        raise ValueError(f"tile must be positive (or 0 for untiled), got {tile}")
    p = TilePlan(tile=min(tile, h), tile_w=min(tile, w), overlap=m.trunk, batch_size=1, exact=m.exact,
                 tail_tile=tile if served.split is not None else 0, tail_overlap=m.tail)  # fmt: skip
    _, win_h, cols, win_w = trunk_windows(p, h, w)
    p.batch_size = int(max(1, min(len(cols), 16, req.budget // max(costs.trunk_live_bytes * win_h * win_w, 1))))
    if p.split:
        tail_win = min(p.tail_window, win_h, win_w)
        p.tail_batch = int(max(1, min(16, req.budget // max(costs.tail_live_bytes * tail_win * tail_win, 1))))
    return p


SMALL_PIXELS = 64 * 64  # LR px: an image this small runs whole when a generous per-pixel bound fits the budget
SMALL_FLOATS_PER_PIXEL = 256 * 16 * 3  # live floats per LR px assumed for it (256 channels at x4, 3 live maps)


def _small_image(served: ServedModel, h: int, w: int, max_memory) -> bool:
    """Whether an h x w image is small enough to run untiled without measuring the model's costs (a
    graph walk and a trunk/tail split: seconds for a deep model, the start-up of a thumbnail's run)."""
    if h * w > SMALL_PIXELS:
        return False
    scale = served.facts.scale or 4
    need = h * w * SMALL_FLOATS_PER_PIXEL * max(1.0, (scale / 4) ** 2) * 4.0 * 2.0
    return need <= ACTIVATION_SHARE * (parse_memory(max_memory) or DEFAULT_MAX_MEMORY)


def _probed_plan(served: ServedModel, req: PlanRequest, bound_plan: TilePlan, overlap) -> TilePlan:
    """The plan after measuring the effective receptive field, or ``bound_plan`` (exact, wider margins)
    when the budget cannot hold the probe: the probe is only an optimisation here."""
    try:
        served.probe_sizes = probe_sizes(served, req.budget, req.channels)
    except ProbeMemoryError:
        served.note("the memory budget is too small for the impulse probe: keeping the analytic margins")
        return bound_plan
    served.note("the analytic receptive field makes these tiles wasteful; measuring the effective one once (impulse probe)")
    served.measure_fields()
    m = served.margins(overlap)
    return _budget_plan(served, req, m) if req.tile is None else _tile_plan(served, req, m)


def plan(model, shape_hw, tile=None, max_memory=None, batch_size=None, overlap=None, channels=3) -> TilePlan:
    """Choose tile sizes, overlaps and batches from an explicit ``tile`` or a memory budget.

    ``tile=0`` means untiled (one call of the whole model on the whole image). ``tile=N`` uses
    cores of at most N LR pixels for the trunk and for the tail. ``tile=None`` picks the window
    sizes that fit ``max_memory`` (default 2 GB) with the least work (module docstring).
    ``channels`` is the image's channel count (sizes the output bands). ``model``: a
    :class:`~srkeras.inference.served.ServedModel` or a keras.Model.
    """
    h, w = shape_hw
    if tile == 0:
        return TilePlan(tile=h, tile_w=w, overlap=0, batch_size=1, exact=True)
    served = serve(model)
    if tile is None and overlap is None and _small_image(served, h, w, max_memory):
        return TilePlan(tile=h, tile_w=w, overlap=0, batch_size=1, exact=True)
    req = PlanRequest(h, w, tile, parse_memory(max_memory) or DEFAULT_MAX_MEMORY, batch_size, overlap, channels)
    if req not in served.plans:  # tile_count() and upscale_bands() plan the same image: search once
        if overlap is None:
            limit_probe(served, req.budget, channels)
        m = served.margins(overlap)
        p = _budget_plan(served, req, m) if tile is None else _tile_plan(served, req, m)
        if m.bound and work_ratio(served, (h, w), p) > BOUND_WASTE:  # deep model, large image: probe once
            p = _probed_plan(served, req, p, overlap)
        if batch_size is not None:
            p = dataclasses.replace(p, batch_size=int(batch_size), tail_batch=int(batch_size))
        served.plans[req] = p
    return dataclasses.replace(served.plans[req])


__all__ = [
    "ACTIVATION_SHARE",
    "BOUND_WASTE",
    "CHUNK_BYTES",
    "DEFAULT_MAX_MEMORY",
    "PLAN_SLACK",
    "PlanRequest",
    "ProbeMemoryError",
    "TilePlan",
    "axis_windows",
    "count_tiles",
    "crop_with_margin",
    "limit_probe",
    "parse_memory",
    "parse_memory_budget",
    "plan",
    "plan_bytes",
    "probe_bytes",
    "probe_sizes",
    "tail_axis_windows",
    "trunk_windows",
    "work_ratio",
]
