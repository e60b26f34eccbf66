"""Score SR methods on a folder of HR images under the paper protocol.

    python -m pipelines.evaluate --hr-dir DIR --scale 4 --method bicubic [--method nearest] \
        [--model PATH.keras|RUN_DIR [--name NAME]] --out results.json

Each HR image is mod-cropped to the scale, degraded with MATLAB bicubic (``--degradation``), stored as
8-bit LR, upscaled by every method, quantised to 8 bits and scored with PSNR/SSIM on Y with ``scale``
border pixels shaved: the protocol of :mod:`srkeras.evaluation` (``prepare`` -> method -> ``score``),
the same code that scores validation during training. Without ``--hr-dir`` the photos that ship inside
scikit-image are used. Unreadable files or images too small for the scale are reported by name and
skipped; the exit code is 1 when any file was skipped, 0 otherwise.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
from tqdm import tqdm

from srkeras import evaluation
from srkeras.data import DEFAULT_MAX_PIXELS, DEGRADATIONS, UPSAMPLERS, ImageLoadError, list_images, load_image
from srkeras.data.io import write_atomically


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
        return name
    path = Path(spec.rstrip("/"))
    return path.stem if path.suffix == ".keras" else path.name


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
    for f in list_images(args.hr_dir):
        yield f.stem, (lambda f=f: load_image(f, channels=None, max_pixels=args.max_pixels))


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
        "hr_dir": str(args.hr_dir) if args.hr_dir else "skimage.data (embedded photos)",
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


def main(argv=None) -> int:
    args = parse_args(argv)
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
        text = json.dumps(result, indent=2, allow_nan=True)
        write_atomically(args.out, lambda tmp: Path(tmp).write_text(text))
        print(f"\nwrote {args.out}")
    return 1 if skipped else 0


if __name__ == "__main__":
    sys.exit(main())
