"""Score SR methods on a folder of HR images under the paper protocol.

    python -m pipelines.evaluate --hr-dir DIR --scale 4 --method bicubic [--method nearest] \
        [--model PATH.keras|RUN_DIR|NAME [--name NAME]] [--sr-dir DIR [--name NAME]] \
        [--metric psnr --metric ssim --metric lpips --metric niqe ...] [--tile N] [--max-memory 2GB] \
        --out results.json

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

JSON has no Infinity or NaN: a score that is not a finite number -- the PSNR of an SR image identical
to its HR (and so its method's mean), or the mean of a method that scored no image -- is written as
``null``, and a top-level ``"notes"`` list says why (the key is absent otherwise).

Images are keyed by their stem (``"baby"``) in the table and the JSON; files whose stems collide
(``a.png`` and ``a.jpg``) are keyed by their file names (``"a.png"``, ``"a.jpg"``) instead, so every
file is scored or listed as skipped. File names that are not UTF-8 are shown with ``\\xNN`` escapes.

``--max-memory`` (default 2GB) bounds the tiles of model inference and the impulse probe that measures
a model's receptive field when its layer graph cannot (its steps are printed); a budget too small for
the smallest probe stops the run before it (exit 2), naming the model and the budget it needs.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from pipelines.arguments import add_max_memory, at_least
from srkeras import evaluation_run as job
from srkeras.data import DEFAULT_MAX_PIXELS, DEGRADATIONS, UPSAMPLERS
from srkeras.files import display_name
from srkeras.metrics.registry import METRICS

EXIT_SKIPPED, EXIT_FAILED = 1, 2  # some files skipped (the rest scored and written); nothing usable



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
    p.add_argument("--tile", type=at_least(0), default=None, help="tile size for model inference (0 = whole image)")
    add_max_memory(p, "model inference")
    p.add_argument("--max-pixels", type=at_least(1), default=DEFAULT_MAX_PIXELS, help="refuse larger images (bomb guard)")
    p.add_argument("--precision", choices=("float32", "bfloat16", "auto"), default="float32",
                   help="model compute precision (auto: float32 for scoring; bfloat16 only where the CPU has it)")
    p.add_argument("--out", type=Path, help="write the results as JSON here")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--verbose", action="store_true", help="show TensorFlow's log lines")
    args = p.parse_args(argv)
    if args.scale < 1:
        p.error("--scale must be a positive integer")
    if args.sr_dir is not None and args.hr_dir is None:
        p.error("--sr-dir needs --hr-dir (the HR images its outputs are scored against)")
    if len(args.name) > len(args.model) + (args.sr_dir is not None):
        p.error("more --name than --model (and --sr-dir) arguments")
    if not args.method and not args.model and args.sr_dir is None:
        args.method = ["bicubic"]
    args.metric = list(dict.fromkeys(args.metric or job.DEFAULT_METRICS))
    return args


def spec_of(args) -> job.EvaluationSpec:
    return job.EvaluationSpec(
        hr_dir=args.hr_dir, scale=args.scale, methods=tuple(args.method), models=tuple(args.model), sr_dir=args.sr_dir,
        names=tuple(args.name), metrics=tuple(args.metric), degradation=args.degradation, tile=args.tile,
        max_memory=args.max_memory,
        max_pixels=args.max_pixels, out=args.out, progress=not args.quiet, precision=args.precision,
    )


def _print_skipped(skipped: dict, header: str | None) -> None:
    if header:
        print(header, file=sys.stderr)
    for why in skipped.values():
        print(f"  {why}", file=sys.stderr)


def _precision_problem(spec) -> str | None:
    """Why --precision cannot run here (bfloat16 on a CPU without it), or None."""
    if not spec.models:
        return None
    from srkeras.inference.precision import PrecisionError, resolve_precision

    try:
        resolve_precision(spec.precision, "score")
    except PrecisionError as e:
        return f"--precision {spec.precision}: {e}"
    return None


def main(argv=None) -> int:
    args = parse_args(argv)
    from srkeras.inference.quiet import quiet_tensorflow

    quiet_tensorflow(args.verbose)
    spec = spec_of(args)
    problem = _precision_problem(spec) or job.start_up_problem(spec, time.time())
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return EXIT_FAILED
    from srkeras.inference.planning import ProbeMemoryError  # no TensorFlow import

    try:
        result = job.run(spec)
    except (FileNotFoundError, job.SizeMismatch) as e:
        from srkeras.pretrained import hint_for

        print(f"error: {e}{hint_for(e, spec.models)}", file=sys.stderr)
        return EXIT_FAILED
    except job.EvaluationError as e:
        raise SystemExit(f"error: {e}") from None
    except ProbeMemoryError as e:  # --max-memory too small for a model's receptive-field probe
        print(f"error: {e}", file=sys.stderr)
        return EXIT_FAILED
    skipped = result["skipped"]
    if not any(r["n_images"] for r in result["methods"].values()):
        print("error: no image could be scored", file=sys.stderr)
        _print_skipped(skipped, None)
        return EXIT_FAILED
    print(job.format_table(result))
    if skipped:
        _print_skipped(skipped, f"\n{len(skipped)} file(s) skipped:")
    if spec.out:
        failed = job.write_result(spec.out, result)
        if failed:
            print(f"error: {failed} (the scores above were not saved)", file=sys.stderr)
            return EXIT_FAILED
        print(f"\nwrote {display_name(spec.out)}")
    return EXIT_SKIPPED if skipped else 0


if __name__ == "__main__":
    sys.exit(main())
