"""Score SR methods on a folder of HR images under the paper protocol.

    python -m pipelines.evaluate --hr-dir DIR --scale 4 --method bicubic [--method nearest] \
        [--model PATH.keras|RUN_DIR|NAME [--name NAME]] [--sr-dir DIR [--name NAME]] \
        [--metric psnr --metric ssim --metric lpips --metric niqe ...] --out results.json

Each HR image is mod-cropped to the scale, degraded with MATLAB bicubic (``--degradation``), stored as
8-bit LR, upscaled by every method, quantised to 8 bits and scored with PSNR/SSIM on Y with ``scale``
border pixels shaved: the protocol of :mod:`srkeras.evaluation` (``prepare`` -> method -> ``score``),
the same code that scores validation during training. Without ``--hr-dir`` the photos that ship inside
scikit-image are used. Unreadable files or images too small for the scale are reported by name and
skipped; the exit code is 1 when any file was skipped, 0 otherwise, 2 when nothing could be scored
or ``--out`` cannot be written (checked before scoring; a failed write names the path and leaves
no temporary file).

``--metric NAME`` (repeat; default ``psnr`` and ``ssim``) chooses the metrics of
:mod:`srkeras.metrics`: ``lpips`` (AlexNet), ``lpips_vgg``, ``dists`` (full-reference, on the whole
8-bit RGB image as their original code computes them) and ``niqe``, ``brisque`` (no-reference). Each
one is a key beside ``"psnr"`` in every image's entry and in the method's mean. The no-reference ones
are also computed on the 8-bit HR image itself, as the reference point of what natural images score:
``"reference": {"HR": {<metric>: mean, "n_images": N, "images": {image: {<metric>: value}}}}`` (the
key is absent when no no-reference metric is asked for). A metric whose weights or parameters are not
installed stops the run before any scoring (exit 2) with the command that installs them
(``python -m pipelines.pretrained fetch ...``).

``--sr-dir DIR`` (with ``--hr-dir``) also scores SR images made elsewhere, under the same protocol:
each HR file is matched with the file of ``DIR`` that has the same stem (``baby.png`` <->
``baby.png`` / ``baby.jpg``), the SR must have the size of the mod-cropped HR (an error naming the
file otherwise, exit 2), and HR images without an SR image are skipped for every method (listed in
``skipped``) so that all methods are compared on the same images. The method is named after the SR
folder, or by the ``--name`` that follows the ``--model`` names.

Images are keyed by their stem (``"baby"``) in the table and the JSON; files whose stems collide
(``a.png`` and ``a.jpg``) are keyed by their file names (``"a.png"``, ``"a.jpg"``) instead, so every
file is scored or listed as skipped. File names that are not UTF-8 are shown with ``\\xNN`` escapes.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

from srkeras import evaluation
from srkeras.data import DEFAULT_MAX_PIXELS, DEGRADATIONS, UPSAMPLERS, ImageLoadError, list_images, load_image
from srkeras.files import (
    destination_problem,
    display_name,
    remove_stale_temporaries,
    write_atomically,
    write_error,
)
from srkeras.metrics.registry import METRICS, NO_REFERENCE

DEFAULT_METRICS = ("psnr", "ssim")
REFERENCE = "HR"  # the key of the HR image's own (no-reference) scores under "reference"


class SizeMismatch(ValueError):
    """An ``--sr-dir`` image does not have the size of its mod-cropped HR image."""


class MetricFailed(ValueError):
    """A metric refused an image (e.g. smaller than NIQE's blocks); the image is skipped."""


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="python -m pipelines.evaluate", description=__doc__.split("\n\n")[0])
    p.add_argument("--hr-dir", type=Path, help="folder of HR images (default: scikit-image's photos)")
    p.add_argument("--scale", type=int, default=4, help="upscaling factor (default 4)")
    p.add_argument(
        "--method",
        action="append",
        default=[],
        choices=sorted(UPSAMPLERS),
        help="classical method to score; repeat for several (default bicubic when no --model is given)",
    )
    p.add_argument("--model", action="append", default=[], help="trained generator: PATH.keras or a training RUN_DIR")
    p.add_argument("--sr-dir", type=Path, help="also score the SR images of this folder (matched to HR by file stem)")
    p.add_argument("--name", action="append", default=[],
                   help="display name for the --model of the same position (one more: for --sr-dir)")
    p.add_argument("--metric", action="append", default=[], choices=list(METRICS),
                   help="metric to compute; repeat for several (default psnr and ssim)")
    p.add_argument("--degradation", default="bicubic", choices=sorted(DEGRADATIONS), help="how LR is made from HR")
    p.add_argument("--tile", type=int, default=None, help="tile size for model inference (0 = whole image)")
    p.add_argument("--max-pixels", type=int, default=DEFAULT_MAX_PIXELS, help="refuse larger images (bomb guard)")
    p.add_argument("--out", type=Path, help="write the results as JSON here")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    args = p.parse_args(argv)
    if args.scale < 1:
        p.error("--scale must be a positive integer")
    if args.sr_dir is not None and args.hr_dir is None:
        p.error("--sr-dir needs --hr-dir (the HR images its outputs are scored against)")
    if len(args.name) > len(args.model) + (args.sr_dir is not None):
        p.error("more --name than --model (and --sr-dir) arguments")
    if not args.method and not args.model and args.sr_dir is None:
        args.method = ["bicubic"]
    args.metric = list(dict.fromkeys(args.metric or DEFAULT_METRICS))
    return args


def missing_assets(metrics) -> str | None:
    """The error message (naming the fetch command) when an asset of ``metrics`` is not installed."""
    needed = list(dict.fromkeys(a for m in metrics for a in METRICS[m]))
    if not needed:
        return None
    from srkeras.inference.store import models_dir
    from srkeras.pretrained import metric_assets

    missing = [a for a in needed if not metric_assets.is_installed(a)]
    if not missing:
        return None
    return (f"metric asset(s) {', '.join(missing)} not installed in {display_name(models_dir())} (set SRKERAS_MODEL_DIR "
            f"to use another directory): run `{metric_assets.fetch_command(missing)}`")


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


def sr_dir_key(args) -> str:
    """The method name of ``--sr-dir``: the ``--name`` after the models' ones, else the folder name."""
    names = args.name[len(args.model):]
    return display_name(names[0]) if names else display_name(Path(args.sr_dir).resolve().name)


def load_methods(args) -> dict:
    """Name -> callable(lr float (H, W, C)) -> SR float, for every method and model asked for."""
    methods = {}
    for m in args.method:
        methods[m] = lambda lr, m=m: evaluation.classical_sr(lr, args.scale, m)
    for i, spec in enumerate(args.model):
        from srkeras import inference

        model = inference.load_generator(spec)
        got = inference.model_scale(model)
        if got != args.scale:
            raise SystemExit(f"error: {spec}: model upscales x{got}, but --scale is {args.scale}")
        key = _model_key(spec, args.name[i] if i < len(args.name) else None)
        if key in methods:
            raise SystemExit(f"error: two methods are both called {key!r}; give --name")
        methods[key] = lambda lr, model=model: evaluation.super_resolve(model, lr, args.scale, tile=args.tile)
    if args.sr_dir is not None and sr_dir_key(args) in methods:
        raise SystemExit(f"error: two methods are both called {sr_dir_key(args)!r}; give --name for --sr-dir")
    return methods


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


def load_sr(path: Path, hr8: np.ndarray, args) -> np.ndarray:
    """The SR image of ``path`` with the HR's channels; :class:`SizeMismatch` naming the file."""
    sr = load_image(path, channels=hr8.shape[-1], max_pixels=args.max_pixels)
    if sr.shape[:2] != hr8.shape[:2]:
        raise SizeMismatch(
            f"{display_name(path)}: {sr.shape[1]}x{sr.shape[0]} px, but its HR image mod-cropped to x{args.scale} is "
            f"{hr8.shape[1]}x{hr8.shape[0]} px (SR outputs must be made from the LR of the mod-cropped HR)"
        )
    return sr


def hr_sources(args):
    """Yield (name, loader, SR file or why-not or None); the loader returns the HR image or raises ImageLoadError."""
    if args.hr_dir is None:
        from srkeras.data.samples import SAMPLE_NAMES, sample_image

        for n in SAMPLE_NAMES:
            yield n, (lambda n=n: sample_image(n)), None
        return
    files = list_images(args.hr_dir)
    srs = match_sr(files, args.sr_dir) if args.sr_dir is not None else [None] * len(files)
    for key, f, sr in zip(unique_keys(files), files, srs):
        yield key, (lambda f=f: load_image(f, channels=None, max_pixels=args.max_pixels)), sr


def _score_image(args, methods, pair, name, sr_file, per_image, reference) -> None:
    s, metrics = args.scale, args.metric
    outputs = {m: fn(pair.lr) for m, fn in methods.items()}
    if sr_file is not None:
        outputs[sr_dir_key(args)] = load_sr(sr_file, pair.hr, args)
    for m, sr in outputs.items():
        if np.shape(sr) != pair.hr.shape:
            raise SystemExit(f"error: method {m} returned {np.shape(sr)} for HR {pair.hr.shape} ({name})")
    try:
        scores = {m: evaluation.score(sr, pair.hr, s, metrics=metrics, name=f"{name} ({m})") for m, sr in outputs.items()}
        ref = evaluation.reference_scores(pair.hr, metrics, name=f"{name} (HR)") if reference is not None else None
    except ValueError as e:  # the metrics name the image in their messages
        raise MetricFailed(str(e)) from None
    for m, v in scores.items():
        per_image[m][name] = v
    if ref is not None:
        reference[name] = ref


def evaluate(args) -> tuple[dict, dict]:
    """(per-method per-image scores, skipped files): :func:`run` without the HR's own scores."""
    return run(args)[:2]


def run(args) -> tuple[dict, dict, dict | None]:
    """(per-method per-image scores, skipped files, the HR's own no-reference scores or None)."""
    methods = load_methods(args)
    keys = list(methods) + ([sr_dir_key(args)] if args.sr_dir is not None else [])
    per_image = {m: {} for m in keys}
    reference = {} if any(m in NO_REFERENCE for m in args.metric) else None
    skipped = {}
    sources = list(hr_sources(args))
    bar = tqdm(sources, desc=f"evaluate x{args.scale}", unit="img", disable=args.quiet, file=sys.stderr)
    for name, load, sr in bar:
        bar.set_postfix_str(name)
        try:
            if isinstance(sr, str):
                raise ImageLoadError(sr)
            pair = evaluation.prepare(load(), args.scale, args.degradation, name)
            _score_image(args, methods, pair, name, sr, per_image, reference)
        except (ImageLoadError, evaluation.ImageTooSmall, MetricFailed) as e:
            skipped[name] = str(e)
            tqdm.write(f"skipped: {e}", file=sys.stderr)
    return per_image, skipped, reference


def _means(imgs: dict, metrics) -> dict:
    if not imgs:
        return {m: float("nan") for m in metrics}
    return evaluation.mean_scores(imgs.values())


def summarise(args, per_image: dict, skipped: dict, reference: dict | None = None) -> dict:
    metrics = getattr(args, "metric", DEFAULT_METRICS)
    out = {
        "scale": args.scale,
        "protocol": evaluation.protocol(args.degradation),
        "hr_dir": display_name(args.hr_dir) if args.hr_dir else "skimage.data (embedded photos)",
        "methods": {},
        "skipped": skipped,
    }
    if getattr(args, "sr_dir", None) is not None:
        out["sr_dir"] = display_name(args.sr_dir)
    for m, imgs in per_image.items():
        out["methods"][m] = {**_means(imgs, metrics), "n_images": len(imgs), "images": imgs}
    if reference is not None:
        nr = [m for m in metrics if m in NO_REFERENCE]
        out["reference"] = {REFERENCE: {**_means(reference, nr), "n_images": len(reference), "images": reference}}
    return out


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


def _write(path: Path, result: dict) -> str | None:
    """Write the JSON atomically; the error message (naming the path) when the write failed."""
    text = json.dumps(result, indent=2, allow_nan=True)
    try:
        write_atomically(path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))
    except OSError as e:
        return write_error(path, e)
    return None


def _start_up_problem(args, started: float) -> str | None:
    """Why the run cannot start (``--out`` unwritable, a metric asset missing), checked before any work."""
    if args.out is not None:
        problem = destination_problem(args.out)
        if problem:
            return f"--out {problem}"
    problem = missing_assets(args.metric)
    if problem:
        return problem
    if args.out is not None:
        remove_stale_temporaries(args.out.parent, started)
    return None


def main(argv=None) -> int:
    args = parse_args(argv)
    started = time.time()
    problem = _start_up_problem(args, started)
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    try:
        per_image, skipped, reference = run(args)
    except (FileNotFoundError, SizeMismatch) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    result = summarise(args, per_image, skipped, reference)
    if not any(r["n_images"] for r in result["methods"].values()):
        print("error: no image could be scored", file=sys.stderr)
        for why in skipped.values():
            print(f"  {why}", file=sys.stderr)
        return 2
    print(format_table(result))
    if skipped:
        print(f"\n{len(skipped)} file(s) skipped:", file=sys.stderr)
        for why in skipped.values():
            print(f"  {why}", file=sys.stderr)
    if args.out:
        failed = _write(args.out, result)
        if failed:
            print(f"error: {failed} (the scores above were not saved)", file=sys.stderr)
            return 2
        print(f"\nwrote {display_name(args.out)}")
    return 1 if skipped else 0


if __name__ == "__main__":
    sys.exit(main())
