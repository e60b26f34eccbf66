"""'Try it': upload a photo, get it back super-resolved (``streamlit run mos_app/try_it.py``).

A separate entry point from the blind rating app on purpose: this page names models, rater pages
never may. Visitors pick among the installed models only (:func:`model_choices`): the model store
(``$SRKERAS_MODEL_DIR``, default ``~/.srkeras/models``: ``*.keras`` files and training run folders)
plus what the server's admin lists in ``$TRYIT_MODEL_PATHS``; no visitor input names a path. The image goes through
the same tiled path as ``pipelines.upscale`` (bounded memory, so a 12-megapixel phone photo works).
Bicubic and SR are shown side by side with one zoom and one crop centre for both, pixel-exact
(nearest-neighbour magnification of the same crop).

Memory: a 12-megapixel photo at x4 is 192 output megapixels, 2.3 GB as one float32 array (and
4.6 GB for a float64 bicubic). :func:`super_resolve` therefore encodes the download PNG with
:func:`srkeras.inference.upscale_to_png` (the input's bit depth, alpha and ICC profile, as
``pipelines.upscale`` writes it), which takes the SR output band by band from the tiled path, and
keeps only 8-bit copies of SR and bicubic for display while the bands go by;
benchmarks/bench_inference.py measures its peak.

Limits of the page (a server anyone may upload to): an upload may hold at most
:data:`MAX_INPUT_PIXELS` pixels and give at most :data:`MAX_OUTPUT_PIXELS`, checked from the
file's header before anything is decoded (:func:`upload_limit`), so the peak memory of anything
the page accepts is bounded (about 18 bytes per output pixel plus the memory budget). Messages
name the upload as the user named it and suggest only what the page offers. A visitor's memory budget
is at most :data:`MAX_BUDGET`; at most ``$TRYIT_CONCURRENT_RUNS`` (default 1) upscales run at a time in
the server process, other visitors wait with a message (:func:`run_slot`); a result leaves the session
when it is downloaded (:func:`hand_over`) or when the visitor picks another photo or model.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import functools
import hashlib
import io
import logging
import math
import os
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import streamlit as st

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from srkeras.data import ImageLoadError, quantize, read_image  # noqa: E402
from srkeras.data.io import ImageTooLarge  # noqa: E402
from srkeras.data.samples import SAMPLE_NAMES, sample_image  # noqa: E402
from srkeras.files import display_name  # noqa: E402
from srkeras.inference import (  # noqa: E402
    ModelNotFoundError,
    bicubic_rows,
    list_models,
    load_generator,
    model_scale,
    parse_memory_budget,
    tile_count,
    upscale_to_png,
)
from srkeras.inference.precision import PrecisionError  # noqa: E402

log = logging.getLogger("mos_app.try_it")

VIEW = 384  # displayed crop edge in screen pixels
MAX_INPUT_PIXELS = 16_000_000  # a 12-16 megapixel photo
MAX_OUTPUT_PIXELS = 16 * MAX_INPUT_PIXELS  # x4 of that; a x8 model takes up to 4 megapixels
MAX_BUDGET = "2GB"  # most memory a visitor may give one run's tiles
MODEL_PATHS_ENV = "TRYIT_MODEL_PATHS"  # admin setting: extra model folders / run folders / .keras files
CONCURRENT_RUNS_ENV = "TRYIT_CONCURRENT_RUNS"  # admin setting: upscales at a time (default 1)


def upload_limit(scale: int) -> int:
    """Most input pixels the page accepts for a model of ``scale``."""
    return min(MAX_INPUT_PIXELS, MAX_OUTPUT_PIXELS // (scale * scale))


PRECISIONS = ("auto", "float32", "bfloat16")  # auto: bfloat16 where the server's CPU has it (srkeras.inference.precision)


@st.cache_resource(show_spinner="Loading model...")
def _model(path: str, precision: str = "auto"):
    return load_generator(path, precision=precision, purpose="serve")


def model_choices() -> dict[str, Path]:
    """The models a visitor may pick, by name: the model store's (:func:`list_models`), then those of the
    admin's ``$TRYIT_MODEL_PATHS`` (``os.pathsep``-separated model folders, run folders or ``.keras``
    files). A name already taken keeps its first model."""
    found = list_models()
    for entry in filter(None, (e.strip() for e in os.environ.get(MODEL_PATHS_ENV, "").split(os.pathsep))):
        p = Path(entry).expanduser()
        is_model = (p.suffix == ".keras" and p.is_file()) or (p / "model.keras").is_file()
        found += [p] if is_model else list_models(p)
    choices: dict[str, Path] = {}
    for p in found:
        choices.setdefault(p.stem if p.suffix == ".keras" else p.name, p)
    return choices


def load_choice(name: str, precision: str = "auto"):
    """The served model of ``name``, one of :func:`model_choices` (ModelNotFoundError for anything else),
    computing in ``precision`` (PrecisionError, a ValueError, for bfloat16 where the CPU lacks it)."""
    path = model_choices().get(name)
    if path is None:
        raise ModelNotFoundError(f"{name!r} is not one of this page's models")
    return _model(str(path), precision)


@st.cache_resource(show_spinner=False)
def run_slots() -> threading.BoundedSemaphore:
    """The server process's run slots, shared by every visitor (``$TRYIT_CONCURRENT_RUNS``, default 1):
    each run holds up to a few GB (module docstring), so memory is bounded by slots, not by visitors."""
    return threading.BoundedSemaphore(max(1, int(os.environ.get(CONCURRENT_RUNS_ENV, "1") or 1)))


@contextlib.contextmanager
def run_slot(on_wait=None):
    """Hold one of :func:`run_slots` for the ``with`` block; ``on_wait()`` is called first when none is free."""
    slots = run_slots()
    if not slots.acquire(blocking=False):
        if on_wait is not None:
            on_wait()
        slots.acquire()
    try:
        yield
    finally:
        slots.release()


def hand_over(result: dict) -> bytes:
    """The download's PNG bytes of ``result`` (the session's dict), emptied of its images as they go out."""
    for big in ("sr", "bicubic", *PREVIEW_KEYS):
        result.pop(big, None)
    return result.pop("png", b"")


def super_resolve(model, pixels, alpha=None, max_memory="1GB", progress=None, bit_depth=8, icc_profile=None) -> dict:
    """SR and bicubic of ``pixels`` (float [0, 1], (H, W, C)) as uint8 arrays plus the SR as PNG bytes.

    Returns {"sr", "bicubic": uint8 (H*s, W*s, C) for display, "png": bytes with alpha if given}.
    The output is produced band by band (module docstring), so the peak is the 8-bit copies, the
    PNG and one band, never a float copy of the whole output.
    """
    s = model_scale(model)
    h, w, c = pixels.shape
    sr = np.empty((h * s, w * s, c), np.uint8)
    bic = np.empty_like(sr)

    def keep_8bit(r0, band):
        r1 = r0 + band.shape[0]
        sr[r0:r1] = quantize(band)
        bic[r0:r1] = quantize(bicubic_rows(pixels, s, r0, r1))

    buf = io.BytesIO()
    upscale_to_png(model, pixels, buf, alpha=alpha, bit_depth=bit_depth, icc_profile=icc_profile,
                   max_memory=max_memory, progress=progress, on_band=keep_8bit)  # fmt: skip
    return {"sr": sr, "bicubic": bic, "png": buf.getvalue()}


def _crop(img, cy, cx, zoom):
    """Same window of ``img`` for every image: (VIEW/zoom)^2 pixels around (cy, cx), magnified."""
    h, w = img.shape[:2]
    n = max(1, VIEW // zoom)
    y0 = int(np.clip(cy * h - n / 2, 0, max(0, h - n)))
    x0 = int(np.clip(cx * w - n / 2, 0, max(0, w - n)))
    c = img[y0 : y0 + n, x0 : x0 + n]
    c = np.repeat(np.repeat(c, zoom, axis=0), zoom, axis=1)
    return c[..., 0] if c.shape[-1] == 1 else c


def _load_input(upload, sample, max_pixels: int = MAX_INPUT_PIXELS):
    """(pixels, alpha, name, bit depth, ICC profile) from the upload (read like any file: EXIF,
    16 bit; at most ``max_pixels``, checked from the header before decoding) or a sample.
    Raises ImageLoadError with a message naming the upload, never the server's temporary file."""
    if upload is not None:
        name = display_name(Path(upload.name).name)
        suffix = Path(upload.name).suffix or ".png"
        with tempfile.NamedTemporaryFile(suffix=suffix, delete=False) as f:
            f.write(upload.getvalue())
        try:
            img = read_image(f.name, max_pixels=max_pixels, name=name)
        except ImageTooLarge as e:
            raise ImageLoadError(
                f"{name}: {e.width}x{e.height} = {e.width * e.height:,} pixels is more than this page accepts "
                f"({max_pixels:,} pixels for this model). Upload a smaller image; the command line "
                "(python -m pipelines.upscale) handles larger ones."
            ) from None
        finally:
            os.unlink(f.name)
        return img.pixels, img.alpha, Path(name).stem, img.bit_depth, img.icc_profile
    if sample and sample != "(none)":
        return sample_image(sample), None, sample, 8, None
    return None


def main():
    st.set_page_config(page_title="srkeras - try it", layout="wide")
    st.title("Try it: super-resolve a photo")

    choices = model_choices()
    budget = st.sidebar.text_input("Memory budget", value="1GB", key="budget")
    try:
        budget_bytes = parse_memory_budget(budget)
    except ValueError as e:
        st.sidebar.error(f"Memory budget {e}")
        st.error(f"Memory budget {e}")
        st.stop()
    if budget_bytes > parse_memory_budget(MAX_BUDGET):
        st.error(f"Memory budget {budget.strip()!r} is more than this page allows ({MAX_BUDGET}).")
        st.stop()
    if not choices:
        st.warning(
            "No models are installed on this server. Train one (`python -m pipelines.train ...`) or fetch one "
            f"(`python -m pipelines.pretrained fetch ...`) into the models folder, or list model folders in "
            f"{MODEL_PATHS_ENV} before `streamlit run`."
        )
        st.stop()
    name = st.sidebar.selectbox("Model", list(choices), key="model")
    precision = st.sidebar.selectbox("Precision", PRECISIONS, key="precision",
                                     help="auto: bfloat16 where this server's CPU has it (faster), else float32 (exact)")
    try:
        served = load_choice(name, precision)
        scale = served.scale
    except PrecisionError as e:
        st.error(str(e))
        st.stop()
    except (ModelNotFoundError, OSError, ValueError) as e:
        log.error("try-it: model %r: %s", name, e)  # the server path stays in the log
        st.error(f"The model {name!r} could not be loaded; the details are in the server log.")
        st.stop()
    st.sidebar.caption(f"x{scale}, {served.model.count_params():,} parameters, {served.precision}")

    upload = st.file_uploader("Photo", type=["png", "jpg", "jpeg", "webp", "bmp", "tif", "tiff"])
    sample = st.selectbox("...or a sample photo", ["(none)", *SAMPLE_NAMES], key="sample")
    try:
        loaded = _load_input(upload, sample, upload_limit(scale))
    except ImageLoadError as e:
        st.error(str(e))
        st.stop()
    if loaded is None:
        st.session_state.pop("result", None)
        st.info("Upload a photo or pick a sample.")
        st.stop()
    pixels, alpha, stem, bit_depth, icc = loaded
    st.caption(f"Input {pixels.shape[1]}x{pixels.shape[0]} -> output {pixels.shape[1] * scale}x{pixels.shape[0] * scale}")

    digest = hashlib.sha1(np.ascontiguousarray(pixels))  # no bytes copy of the image
    digest.update(f"\0{name}\0{budget}\0{precision}".encode("utf-8", "backslashreplace"))
    key = digest.hexdigest()
    if (st.session_state.get("result") or {}).get("key") not in (None, key):
        st.session_state.pop("result")  # a new upload, sample or model: the old result goes
    if st.button("Upscale", type="primary", key="run"):
        st.session_state.pop("result", None)  # let the previous result go before making a new one
        res = _upscale(served, pixels, alpha, budget, bit_depth, icc)
        st.session_state["result"] = {**res, "key": key, "stem": stem, "model": name}
    res = st.session_state.get("result")
    if res and "png" not in res:  # handed over by the download button (hand_over)
        st.session_state.pop("result")
        st.success("Downloaded. The result was cleared from the server; press Upscale to make it again.")
    elif res:
        _show(res, scale)


def progress_fraction(done: int, total: int, in_tile_s: float, tile_s: float) -> float:
    """The bar's position: finished tiles, plus the running tile's share estimated from its elapsed time
    (``1 - exp(-t / tile_s)``, ``tile_s`` the mean tile time so far): it moves during the first tile
    and never reaches the next tile's mark before that tile is done."""
    running = 0.0 if done >= total else 0.95 * (1 - math.exp(-in_tile_s / max(tile_s, 1e-3)))
    return min(1.0, (done + running) / max(total, 1))


def run_with_progress(work, total: int, show, poll_s: float = 0.2, first_tile_s: float = 2.0):
    """``work(tick)`` in a worker thread (``tick(n)``: n tiles done) while this thread calls
    ``show(fraction, text)`` every ``poll_s``: a bar that moves during a long first tile. Returns its result."""
    done, mark = [0], [time.monotonic()]
    start = mark[0]

    def tick(n):
        done[0] += n
        mark[0] = time.monotonic()

    with concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="try-it") as pool:
        fut = pool.submit(work, tick)
        while True:
            try:
                return fut.result(timeout=poll_s)
            except concurrent.futures.TimeoutError:
                now = time.monotonic()
                tile_s = (mark[0] - start) / done[0] if done[0] else first_tile_s
                show(progress_fraction(done[0], total, now - mark[0], tile_s),
                     f"tile {min(done[0] + 1, total)}/{total} running ({now - start:.0f} s)")


def _upscale(served, pixels, alpha, budget: str, bit_depth: int, icc) -> dict:
    """:func:`super_resolve` in one of the server's run slots, with a progress bar that moves from the
    first tile on (:func:`run_with_progress`; and a note while waiting)."""
    bar = st.progress(0.0, text="Upscaling...")
    total = tile_count(served, pixels.shape, max_memory=budget)
    waiting = st.empty()
    with run_slot(on_wait=lambda: waiting.info("Other visitors' photos are being upscaled: yours is next in line...")):
        waiting.empty()
        res = run_with_progress(lambda tick: super_resolve(served, pixels, alpha, budget, tick, bit_depth, icc),
                                total, lambda f, text: bar.progress(f, text=text))
    bar.empty()
    return res


#: The whole-image view: both images reduced to at most PREVIEW px on their longer side (cached in the result).
PREVIEW = 1200
PREVIEW_KEYS = ("preview_sr", "preview_bicubic")


def preview(img: np.ndarray, longest: int = PREVIEW) -> np.ndarray:
    """``img`` (uint8 HxWxC) reduced by a whole factor ``f`` (mean of each f x f block, the last partial
    row / column of blocks left out) to at most ``longest`` px a side; one band of f rows at a time, so
    no full-size copy of a 200-megapixel output is made."""
    f = max(1, math.ceil(max(img.shape[:2]) / longest))
    if f == 1:
        return img
    h, w = img.shape[0] // f, img.shape[1] // f
    out = np.empty((h, w, img.shape[2]), np.uint8)
    for r in range(h):
        band = img[r * f:(r + 1) * f, : w * f].reshape(f, w, f, img.shape[2])
        out[r] = np.round(band.mean(axis=(0, 2)))
    return out


def _show_whole(res: dict) -> None:
    """Bicubic and SR side by side, each whole (reduced to fit: the crops view is pixel-exact)."""
    for key, big in zip(PREVIEW_KEYS, ("sr", "bicubic")):
        if key not in res:
            res[key] = preview(res[big])
    h, w = res["sr"].shape[:2]
    ph, pw = res["preview_sr"].shape[:2]
    left, right = st.columns(2)
    grey = res["preview_sr"].shape[-1] == 1
    left.image(res["preview_bicubic"][..., 0] if grey else res["preview_bicubic"], caption="bicubic (whole image)",
               width="stretch")
    right.image(res["preview_sr"][..., 0] if grey else res["preview_sr"], caption=f"SR ({res['model']}, whole image)",
                width="stretch")
    st.caption(f"Whole {w}x{h} output shown at {pw}x{ph}{' (reduced)' if pw < w else ''}; the crops view shows "
               "output pixels exactly.")


def _show(res: dict, scale: int) -> None:
    """The whole images or the synchronised bicubic / SR crops, and the download button of one result."""
    if st.radio("View", ["Crops (pixel-exact)", "Whole image"], horizontal=True, key="view") == "Whole image":
        _show_whole(res)
    else:
        _show_crops(res)
    _download(res, scale)


def _show_crops(res: dict) -> None:
    zoom = st.slider("Zoom (screen pixels per output pixel)", 1, 8, 1, key="zoom")
    c1, c2 = st.columns(2)
    cx = c1.slider("Centre x (%)", 0, 100, 50, key="cx") / 100
    cy = c2.slider("Centre y (%)", 0, 100, 50, key="cy") / 100
    left, right = st.columns(2)
    left.image(_crop(res["bicubic"], cy, cx, zoom), caption="bicubic")
    right.image(_crop(res["sr"], cy, cx, zoom), caption=f"SR ({res['model']})")


def _download(res: dict, scale: int) -> None:
    png = res["png"]
    st.download_button(
        f"Download SR PNG ({len(png) / 1e6:.1f} MB)",
        # Deferred: Streamlit would otherwise hash and re-register the (possibly 100s of MB) PNG
        # on every rerun, i.e. on every move of the zoom slider.
        # hand_over empties the result as the file goes out, so it leaves the session (issue 24 item 6).
        data=functools.partial(hand_over, res),
        file_name=f"{res['stem']}_x{scale}.png",
        mime="image/png",
    )


if __name__ == "__main__":  # streamlit runs the page as __main__; importing it runs nothing
    main()
