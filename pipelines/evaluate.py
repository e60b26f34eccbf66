"""Score SR methods on a folder of HR images under the paper protocol.

    python -m pipelines.evaluate --hr-dir DIR --scale 4 --method bicubic [--method nearest] \
        [--model PATH.keras|RUN_DIR [--name NAME]] --out results.json

Each HR image is mod-cropped to the scale, degraded with MATLAB bicubic (``--degradation``), stored as
8-bit LR, upscaled by every method, quantised to 8 bits and scored with PSNR/SSIM on Y with ``scale``
border pixels shaved: the protocol of :mod:`srkeras.evaluation` (``prepare`` -> method -> ``score``),
the same code that scores validation during training. Without ``--hr-dir`` the photos that ship inside
scikit-image are used. Unreadable files or images too small for the scale are reported by name and
skipped; the exit code is 1 when any file was skipped, 0 otherwise, 2 when nothing could be scored
or ``--out`` cannot be written (checked before scoring; a failed write names the path and leaves
no temporary file).

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
from srkeras.data.io import (
    destination_problem,
    display_name,
    remove_stale_temporaries,
    write_atomically,
    write_error,
)


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
    p.add_argument("--name", action="append", default=[], help="display name for the --model of the same position")
    p.add_argument("--degradation", default="bicubic", choices=sorted(DEGRADATIONS), help="how LR is made from HR")
    p.add_argument("--tile", type=int, default=None, help="tile size for model inference (0 = whole image)")
    p.add_argument("--max-pixels", type=int, default=DEFAULT_MAX_PIXELS, help="refuse larger images (bomb guard)")
    p.add_argument("--out", type=Path, help="write the results as JSON here")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    args = p.parse_args(argv)
    if args.scale < 1:
        p.error("--scale must be a positive integer")
    if len(args.name) > len(args.model):
        p.error("more --name than --model arguments")
    if not args.method and not args.model:
        args.method = ["bicubic"]
    return args


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
    return methods


def hr_sources(args):
    """Yield (name, loader) pairs; the loader returns the HR image or raises ImageLoadError."""
    if args.hr_dir is None:
        from srkeras.data.samples import SAMPLE_NAMES, sample_image

        for n in SAMPLE_NAMES:
            yield n, (lambda n=n: sample_image(n))
        return
    files = list_images(args.hr_dir)
    for key, f in zip(unique_keys(files), files):
        yield key, (lambda f=f: load_image(f, channels=None, max_pixels=args.max_pixels))


def evaluate(args) -> tuple[dict, dict]:
    methods = load_methods(args)
    per_image = {m: {} for m in methods}
    skipped = {}
    sources = list(hr_sources(args))
    s = args.scale
    bar = tqdm(sources, desc=f"evaluate x{s}", unit="img", disable=args.quiet, file=sys.stderr)
    for name, load in bar:
        bar.set_postfix_str(name)
        try:
            pair = evaluation.prepare(load(), s, args.degradation, name)
        except (ImageLoadError, evaluation.ImageTooSmall) as e:
            skipped[name] = str(e)
            tqdm.write(f"skipped: {e}", file=sys.stderr)
            continue
        for m, fn in methods.items():
            sr = fn(pair.lr)
            if np.shape(sr) != pair.hr.shape:
                raise SystemExit(f"error: method {m} returned {np.shape(sr)} for HR {pair.hr.shape} ({name})")
            per_image[m][name] = evaluation.score(sr, pair.hr, s)
    return per_image, skipped


def summarise(args, per_image: dict, skipped: dict) -> dict:
    out = {
        "scale": args.scale,
        "protocol": evaluation.protocol(args.degradation),
        "hr_dir": display_name(args.hr_dir) if args.hr_dir else "skimage.data (embedded photos)",
        "methods": {},
        "skipped": skipped,
    }
    for m, imgs in per_image.items():
        out["methods"][m] = {**evaluation.mean_scores(imgs.values()), "n_images": len(imgs), "images": imgs}
    return out


def format_table(result: dict) -> str:
    methods = list(result["methods"])
    images = sorted({i for m in methods for i in result["methods"][m]["images"]})
    w = max([len("image")] + [len(i) for i in images] + [len("mean")])
    cols = [f"{m[:22]:>22}" for m in methods]
    title = f"x{result['scale']}  PSNR (dB) / SSIM on BT.601 Y, {result['scale']} px border shaved"
    lines = [title, f"{'image':<{w}}  " + "  ".join(cols)]
    for i in images + ["mean"]:
        cells = []
        for m in methods:
            r = result["methods"][m]
            v = r if i == "mean" else r["images"].get(i)
            cells.append(f"{v['psnr']:>13.2f} / {v['ssim']:.4f}" if v else f"{'-':>22}")
        if i == "mean":
            lines.append("-" * len(lines[1]))
        lines.append(f"{i:<{w}}  " + "  ".join(cells))
    return "\n".join(lines)


def _write(path: Path, result: dict) -> str | None:
    """Write the JSON atomically; the error message (naming the path) when the write failed."""
    text = json.dumps(result, indent=2, allow_nan=True)
    try:
        write_atomically(path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))
    except OSError as e:
        return write_error(path, e)
    return None


def main(argv=None) -> int:
    args = parse_args(argv)
    started = time.time()
    if args.out is not None:
        problem = destination_problem(args.out)
        if problem:
            print(f"error: --out {problem}", file=sys.stderr)
            return 2
        remove_stale_temporaries(args.out.parent, started)
    try:
        per_image, skipped = evaluate(args)
    except FileNotFoundError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    result = summarise(args, per_image, skipped)
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
