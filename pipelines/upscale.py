"""Upscale image files with a trained generator, tiled so memory stays bounded.

    python -m pipelines.upscale INPUT... --model RUN_DIR|PATH.keras|NAME --scale 4 --out DIR
        [--device cpu|gpu] [--tile N] [--max-memory 2GB] [--overwrite] [--max-pixels N]

INPUT: files, folders (their images) and globs. Outputs keep the input's name, format and mode
(grey, RGBA with bicubic alpha, palette, 16-bit; 16-bit non-PNG inputs are written as PNG), with
EXIF orientation applied and the ICC profile carried over. PNG outputs are streamed band by band.
Files are written atomically (:func:`srkeras.data.io.write_atomically`: mode 0666 minus the umask)
and never replace an existing file without --overwrite. Bad inputs
are reported by name and skipped; the exit code is 1 if any file failed, 2 if nothing could start.
"""

from __future__ import annotations

import argparse
import glob
import os
import sys
from pathlib import Path

KEEP_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="python -m pipelines.upscale", description=__doc__.split("\n\n")[0])
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="image files, folders or globs")
    p.add_argument("--model", required=True, help="training run folder, .keras file, SavedModel folder or model name")
    p.add_argument("--scale", type=int, default=None, help="expected upscaling factor (checked against the model)")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--device", choices=("cpu", "gpu"), default="cpu")
    p.add_argument("--tile", type=int, default=None, help="core tile edge in LR pixels; 0 = untiled; default from --max-memory")
    p.add_argument("--max-memory", default="2GB", help="memory budget for the model's activations (e.g. 2GB, 512MB)")
    p.add_argument("--batch-size", type=int, default=None, help="tiles per model call (default from the budget)")
    p.add_argument("--overwrite", action="store_true", help="replace existing output files")
    p.add_argument("--max-pixels", type=int, default=None, help="decompression-bomb guard (default 16384^2 pixels)")
    p.add_argument("--precision", choices=("float32", "bfloat16"), default="float32", help="CPU compute precision")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    return p.parse_args(argv)


def expand_inputs(items):
    """-> (files, errors): files in order without duplicates; errors as (item, message)."""
    from srkeras.data import IMAGE_EXTENSIONS, list_images

    files, errors, seen = [], [], set()

    def add(p):
        p = Path(p)
        if p not in seen:
            seen.add(p)
            files.append(p)

    for item in items:
        p = Path(item)
        if p.is_dir():
            try:
                for f in list_images(p):
                    add(f)
            except FileNotFoundError as e:
                errors.append((item, str(e)))
        elif p.is_file():
            add(p)
        elif any(ch in item for ch in "*?["):
            matches = sorted(m for m in glob.glob(item, recursive=True) if Path(m).is_file())
            matches = [m for m in matches if Path(m).suffix.lower() in IMAGE_EXTENSIONS]
            if not matches:
                errors.append((item, f"{item}: glob matches no image files"))
            for m in matches:
                add(m)
        else:
            errors.append((item, f"{item}: no such file or folder"))
    return files, errors


def output_path(src: Path, out_dir: Path, bit_depth: int) -> Path:
    suffix = src.suffix.lower()
    if suffix not in KEEP_SUFFIXES or (bit_depth == 16 and suffix != ".png"):
        suffix = ".png"
    return out_dir / (src.stem + suffix)


def _stream_png(dst: Path, model, img, opts, tick, overwrite: bool):
    """Write the SR result band by band into a temp PNG next to ``dst``, then rename it."""
    from srkeras.data.io import write_atomically
    from srkeras.data.png16 import PngStreamWriter
    from srkeras.inference import model_scale, upscale_bands

    s = model_scale(model)
    h, w = img.pixels.shape[:2]

    def write(tmp):
        with open(tmp, "wb") as f:
            wr = PngStreamWriter(
                f, w * s, h * s, img.pixels.shape[-1], img.alpha is not None, img.bit_depth, img.icc_profile
            )
            for _, band, alpha in upscale_bands(model, img.pixels, progress=tick, alpha=img.alpha, **opts):
                wr.write(band, alpha)
            wr.close()

    write_atomically(dst, write, overwrite=overwrite)


def _save_whole(dst: Path, model, img, opts, tick, overwrite: bool):
    import numpy as np

    from srkeras.data import save_image
    from srkeras.inference import upscale_bands

    bands = list(upscale_bands(model, img.pixels, progress=tick, alpha=img.alpha, **opts))
    sr = np.concatenate([b for _, b, _ in bands])
    alpha = None if img.alpha is None else np.concatenate([a for _, _, a in bands])
    if img.source_mode == "P" and alpha is None:
        _save_palette(dst, sr, img, overwrite)
        return
    save_image(dst, sr, alpha=alpha, bit_depth=img.bit_depth, icc_profile=img.icc_profile, overwrite=overwrite)


def _save_palette(dst: Path, sr, img, overwrite: bool):
    """Palette in -> palette out: map the result onto the source's own palette (no dithering)."""
    import numpy as np
    from PIL import Image

    from srkeras.data.io import to_pil, write_atomically

    with Image.open(img.path) as src:
        src.load()
        pal = src if src.mode == "P" else None
        rgb = to_pil(sr if sr.shape[-1] == 3 else np.repeat(sr, 3, axis=-1))
        out = rgb.quantize(palette=pal, dither=Image.Dither.NONE) if pal is not None else rgb.quantize()
    if dst.exists() and not overwrite:
        raise FileExistsError(f"{dst}: exists (pass --overwrite to replace it)")
    kwargs = {"icc_profile": img.icc_profile} if img.icc_profile else {}
    fmt = "PNG" if dst.suffix.lower() == ".png" else None  # None: from the temp file's suffix, dst's
    write_atomically(dst, lambda tmp: out.save(tmp, format=fmt, **kwargs), overwrite=overwrite)


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.device == "cpu":
        os.environ["CUDA_VISIBLE_DEVICES"] = "-1"  # before TensorFlow is imported
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from tqdm import tqdm

    from srkeras.data import DEFAULT_MAX_PIXELS, ImageLoadError, read_image
    from srkeras.inference import load_generator, model_scale, parse_memory, tile_count
    from srkeras.inference.loading import ModelNotFoundError

    if args.device == "gpu":
        import tensorflow as tf

        if not tf.config.list_physical_devices("GPU"):
            print("error: --device gpu but TensorFlow sees no GPU (install the [gpu] extra / CUDA)", file=sys.stderr)
            return 2
    files, errors = expand_inputs(args.inputs)
    try:
        model = load_generator(args.model, dtype="float32" if args.device == "cpu" else None)
        if args.precision == "bfloat16":
            from srkeras.inference.serving import as_bfloat16, bf16_supported

            if not bf16_supported():
                print("warning: this CPU has no native bfloat16; it will be emulated (slow)", file=sys.stderr)
            model = as_bfloat16(model)
        s = model_scale(model)
    except (ModelNotFoundError, ValueError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if args.scale is not None and args.scale != s:
        print(f"error: the model upscales x{s}, but --scale {args.scale} was asked", file=sys.stderr)
        return 2
    out_dir = Path(args.out)
    opts = {"tile": args.tile, "max_memory": parse_memory(args.max_memory), "batch_size": args.batch_size}
    max_pixels = args.max_pixels if args.max_pixels is not None else DEFAULT_MAX_PIXELS
    written, skipped, failed = [], [], list(errors)
    bar = tqdm(files, desc="images", unit="img", disable=args.quiet)
    for src in bar:
        try:
            img = read_image(src, max_pixels=max_pixels)
            dst = output_path(src, out_dir, img.bit_depth)
            if dst.exists() and not args.overwrite:
                skipped.append((str(src), f"{dst} exists (use --overwrite)"))
                continue
            total = tile_count(model, img.pixels.shape, **opts)
            with tqdm(total=total, desc=src.name, unit="tile", leave=False, disable=args.quiet) as tbar:
                use_stream = dst.suffix == ".png" and img.source_mode != "P"
                (_stream_png if use_stream else _save_whole)(dst, model, img, opts, tbar.update, args.overwrite)
            written.append((str(src), str(dst)))
        except (ImageLoadError, FileExistsError, ValueError, OSError, MemoryError) as e:
            failed.append((str(src), str(e)))
            tqdm.write(f"failed: {e}", file=sys.stderr)
    print(f"written {len(written)}, skipped {len(skipped)}, failed {len(failed)}  (model x{s}, out {out_dir})")
    for _, dst in written:
        print(f"  wrote   {dst}")
    for src, why in skipped:
        print(f"  skipped {src}: {why}")
    for src, why in failed:
        print(f"  FAILED  {why if str(src) in why else f'{src}: {why}'}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
