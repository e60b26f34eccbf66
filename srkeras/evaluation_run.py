"""An evaluation run: SR methods scored on a folder of HR images under the protocol of :mod:`srkeras.evaluation`.

The job of ``pipelines.evaluate`` (its docstring describes the options and the JSON): every image of
:attr:`EvaluationSpec.hr_dir` is prepared (``modcrop``, 8-bit HR, MATLAB-bicubic 8-bit LR), upscaled by
every method (classical baselines, trained generators, SR images made elsewhere in
:attr:`EvaluationSpec.sr_dir`) and scored; :func:`run` returns the result that the command line
prints (:func:`format_table`) and writes (:func:`write_result`).

Unreadable files, images too small for the scale and images a metric refuses are skipped (listed
under ``skipped`` with the reason). Typed errors: :class:`EvaluationError` for unusable methods (the
command line's ``error: ...``, exit 1), :class:`SizeMismatch` for an SR image of the wrong size;
a missing folder is a ``FileNotFoundError``.
"""

from __future__ import annotations

import dataclasses
import json
import math
import sys
from pathlib import Path

import numpy as np
from tqdm import tqdm

from srkeras import evaluation
from srkeras.data import DEFAULT_MAX_PIXELS, ImageLoadError, list_images, load_image
from srkeras.files import display_name, remove_stale_temporaries, write_atomically, write_error
from srkeras.metrics.registry import METRICS, NO_REFERENCE

DEFAULT_METRICS = ("psnr", "ssim")
REFERENCE = "HR"  # the key of the HR image's own (no-reference) scores under "reference"


class EvaluationError(ValueError):
    """A method cannot be scored as asked (model of another scale, two methods of one name, a wrong
    output size); the message says which and what to give instead."""


class SizeMismatch(ValueError):
    """An ``--sr-dir`` image does not have the size of its mod-cropped HR image."""


class MetricFailed(ValueError):
    """A metric refused an image (e.g. smaller than NIQE's blocks); the image is skipped."""


@dataclasses.dataclass(frozen=True)
class EvaluationSpec:
    """What to score: the HR images (None: the photos inside scikit-image), the methods, the metrics.

    ``models`` are ``.keras`` files, run folders or installed model names; ``names`` rename them in
    order, one more renames the ``sr_dir`` method (else named after its folder).
    """

    hr_dir: Path | None = None
    scale: int = 4
    methods: tuple[str, ...] = ("bicubic",)  # classical: srkeras.data.UPSAMPLERS
    models: tuple[str, ...] = ()
    sr_dir: Path | None = None
    names: tuple[str, ...] = ()
    metrics: tuple[str, ...] = DEFAULT_METRICS
    degradation: str = "bicubic"
    tile: int | None = None  # model inference tile size (0: whole image)
    max_memory: str | int | None = None  # budget of the tiles and the receptive-field probe ('2GB'; None: 2 GB)
    precision: str = "float32"  # of model inference: float32 | bfloat16 | auto (auto is float32 for scoring)
    max_pixels: int = DEFAULT_MAX_PIXELS
    out: Path | None = None  # where the command line writes the JSON (checked before any work)
    progress: bool = True


def _model_key(spec: str, name: str | None) -> str:
    if name:
        return display_name(name)
    path = Path(spec.rstrip("/"))
    return display_name(path.stem if path.suffix == ".keras" else path.name)


def unique_keys(files) -> list[str]:
    """One display key per file: its stem when no other file shares it, else its file name.

    Keys name images in results (JSON, tables): ``a.png`` and ``a.jpg`` become ``"a.png"`` and
    ``"a.jpg"``, a lone ``b.png`` stays ``"b"``. Keys that still collide (same name in two
    folders) get ``#2``, ``#3``... in order.
    """
    files = [Path(f) for f in files]
    keys = [display_name(f.stem) for f in files]
    while True:
        dup = {k for k in keys if keys.count(k) > 1}
        switch = [i for i, k in enumerate(keys) if k in dup and keys[i] != display_name(files[i].name)]
        if not switch:
            break
        for i in switch:
            keys[i] = display_name(files[i].name)
    seen: dict[str, int] = {}
    for i, k in enumerate(keys):
        seen[k] = seen.get(k, 0) + 1
        keys[i] = k if seen[k] == 1 else f"{k}#{seen[k]}"
    return keys


def sr_dir_key(spec: EvaluationSpec) -> str:
    """The method name of ``sr_dir``: the name after the models' ones, else the folder name."""
    names = spec.names[len(spec.models):]
    return display_name(names[0]) if names else display_name(Path(spec.sr_dir).resolve().name)


def load_methods(spec: EvaluationSpec) -> dict:
    """Name -> callable(lr float (H, W, C)) -> SR float, for every method and model asked for.
    Raises :class:`EvaluationError` for a model of another scale or two methods of one name."""
    methods = {}
    for m in spec.methods:
        methods[m] = lambda lr, m=m: evaluation.classical_sr(lr, spec.scale, m)
    for i, path in enumerate(spec.models):
        from srkeras import inference

        model = inference.load_generator(path, precision=spec.precision, purpose="score")
        if spec.progress:  # a receptive-field probe, if one must run, says so above the bar
            model.progress = lambda message: tqdm.write(message, file=sys.stderr)
        got = inference.model_scale(model)
        if got != spec.scale:
            raise EvaluationError(f"{path}: model upscales x{got}, but --scale is {spec.scale}")
        key = _model_key(path, spec.names[i] if i < len(spec.names) else None)
        if key in methods:
            raise EvaluationError(f"two methods are both called {key!r}; give --name")
        methods[key] = lambda lr, model=model, path=path: _model_sr(model, path, lr, spec)
    if spec.sr_dir is not None and sr_dir_key(spec) in methods:
        raise EvaluationError(f"two methods are both called {sr_dir_key(spec)!r}; give --name for --sr-dir")
    return methods


def _model_sr(model, path: str, lr, spec: EvaluationSpec) -> np.ndarray:
    from srkeras.inference import ProbeMemoryError

    try:
        return evaluation.super_resolve(model, lr, spec.scale, tile=spec.tile, max_memory=spec.max_memory)
    except ProbeMemoryError as e:  # the same for every image: stop, naming the model
        raise ProbeMemoryError(f"{path}: {e}") from None


def match_sr(hr_files, sr_dir) -> list:
    """Per HR file, its SR file of ``sr_dir`` (same stem; the same file name wins among several),
    or a string saying why there is none."""
    by_stem: dict[str, list[Path]] = {}
    for f in list_images(sr_dir):
        by_stem.setdefault(f.stem, []).append(f)
    out = []
    for f in hr_files:
        cands = by_stem.get(f.stem, [])
        same = [c for c in cands if c.name == f.name]
        if len(cands) == 1 or same:
            out.append((same or cands)[0])
        elif not cands:
            out.append(f"{display_name(f.name)}: no SR image with stem {display_name(f.stem)!r} in {display_name(sr_dir)}")
        else:
            names = ", ".join(display_name(c.name) for c in cands)
            out.append(f"{display_name(f.name)}: several SR images share its stem ({names}); keep one")
    return out


def load_sr(path: Path, hr8: np.ndarray, spec: EvaluationSpec) -> np.ndarray:
    """The SR image of ``path`` with the HR's channels; :class:`SizeMismatch` naming the file."""
    sr = load_image(path, channels=hr8.shape[-1], max_pixels=spec.max_pixels)
    if sr.shape[:2] != hr8.shape[:2]:
        raise SizeMismatch(
            f"{display_name(path)}: {sr.shape[1]}x{sr.shape[0]} px, but its HR image mod-cropped to x{spec.scale} is "
            f"{hr8.shape[1]}x{hr8.shape[0]} px (SR outputs must be made from the LR of the mod-cropped HR)"
        )
    return sr


def hr_sources(spec: EvaluationSpec):
    """Yield (name, loader, SR file or why-not or None); the loader returns the HR image or raises ImageLoadError."""
    if spec.hr_dir is None:
        from srkeras.data.samples import SAMPLE_NAMES, sample_image

        for n in SAMPLE_NAMES:
            yield n, (lambda n=n: sample_image(n)), None
        return
    files = list_images(spec.hr_dir)
    srs = match_sr(files, spec.sr_dir) if spec.sr_dir is not None else [None] * len(files)
    for key, f, sr in zip(unique_keys(files), files, srs):
        yield key, (lambda f=f: load_image(f, channels=None, max_pixels=spec.max_pixels)), sr


def _score_image(spec: EvaluationSpec, methods, pair, name, sr_file, per_image, reference) -> None:
    s, metrics = spec.scale, spec.metrics
    outputs = {m: fn(pair.lr) for m, fn in methods.items()}
    if sr_file is not None:
        outputs[sr_dir_key(spec)] = load_sr(sr_file, pair.hr, spec)
    for m, sr in outputs.items():
        if np.shape(sr) != pair.hr.shape:
            raise EvaluationError(f"method {m} returned {np.shape(sr)} for HR {pair.hr.shape} ({name})")
    try:
        scores = {m: evaluation.score(sr, pair.hr, s, metrics=metrics, name=f"{name} ({m})") for m, sr in outputs.items()}
        ref = evaluation.reference_scores(pair.hr, metrics, name=f"{name} (HR)") if reference is not None else None
    except ValueError as e:  # the metrics name the image in their messages
        raise MetricFailed(str(e)) from None
    for m, v in scores.items():
        per_image[m][name] = v
    if ref is not None:
        reference[name] = ref


def score_all(spec: EvaluationSpec) -> tuple[dict, dict, dict | None]:
    """(per-method per-image scores, skipped files, the HR's own no-reference scores or None)."""
    methods = load_methods(spec)
    keys = list(methods) + ([sr_dir_key(spec)] if spec.sr_dir is not None else [])
    per_image = {m: {} for m in keys}
    reference = {} if any(m in NO_REFERENCE for m in spec.metrics) else None
    skipped = {}
    sources = list(hr_sources(spec))
    bar = tqdm(sources, desc=f"evaluate x{spec.scale}", unit="img", disable=not spec.progress, file=sys.stderr)
    for name, load, sr in bar:
        bar.set_postfix_str(name)
        try:
            if isinstance(sr, str):
                raise ImageLoadError(sr)
            pair = evaluation.prepare(load(), spec.scale, spec.degradation, name)
            _score_image(spec, methods, pair, name, sr, per_image, reference)
        except (ImageLoadError, evaluation.ImageTooSmall, MetricFailed) as e:
            skipped[name] = str(e)
            tqdm.write(f"skipped: {e}", file=sys.stderr)
    return per_image, skipped, reference


def _means(imgs: dict, metrics) -> dict:
    if not imgs:
        return {m: float("nan") for m in metrics}
    return evaluation.mean_scores(imgs.values())


def summarise(spec: EvaluationSpec, per_image: dict, skipped: dict, reference: dict | None = None) -> dict:
    """The result (the JSON of ``pipelines.evaluate``) of :func:`score_all`'s scores."""
    out = {
        "scale": spec.scale,
        "protocol": evaluation.protocol(spec.degradation),
        "hr_dir": display_name(spec.hr_dir) if spec.hr_dir else "skimage.data (embedded photos)",
        "methods": {},
        "skipped": skipped,
    }
    if spec.sr_dir is not None:
        out["sr_dir"] = display_name(spec.sr_dir)
    if spec.models and spec.precision == "bfloat16":  # float32 (also what auto is for scoring) is not stated
        out["precision"] = "bfloat16"
    for m, imgs in per_image.items():
        out["methods"][m] = {**_means(imgs, spec.metrics), "n_images": len(imgs), "images": imgs}
    if reference is not None:
        nr = [m for m in spec.metrics if m in NO_REFERENCE]
        out["reference"] = {REFERENCE: {**_means(reference, nr), "n_images": len(reference), "images": reference}}
    return out


def run(spec: EvaluationSpec) -> dict:
    """Score every method on every image; the result (:func:`summarise`). Raises
    :class:`EvaluationError`, :class:`SizeMismatch` or ``FileNotFoundError`` (no such folder)."""
    return summarise(spec, *score_all(spec))


def start_up_problem(spec: EvaluationSpec, started: float) -> str | None:
    """Why the run cannot start (``out`` unwritable, a metric asset missing), checked before any work;
    removes the temporaries that killed runs left beside ``out`` (older than ``started``)."""
    from srkeras.preflight import Preflight

    pf = Preflight("pipelines.evaluate")  # every missing item in one message
    if spec.out is not None:
        pf.output(spec.out, "--out", folder=False)
    pf.metric_assets(spec.metrics)
    for m in spec.models:
        pf.model(m)
    if pf.problems:
        return pf.message()
    if spec.out is not None:
        remove_stale_temporaries(spec.out.parent, started)
    return None


#: Why a score can be a non-finite float, as the ``notes`` of the JSON say when one is written as null.
NON_FINITE_NOTES = {
    "inf": "null where the score is infinite: the PSNR of an SR image identical to its HR (zero error)",
    "nan": "null where the score is not a number: the mean of a method that scored no image",
}


def json_safe(result: dict) -> dict:
    """``result`` with every non-finite float as None (JSON has no Infinity or NaN) and, when there was
    one, a ``notes`` list saying why; the other keys as they are."""
    seen = set()

    def clean(value):
        if isinstance(value, dict):
            return {k: clean(v) for k, v in value.items()}
        if isinstance(value, list):
            return [clean(v) for v in value]
        if isinstance(value, float) and not math.isfinite(value):
            seen.add("nan" if math.isnan(value) else "inf")
            return None
        return value

    out = clean(result)
    if seen:
        out["notes"] = [NON_FINITE_NOTES[k] for k in sorted(seen)]
    return out


def write_result(path: Path, result: dict) -> str | None:
    """Write the JSON (:func:`json_safe`: valid JSON) atomically; the error message (naming the path)
    when the write failed."""
    text = json.dumps(json_safe(result), indent=2, allow_nan=False)
    try:
        write_atomically(path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))
    except OSError as e:
        return write_error(path, e)
    return None


#: Table titles of the metrics other than PSNR/SSIM (the JSON keys are the metric names).
TITLES = {
    "lpips": "LPIPS (AlexNet, v0.1) on the whole RGB image; lower is better",
    "lpips_vgg": "LPIPS (VGG16, v0.1) on the whole RGB image; lower is better",
    "dists": "DISTS on the whole RGB image; lower is better",
    "niqe": "NIQE (no reference; HR: the HR image itself); lower is better",
    "brisque": "BRISQUE (no reference; HR: the HR image itself); lower is better",
    "psnr": "PSNR (dB) on BT.601 Y, {s} px border shaved",
    "ssim": "SSIM on BT.601 Y, {s} px border shaved",
}


def result_metrics(result: dict) -> list[str]:
    """The metrics of a result (the keys of the methods' means, in order)."""
    for r in result["methods"].values():
        return [k for k in r if k in METRICS]
    return list(DEFAULT_METRICS)


def _block(result: dict, cols: dict, images: list, fmt, title: str) -> list[str]:
    w = max([len("image")] + [len(i) for i in images] + [len("mean")])
    lines = [title, f"{'image':<{w}}  " + "  ".join(f"{m[:22]:>22}" for m in cols)]
    for i in images + ["mean"]:
        cells = []
        for r in cols.values():
            v = r if i == "mean" else r["images"].get(i)
            cells.append(fmt(v) if v else f"{'-':>22}")
        if i == "mean":
            lines.append("-" * len(lines[1]))
        lines.append(f"{i:<{w}}  " + "  ".join(cells))
    return lines


def format_table(result: dict) -> str:
    """The printed table: PSNR / SSIM as before, then one block per further metric (no-reference
    ones with the HR image's own value in an ``HR`` column)."""
    metrics, s = result_metrics(result), result["scale"]
    images = sorted({i for r in result["methods"].values() for i in r["images"]})
    lines: list[str] = []
    if "psnr" in metrics and "ssim" in metrics:
        title = f"x{s}  PSNR (dB) / SSIM on BT.601 Y, {s} px border shaved"
        lines += _block(result, result["methods"], images, lambda v: f"{v['psnr']:>13.2f} / {v['ssim']:.4f}", title)
        metrics = [m for m in metrics if m not in ("psnr", "ssim")]
    for m in metrics:
        cols = dict(result["methods"])
        if m in (result.get("reference") or {}).get(REFERENCE, {}):
            cols = {REFERENCE: result["reference"][REFERENCE], **cols}
        nd = 2 if m in ("psnr", "niqe", "brisque") else 4
        title = f"x{s}  " + TITLES.get(m, m).format(s=s)
        lines += ([""] if lines else []) + _block(result, cols, images, lambda v, m=m, nd=nd: f"{v[m]:>22.{nd}f}", title)
    return "\n".join(lines)


__all__ = [
    "DEFAULT_METRICS", "EvaluationError", "EvaluationSpec", "MetricFailed", "REFERENCE", "SizeMismatch", "TITLES",
    "format_table", "hr_sources", "load_methods", "load_sr", "match_sr", "result_metrics", "run", "score_all",
    "sr_dir_key", "start_up_problem", "summarise", "unique_keys", "write_result",
]
