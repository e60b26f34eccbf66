"""Build a MOS study: make the stimuli, store them blind, register the study in the database.

    python -m pipelines.prepare_study --name set14-x4 --hr-dir ../shared/data/Set14 --scale 4 \\
        --method nearest --method bicubic --method hr --model runs/srgan --mode acr \\
        --votes-per-stimulus 10 --db sqlite:///mos/mos.db [--stimuli-dir DIR] [--crop 128] \\
        [--metric lpips --metric niqe ...] [--sampling balanced|active|adaptive [--target-half-width 0.3]] \\
        [--tile N] [--max-memory 2GB] [--verbose]

The stimuli (8-bit, blind, content-addressed PNGs with PSNR/SSIM on Y against the 8-bit HR) are made
by :mod:`srkeras.stimulus_set` and registered with :func:`db.register_study` by the job
:func:`jobs.mos_study.make_study`; this module parses the options into its
:class:`~jobs.mos_study.StudySpec` and maps the job's :class:`~srkeras.stimuli.StudyInputError` to a
message and exit status 1.
``--metric NAME`` (repeat; PSNR and SSIM are always stored) also stores the metrics of
:mod:`srkeras.metrics` (``lpips``, ``lpips_vgg``, ``dists``, ``niqe``, ``brisque``) of every stimulus,
computed on its stored 8-bit pixels as ``pipelines.evaluate`` computes them; ``pipelines.report``
correlates MOS with each of them and ranks them. A metric whose assets are not installed stops the run
before any stimulus is made, naming the ``python -m pipelines.pretrained fetch ...`` command.

``--sampling active`` (``--mode pair``/``both``) picks each pair trial when the rater reaches it, where
the answers so far say it is most informative (:mod:`srkeras.mos.active`, after ASAP); ``--sampling
adaptive --target-half-width 0.3`` (``--mode acr``/``both``) gives further votes to the stimuli whose MOS
interval is widest until every 95 % half-width is at most 0.3. ``balanced`` (default) gives every item
``--votes-per-stimulus`` votes.

``nearest`` and ``hr`` are the hidden anchors of the SRGAN protocol (Ledig et al. 2017, sec. 3.4:
NN rated 1, HR rated 5) and are always included. ``--calibration-images K`` source images (seeded
choice, or named with ``--calibration``) only provide the NN/HR examples of the instructions and are
never trials. Unreadable image files are reported by name and skipped; the exit status is then 1
(the study is registered without them), as for ``pipelines.evaluate``.

All or nothing: the stimuli are written into a temporary folder inside the stimuli folder
(:class:`srkeras.stimuli.Staging`), moved in once all are made, and registered in one transaction; if anything fails
(a full disk, a refused registration, Ctrl-C) the files this run added are removed again and no row
is stored. A run killed with -9 before that leaves only the temporary folder, which the next run
removes. Non-UTF-8 file names are stored and shown with ``\\xNN`` escapes.
"""

from __future__ import annotations

import argparse
import sys

from jobs.mos_study import StudySpec, make_study
from pipelines.arguments import add_max_memory
from srkeras.metrics.registry import METRICS
from srkeras.stimuli import StudyInputError
from srkeras.stimulus_set import CLASSICAL, DEFAULT_METRICS

EXIT_INPUT = 1  # an unusable input (what ``raise SystemExit(message)`` exits with)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m pipelines.prepare_study", description=__doc__.split("\n\n")[0])
    p.add_argument("--name", required=True, help="study name (unique in the database)")
    p.add_argument("--hr-dir", required=True, help="folder of HR images")
    p.add_argument("--scale", type=int, default=4)
    p.add_argument("--method", action="append", default=[], choices=CLASSICAL, help="nearest | bicubic | hr (repeat)")
    p.add_argument("--model", action="append", default=[], help="RUN_DIR or model.keras, or NAME=PATH (repeat)")
    p.add_argument("--mode", choices=("acr", "pair", "both"), default="acr")
    p.add_argument("--votes-per-stimulus", type=int, default=5, help="target votes per stimulus (or pair)")
    p.add_argument("--db", required=True, help="SQLAlchemy URL, e.g. sqlite:///mos/mos.db")
    p.add_argument("--stimuli-dir", help="where stimulus PNGs go (default: beside a SQLite DB, else ./stimuli)")
    p.add_argument("--crop", type=int, help="centre-crop HR images to N x N px (multiple of --scale)")
    p.add_argument("--calibration-images", type=int, default=1, help="source images kept for the instructions")
    p.add_argument("--calibration", action="append", default=[], help="use this file name as a calibration image")
    p.add_argument("--trials-per-rater", type=int, help="cap per rater (default: every stimulus once)")
    p.add_argument("--break-every", type=int, default=20, help="break prompt every N trials (0: never)")
    p.add_argument("--repeats", type=int, default=2, help="test-retest repeats per rater")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--max-images", type=int, help="use only the first N images")
    p.add_argument("--tile", type=int, help="tile size for --model inference")
    add_max_memory(p, "--model inference")
    p.add_argument("--precision", choices=("float32", "bfloat16", "auto"), default="float32",
                   help="--model compute precision (auto: float32 for stimuli; bfloat16 only where the CPU has it)")
    p.add_argument("--metric", action="append", default=[], choices=list(METRICS),
                   help="metric stored per stimulus (repeat; psnr and ssim are always stored)")
    p.add_argument("--sampling", choices=("balanced", "active", "adaptive"), default="balanced",
                   help="balanced: equal votes per item; active (pairs): the next pair chosen from the answers "
                        "so far; adaptive (ACR): further votes to the widest MOS intervals")
    p.add_argument("--target-half-width", type=float,
                   help="adaptive: stop once every MOS 95%% interval half-width is at most this (e.g. 0.3)")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--crowd", choices=("prolific", "mturk"),
                   help="crowd platform: its participant-ID URL parameters are kept with each rater")
    p.add_argument("--completion-url", metavar="TEMPLATE",
                   help="send finished raters here; {code} = their completion code "
                        "(e.g. https://app.prolific.com/submissions/complete?cc={code})")
    p.add_argument("--qualification", action=argparse.BooleanOptionalAction, default=None,
                   help="screen check and practice with feedback before rating (default: on with --crowd)")
    p.add_argument("--verbose", action="store_true", help="show TensorFlow's log lines")
    return p


def spec_of(a) -> StudySpec:
    return StudySpec(
        name=a.name, hr_dir=a.hr_dir, db_url=a.db, scale=a.scale, methods=tuple(a.method) or CLASSICAL,
        models=tuple(a.model), mode=a.mode, votes_per_stimulus=a.votes_per_stimulus, stimuli_dir=a.stimuli_dir,
        crop=a.crop, calibration_images=a.calibration_images, calibration=tuple(a.calibration),
        trials_per_rater=a.trials_per_rater, break_every=a.break_every, repeats=a.repeats, seed=a.seed,
        max_images=a.max_images, tile=a.tile, max_memory=a.max_memory, metrics=tuple(a.metric) or DEFAULT_METRICS, progress=not a.no_progress,
        crowd=a.crowd, completion_url=a.completion_url, qualification=a.qualification,
        sampling=a.sampling, target_half_width=a.target_half_width,
        precision=a.precision,
    )


def _report(info, summary: dict) -> None:
    print(
        f"study {info.name!r} ({info.mode}, x{info.scale}): {summary['test_images']} test images, "
        f"calibration {summary['calibration_images']}, {summary['stimuli']} stimuli in {summary['stimuli_dir']}"
    )
    if summary["skipped"]:
        print(f"skipped {len(summary['skipped'])} file(s):")
        for s in summary["skipped"]:
            print(f"  {s}")
    extra = list(dict.fromkeys(k for v in summary["methods"].values() for k in v if k not in ("psnr", "ssim")))
    print(f"{'method':<24} {'PSNR (Y)':>9} {'SSIM':>7}" + "".join(f" {k[:9]:>9}" for k in extra))
    for m, v in summary["methods"].items():
        print(f"{m:<24} {v['psnr']:>9.2f} {v['ssim']:>7.4f}" + "".join(f" {v.get(k, float('nan')):>9.4f}" for k in extra))


def main(argv=None) -> int:
    args = _parser().parse_args(argv)
    from srkeras.inference.quiet import quiet_tensorflow

    quiet_tensorflow(args.verbose)
    spec = spec_of(args)
    if spec.models and spec.precision != "float32":
        from srkeras.inference.precision import PrecisionError, resolve_precision

        try:
            resolve_precision(spec.precision, "score")
        except PrecisionError as e:
            print(f"--precision {spec.precision}: {e}", file=sys.stderr)
            return EXIT_INPUT
    try:
        info, summary = make_study(spec)  # notes and skipped files on standard error
    except StudyInputError as e:  # what the library refused, said as it said it
        from srkeras.pretrained import hint_for

        print(f"{e}{hint_for(e, [m.split('=', 1)[-1] for m in spec.models])}", file=sys.stderr)
        return EXIT_INPUT
    _report(info, summary)
    return EXIT_INPUT if summary["skipped"] else 0


if __name__ == "__main__":
    sys.exit(main())
