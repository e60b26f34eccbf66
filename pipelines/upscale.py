"""Upscale image files with a trained generator, tiled so memory stays bounded.

    python -m pipelines.upscale INPUT... --model RUN_DIR|PATH.keras|NAME --scale 4 --out DIR
        [--device cpu|gpu] [--tile N] [--max-memory 2GB] [--overwrite] [--max-pixels N]
        [--precision auto|float32|bfloat16] [--verbose]

INPUT: files, folders (their images) and globs. Outputs keep the input's name, format and mode
(grey, RGBA with bicubic alpha, palette, 16-bit; 16-bit non-PNG inputs are written as PNG), with
EXIF orientation applied and the ICC profile carried over. PNG outputs are streamed band by band.
Files are written atomically (:func:`srkeras.files.write_atomically`: mode 0666 minus the umask)
and never replace an existing file without --overwrite. Bad inputs
are reported by name and skipped; the exit code is 1 if any file failed, 2 if nothing could start.

Every destination is decided before any work (:mod:`srkeras.inference.destinations`): inputs that
would be written to the same output file (``a.png`` from two folders, ``b.png`` and ``b.gif``) or
onto themselves are refused by name (FAILED, exit 1), never written one over the other. The output
folder is checked first (exit 2 if it cannot be written); temporaries that a killed run left there
are removed. Non-UTF-8 file names are processed and shown with ``\\xNN`` escapes.

``--precision`` (:mod:`srkeras.inference.precision`): ``auto`` (default) runs bfloat16 where the CPU
has AMX or AVX512-BF16 and the model is large enough for it to pay, float32 (exact) otherwise;
``bfloat16`` is refused (exit 2) on a CPU without it. TensorFlow's log lines are shown with --verbose.

``--max-memory`` also bounds the impulse probe that measures a model's receptive field when its layer
graph cannot (a layer of unknown reach): the probe sizes that fit run, with a line per size on standard
error; a budget too small for the smallest fails each image that needs it, naming the budget to give.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from pipelines.arguments import add_max_memory, at_least
from srkeras.files import display_name


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="python -m pipelines.upscale", description=__doc__.split("\n\n")[0])
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="image files, folders or globs")
    p.add_argument("--model", required=True, help="training run folder, .keras file, SavedModel folder or model name")
    p.add_argument("--scale", type=int, default=None, help="expected upscaling factor (checked against the model)")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--device", choices=("cpu", "gpu"), default="cpu")
    p.add_argument("--tile", type=at_least(0), default=None, help="core tile edge in LR pixels; 0 = untiled; default from --max-memory")
    add_max_memory(p)
    p.add_argument("--batch-size", type=at_least(1), default=None, help="tiles per model call (default from the budget)")
    p.add_argument("--overwrite", action="store_true", help="replace existing output files")
    p.add_argument("--max-pixels", type=at_least(1), default=None, help="decompression-bomb guard (default 16384^2 pixels)")
    p.add_argument("--precision", choices=("float32", "bfloat16", "auto"), default="auto",
                   help="compute precision; auto (default): bfloat16 where the CPU has AMX/AVX512-BF16 and the model is large, "
                        "else float32 (exact)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.add_argument("--verbose", action="store_true", help="show TensorFlow's log lines")
    return p.parse_args(argv)


def _load(args):
    """The served model, or an error message."""
    from srkeras.inference import ModelNotFoundError, load_generator

    if args.device == "gpu":
        import tensorflow as tf

        if not tf.config.list_physical_devices("GPU"):
            return "--device gpu but TensorFlow sees no GPU (install the [gpu] extra / CUDA)"
    try:
        served = load_generator(args.model, dtype="float32" if args.device == "cpu" else None, precision=args.precision)
        s = served.scale
        if not args.quiet:
            served.progress = lambda message: print(message, file=sys.stderr, flush=True)  # a probe, if one must run
    except (ModelNotFoundError, ValueError, OSError) as e:
        from srkeras.pretrained import hint_for

        return f"{e}{hint_for(e, [args.model])}"
    if args.scale is not None and args.scale != s:
        return f"the model upscales x{s}, but --scale {args.scale} was asked"
    return served


def _one(src: Path, dst: Path, served, args, opts) -> str | None:
    """Upscale ``src`` into ``dst``; None, or why it failed (naming the file)."""
    from tqdm import tqdm

    from srkeras.data import DEFAULT_MAX_PIXELS, ImageLoadError, read_image
    from srkeras.files import write_error
    from srkeras.inference import tile_count, write_upscaled

    max_pixels = args.max_pixels if args.max_pixels is not None else DEFAULT_MAX_PIXELS
    try:
        img = read_image(src, max_pixels=max_pixels)
        total = tile_count(served, img.pixels.shape, **opts)
        with tqdm(total=total, desc=display_name(src.name), unit="tile", leave=False, disable=args.quiet) as tbar:
            write_upscaled(served, img, dst, overwrite=args.overwrite, progress=tbar.update, **opts)
    except (ImageLoadError, FileExistsError, ValueError) as e:
        return str(e)
    except MemoryError:
        return f"{display_name(src)}: not enough memory (lower --max-memory or --tile)"
    except OSError as e:  # writing: disk full, folder removed... (reading errors are ImageLoadError)
        return write_error(dst, e)
    return None


def _summary(out_dir: Path, served, written, skipped, failed) -> None:
    how = f"x{served.scale}" + (" bfloat16" if served.precision == "bfloat16" else "")
    print(f"written {len(written)}, skipped {len(skipped)}, failed {len(failed)}  (model {how}, out {display_name(out_dir)})")
    for dst in written:
        print(f"  wrote   {display_name(dst)}")
    for src, why in skipped:
        print(f"  skipped {display_name(src)}: {why}")
    for why in failed:
        print(f"  FAILED  {why}")


def _preflight(args, out_dir: Path) -> str | None:
    """The model, a writable --out with room for the outputs: every missing item in one message, or None."""
    from srkeras.inference.destinations import expand_inputs
    from srkeras.preflight import Preflight

    pf = Preflight("pipelines.upscale")
    pf.upscaling(args.model, expand_inputs(args.inputs)[0], out_dir, args.scale)
    return pf.message() if pf.problems else None


def main(argv=None) -> int:
    args = parse_args(argv)
    started = time.time()
    if args.device == "cpu":
        os.environ["CUDA_VISIBLE_DEVICES"] = "-1"  # before TensorFlow is imported
    from srkeras.inference.lean import lean_tensorflow
    from srkeras.inference.quiet import quiet_tensorflow

    quiet_tensorflow(args.verbose)
    lean_tensorflow()  # a model served from its artifact never builds Keras (srkeras.inference.compiled)
    from tqdm import tqdm

    from srkeras.files import remove_stale_temporaries
    from srkeras.inference import parse_memory
    from srkeras.inference.destinations import expand_inputs, plan_outputs

    out_dir = Path(args.out)
    problem = _preflight(args, out_dir)
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    for stale in remove_stale_temporaries(out_dir, started):
        print(f"removed {display_name(stale)} (left by an interrupted run)", file=sys.stderr)
    files, errors = expand_inputs(args.inputs)
    jobs, skipped, refused = plan_outputs(files, out_dir, args.overwrite)
    served = _load(args)
    if isinstance(served, str):
        print(f"error: {served}", file=sys.stderr)
        return 2
    opts = {"tile": args.tile, "max_memory": parse_memory(args.max_memory), "batch_size": args.batch_size}
    written, failed = [], [why for _, why in errors] + [why for _, why in refused]
    for why in failed:
        tqdm.write(f"failed: {why}", file=sys.stderr)
    for src, dst in tqdm(jobs, desc="images", unit="img", disable=args.quiet):
        why = _one(Path(src), dst, served, args, opts)
        if why is None:
            written.append(dst)
        else:
            failed.append(why if display_name(src) in why else f"{display_name(src)}: {why}")
            tqdm.write(f"failed: {failed[-1]}", file=sys.stderr)
    _summary(out_dir, served, written, skipped, failed)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
