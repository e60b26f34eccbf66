"""Export a generator for serving.

    python -m pipelines.export --model RUN_DIR|PATH.keras|NAME --out DIR [--format keras|savedmodel|tflite]
        [--channels-first-to-last]

savedmodel (default): DIR/saved_model with a ``serving_default`` signature ``lr`` (N, H, W, C)
float32 in [0, 1] -> ``sr`` (N, sH, sW, C), H and W dynamic; loads with TensorFlow alone.
keras: DIR/model.keras made of built-in Keras layers (PixelShuffle as an exact frozen
Conv2DTranspose), so plain ``keras.saving.load_model`` reads it; a model with BicubicUpsample (SRCNN)
is saved as is, with a warning that it needs srkeras to load.
tflite: DIR/model.tflite (dynamic H, W; resize the input tensor first).
Models are exported in float32, channels last.
"""

from __future__ import annotations

import argparse
import os
import sys


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m pipelines.export", description=__doc__.split("\n\n")[0])
    p.add_argument("--model", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--format", choices=("keras", "savedmodel", "tflite"), default="savedmodel")
    p.add_argument(
        "--channels-first-to-last", action="store_true", help="rebuild a channels_first model as channels_last first"
    )
    args = p.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from srkeras.inference import ModelNotFoundError, load_generator
    from srkeras.inference.export import export

    try:
        served = load_generator(args.model)
    except (ModelNotFoundError, OSError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if args.channels_first_to_last:
        from srkeras.inference.serving import to_channels_last

        model, report = to_channels_last(served.model)
        served = served.rebuilt(lambda _: model)
        print(f"channels_last rebuild: {report}")
    path = export(served, args.out, args.format)
    print(f"exported x{served.scale} {args.format} model to {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
