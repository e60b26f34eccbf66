"""Export a generator for serving.

    python -m pipelines.export --model RUN_DIR|PATH.keras|NAME --out DIR [--format keras|savedmodel|tflite]
        [--channels-first-to-last]

savedmodel (default): DIR/saved_model with a ``serving_default`` signature ``lr`` (N, H, W, C)
float32 in [0, 1] -> ``sr`` (N, sH, sW, C), H and W dynamic; loads with TensorFlow alone.
keras: DIR/model.keras made of built-in Keras layers (PixelShuffle as an exact frozen
Conv2DTranspose), so plain ``keras.saving.load_model`` reads it; a model with BicubicUpsample (SRCNN)
is saved as is, with a warning that it needs srkeras to load.
tflite: DIR/model.tflite (dynamic H, W; resize the input tensor first).
Models are exported in float32, channels last. An existing export in DIR is replaced only with
``--overwrite``; an unwritable DIR (a file, read-only) is refused before the model is loaded, and a
failed write (disk full) names the path. Errors: one line, exit 2.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from srkeras.files import destination_problem, display_name


def _destination_problem(out: str, fmt: str, overwrite: bool) -> str | None:
    """Why the export cannot be written to ``out``, checked before any work; None if it can."""
    from srkeras.inference.export import export_path

    problem = destination_problem(out, folder=True)
    if problem:
        return f"--out {problem}"
    target = export_path(out, fmt)
    if target.exists() and not overwrite:
        return f"{display_name(target)}: exists; pass --overwrite to replace it"
    return None


def _write(served, out: str, fmt: str) -> Path | str:
    """The exported path, or the message of the failed write naming it (disk full, ...)."""
    import tensorflow as tf

    from srkeras.files import write_error
    from srkeras.inference.export import export, export_path

    try:
        return export(served, out, fmt)
    except OSError as e:
        return write_error(export_path(out, fmt), e)
    except tf.errors.OpError as e:  # a SavedModel's files are written by TensorFlow
        return f"cannot write {display_name(export_path(out, fmt))}: {e.message.strip().splitlines()[0]}"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m pipelines.export", description=__doc__.split("\n\n")[0])
    p.add_argument("--model", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--format", choices=("keras", "savedmodel", "tflite"), default="savedmodel")
    p.add_argument(
        "--channels-first-to-last", action="store_true", help="rebuild a channels_first model as channels_last first"
    )
    p.add_argument("--overwrite", action="store_true", help="replace an existing export in --out")
    p.add_argument("--verbose", action="store_true", help="show TensorFlow's log lines")
    args = p.parse_args(argv)
    from srkeras.inference.quiet import quiet_tensorflow

    quiet_tensorflow(args.verbose)
    problem = _destination_problem(args.out, args.format, args.overwrite)
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    from srkeras.inference import ModelNotFoundError, load_generator

    try:
        served = load_generator(args.model)
    except (ModelNotFoundError, OSError, ValueError) as e:
        from srkeras.pretrained import did_you_mean

        hint = did_you_mean(args.model) if isinstance(e, ModelNotFoundError) else ""
        print(f"error: {e}{hint}", file=sys.stderr)
        return 2
    if args.channels_first_to_last:
        from srkeras.inference.serving import to_channels_last

        model, report = to_channels_last(served.model)
        served = served.rebuilt(lambda _: model)
        print(f"channels_last rebuild: {report}")
    path = _write(served, args.out, args.format)
    if isinstance(path, str):
        print(f"error: {path}", file=sys.stderr)
        return 2
    print(f"exported x{served.scale} {args.format} model to {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
