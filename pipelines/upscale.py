"""Upscale image files with a trained generator, tiled so memory stays bounded.

    python -m pipelines.upscale INPUT... --model RUN_DIR|PATH.keras|NAME --scale 4 --out DIR
        [--device cpu|gpu] [--tile N] [--max-memory 2GB] [--overwrite] [--max-pixels N]

INPUT: files, folders (their images) and globs. Outputs keep the input's name, format and mode
(grey, RGBA with bicubic alpha, palette, 16-bit; 16-bit non-PNG inputs are written as PNG), with
EXIF orientation applied and the ICC profile carried over. PNG outputs are streamed band by band.
Files are written atomically (:func:`srkeras.data.io.write_atomically`: mode 0666 minus the umask)
and never replace an existing file without --overwrite. Bad inputs
are reported by name and skipped; the exit code is 1 if any file failed, 2 if nothing could start.

Every destination is decided before any work: inputs that would be written to the same output file
(``a.png`` from two folders, ``b.png`` and ``b.gif``) or onto themselves are refused by name (FAILED,
exit 1), never written one over the other. The output folder is checked first (exit 2 if it cannot
be written); temporaries that a killed run left there are removed. Non-UTF-8 file names are
processed and shown with ``\\xNN`` escapes.
"""

from __future__ import annotations

import argparse
import glob
import os
import sys
import time
from pathlib import Path

from srkeras.data.io import display_name

KEEP_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")


def _memory_budget(value: str) -> str:
    """argparse type of --max-memory: a positive size such as 2GB, 512MB or 1.5GiB."""
    from srkeras.inference.planning import parse_memory  # no TensorFlow import

    try:
        n = parse_memory(value)
    except (ValueError, OverflowError):
        raise argparse.ArgumentTypeError(f"{value!r} is not a memory size (e.g. 2GB, 512MB, 1.5GiB)") from None
    if n <= 0:
        raise argparse.ArgumentTypeError(f"{value!r}: the budget must be more than 0 bytes")
    return value


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="python -m pipelines.upscale", description=__doc__.split("\n\n")[0])
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="image files, folders or globs")
    p.add_argument("--model", required=True, help="training run folder, .keras file, SavedModel folder or model name")
    p.add_argument("--scale", type=int, default=None, help="expected upscaling factor (checked against the model)")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--device", choices=("cpu", "gpu"), default="cpu")
    p.add_argument("--tile", type=int, default=None, help="core tile edge in LR pixels; 0 = untiled; default from --max-memory")
    p.add_argument("--max-memory", default="2GB", type=_memory_budget, help="memory budget for the model's activations (e.g. 2GB, 512MB)")
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
            except OSError as e:
                errors.append((item, str(e) if isinstance(e, FileNotFoundError) else f"{display_name(item)}: {e.strerror}"))
        elif p.is_file():
            add(p)
        elif any(ch in item for ch in "*?["):
            matches = sorted(m for m in glob.glob(item, recursive=True) if Path(m).is_file())
            matches = [m for m in matches if Path(m).suffix.lower() in IMAGE_EXTENSIONS]
            if not matches:
                errors.append((item, f"{display_name(item)}: glob matches no image files"))
            for m in matches:
                add(m)
        else:
            errors.append((item, f"{display_name(item)}: no such file or folder"))
    return files, errors


def output_path(src: Path, out_dir: Path, bit_depth: int) -> Path:
    suffix = src.suffix.lower()
    if suffix not in KEEP_SUFFIXES or (bit_depth == 16 and suffix != ".png"):
        suffix = ".png"
    return out_dir / (src.stem + suffix)


def _bit_depth(src: Path) -> int:
    """16 for a 16-bit grey file that is not a PNG (written as PNG), from its header; else 8."""
    if src.suffix.lower() == ".png" or src.suffix.lower() not in KEEP_SUFFIXES:
        return 8  # written as PNG either way
    from PIL import Image

    try:
        with Image.open(src) as im:  # the header only
            return 16 if im.mode.startswith("I;16") or im.mode == "I" else 8
    except Exception:  # unreadable: it fails by name when it is read
        return 8


def _same_file(a, b) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def plan_outputs(files, out_dir: Path, overwrite: bool):
    """-> (jobs [(src, dst)], skipped [(src, why)], refused [(src, why)]), before any work.

    Inputs sharing a destination are all refused (none is written over another), as is an input
    that is its own destination; an existing destination is skipped without --overwrite.
    """
    dests = [output_path(Path(f), out_dir, _bit_depth(Path(f))) for f in files]
    by_dst: dict[Path, list] = {}
    for src, dst in zip(files, dests):
        by_dst.setdefault(dst, []).append(src)
    jobs, skipped, refused = [], [], []
    for src, dst in zip(files, dests):
        others = [display_name(o) for o in by_dst[dst] if o != src]
        if others:
            why = f"{display_name(src)}: would be written to {display_name(dst)} like {', '.join(others)}"
            refused.append((src, why + "; rename one or upscale them into separate --out folders"))
        elif _same_file(src, dst):
            refused.append((src, f"{display_name(src)}: is its own output {display_name(dst)}; choose another --out"))
        elif dst.is_dir():
            refused.append((src, f"{display_name(src)}: its output {display_name(dst)} is a folder"))
        elif dst.exists() and not overwrite:
            skipped.append((src, f"{display_name(dst)} exists (use --overwrite)"))
        else:
            jobs.append((src, dst))
    return jobs, skipped, refused


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


def _load(args):
    """(model, scale) or an error message."""
    from srkeras.inference import load_generator, model_scale
    from srkeras.inference.loading import ModelNotFoundError

    if args.device == "gpu":
        import tensorflow as tf

        if not tf.config.list_physical_devices("GPU"):
            return "--device gpu but TensorFlow sees no GPU (install the [gpu] extra / CUDA)"
    try:
        model = load_generator(args.model, dtype="float32" if args.device == "cpu" else None)
        if args.precision == "bfloat16":
            from srkeras.inference.serving import as_bfloat16, bf16_supported

            if not bf16_supported():
                print("warning: this CPU has no native bfloat16; it will be emulated (slow)", file=sys.stderr)
            model = as_bfloat16(model)
        s = model_scale(model)
    except (ModelNotFoundError, ValueError, OSError) as e:
        return str(e)
    if args.scale is not None and args.scale != s:
        return f"the model upscales x{s}, but --scale {args.scale} was asked"
    return model, s


def _one(src: Path, dst: Path, model, args, opts) -> str | None:
    """Upscale ``src`` into ``dst``; None, or why it failed (naming the file)."""
    from tqdm import tqdm

    from srkeras.data import DEFAULT_MAX_PIXELS, ImageLoadError, read_image
    from srkeras.data.io import write_error
    from srkeras.inference import tile_count

    max_pixels = args.max_pixels if args.max_pixels is not None else DEFAULT_MAX_PIXELS
    try:
        img = read_image(src, max_pixels=max_pixels)
        total = tile_count(model, img.pixels.shape, **opts)
        with tqdm(total=total, desc=display_name(src.name), unit="tile", leave=False, disable=args.quiet) as tbar:
            use_stream = dst.suffix == ".png" and img.source_mode != "P"
            (_stream_png if use_stream else _save_whole)(dst, model, img, opts, tbar.update, args.overwrite)
    except (ImageLoadError, FileExistsError, ValueError) as e:
        return str(e)
    except MemoryError:
        return f"{display_name(src)}: not enough memory (lower --max-memory or --tile)"
    except OSError as e:  # writing: disk full, folder removed... (reading errors are ImageLoadError)
        return write_error(dst, e)
    return None


def main(argv=None) -> int:
    args = parse_args(argv)
    started = time.time()
    if args.device == "cpu":
        os.environ["CUDA_VISIBLE_DEVICES"] = "-1"  # before TensorFlow is imported
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from tqdm import tqdm

    from srkeras.data.io import destination_problem, remove_stale_temporaries
    from srkeras.inference import parse_memory

    out_dir = Path(args.out)
    problem = destination_problem(out_dir, folder=True)
    if problem:
        print(f"error: --out {problem}", file=sys.stderr)
        return 2
    for stale in remove_stale_temporaries(out_dir, started):
        print(f"removed {display_name(stale)} (left by an interrupted run)", file=sys.stderr)
    files, errors = expand_inputs(args.inputs)
    jobs, skipped, refused = plan_outputs(files, out_dir, args.overwrite)
    loaded = _load(args)
    if isinstance(loaded, str):
        print(f"error: {loaded}", file=sys.stderr)
        return 2
    model, s = loaded
    opts = {"tile": args.tile, "max_memory": parse_memory(args.max_memory), "batch_size": args.batch_size}
    written, failed = [], [why for _, why in errors] + [why for _, why in refused]
    for why in failed:
        tqdm.write(f"failed: {why}", file=sys.stderr)
    for src, dst in tqdm(jobs, desc="images", unit="img", disable=args.quiet):
        why = _one(Path(src), dst, model, args, opts)
        if why is None:
            written.append(dst)
        else:
            failed.append(why if display_name(src) in why else f"{display_name(src)}: {why}")
            tqdm.write(f"failed: {failed[-1]}", file=sys.stderr)
    print(f"written {len(written)}, skipped {len(skipped)}, failed {len(failed)}  (model x{s}, out {display_name(out_dir)})")
    for dst in written:
        print(f"  wrote   {display_name(dst)}")
    for src, why in skipped:
        print(f"  skipped {display_name(src)}: {why}")
    for why in failed:
        print(f"  FAILED  {why}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
