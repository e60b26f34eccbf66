"""Build a MOS study: make the stimuli, store them blind, register the study in the database.

    python -m pipelines.prepare_study --name set14-x4 --hr-dir ../shared/data/Set14 --scale 4 \\
        --method nearest --method bicubic --method hr --model runs/srgan --mode acr \\
        --votes-per-stimulus 10 --db sqlite:///mos/mos.db [--stimuli-dir DIR] [--crop 128]

For every HR image (``modcrop``-ed to the scale, optionally centre-cropped to ``--crop`` px): the LR
input is the bicubic (MATLAB ``imresize``) downscale rounded to 8 bits, as SR test sets store it;
each method's output is rounded to 8 bits and written as a PNG named by the SHA-256 of its bytes,
with no metadata (no text, ICC, EXIF or time chunks: only IHDR, IDAT, IEND), so nothing in a file
name or file reveals the method. PSNR/SSIM of each stimulus against the 8-bit HR use
:mod:`srkeras.metrics` (Y channel, ``crop_border = scale``).

``nearest`` and ``hr`` are the hidden anchors of the SRGAN protocol (Ledig et al. 2017, sec. 3.4:
NN rated 1, HR rated 5) and are always included. ``--calibration-images K`` source images (seeded
choice, or named with ``--calibration``) only provide the NN/HR examples of the instructions and are
never trials. Unreadable image files are reported by name and skipped.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import io
import random
import sys
from pathlib import Path

import numpy as np

from srkeras.data.io import write_atomically

ANCHORS = {"nearest": "low_anchor", "hr": "high_anchor"}
CLASSICAL = ("nearest", "bicubic", "hr")


@dataclasses.dataclass
class ModelSpec:
    name: str
    path: str


def png_bytes(pixels: np.ndarray) -> bytes:
    """8-bit PNG of float [0, 1] pixels (H, W, 3) or (H, W, 1) with no ancillary chunks at all."""
    from PIL import Image

    from srkeras.data import quantize

    q = quantize(np.clip(pixels, 0.0, 1.0), 8)
    if q.shape[-1] == 1:
        q = q[..., 0]
    im = Image.fromarray(q)
    buf = io.BytesIO()
    # A fresh image has empty .info: Pillow then writes IHDR/IDAT/IEND only (no tEXt, iCCP, eXIf, tIME).
    im.save(buf, format="PNG", compress_level=6)
    return buf.getvalue()


def png_chunks(data: bytes) -> list[str]:
    """Chunk types of a PNG byte string, in order (used to prove stimuli carry no metadata)."""
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError("not a PNG")
    out, i = [], 8
    while i < len(data):
        n = int.from_bytes(data[i : i + 4], "big")
        out.append(data[i + 4 : i + 8].decode("ascii"))
        i += 12 + n
    return out


def store_stimulus(stimuli_dir: Path, data: bytes) -> str:
    """Write ``data`` as ``<sha256>.png`` (atomic; an existing file with that name is identical)."""
    sha = hashlib.sha256(data).hexdigest()
    path = stimuli_dir / f"{sha}.png"
    if not path.exists():
        write_atomically(path, lambda tmp: Path(tmp).write_bytes(data))
    return sha


def default_stimuli_dir(db_url: str) -> Path:
    """Beside the database for a SQLite file (``<db folder>/stimuli``), else ``./stimuli``."""
    from sqlalchemy.engine import make_url

    u = make_url(db_url)
    if u.get_backend_name() == "sqlite" and u.database not in (None, "", ":memory:"):
        return Path(u.database).expanduser().resolve().parent / "stimuli"
    return Path("stimuli").resolve()


def parse_model_spec(spec: str) -> ModelSpec:
    """``PATH`` (name = run dir name or .keras file stem) or ``NAME=PATH``."""
    if "=" in spec and not Path(spec).exists():
        name, path = spec.split("=", 1)
    else:
        path = spec
        p = Path(spec)
        name = p.stem if p.suffix == ".keras" else p.resolve().name
    if not name:
        raise ValueError(f"--model {spec!r}: empty method name")
    return ModelSpec(name=name, path=path)


def center_crop(img: np.ndarray, size: int) -> np.ndarray:
    h, w = img.shape[:2]
    top, left = (h - size) // 2, (w - size) // 2
    return img[top : top + size, left : left + size]


def _load_models(specs: list[ModelSpec], scale: int, tile):
    """Lazily import srkeras.inference (TensorFlow) only when models are asked for."""
    if not specs:
        return {}
    from srkeras import inference

    models = {}
    for m in specs:
        try:
            model = inference.load_generator(m.path)
            s = inference.model_scale(model)
        except (OSError, ValueError) as e:  # ModelNotFoundError is a FileNotFoundError
            raise SystemExit(f"--model {m.path}: {e}") from None
        if int(s) != int(scale):
            raise SystemExit(f"--model {m.path}: the model upscales x{s}, the study is x{scale}")
        models[m.name] = (model, lambda lr, _m=model: inference.upscale(_m, lr, tile=tile))
    return models


def _stderr(msg: str) -> None:
    print(msg, file=sys.stderr)


def build_study(
    *,
    name: str,
    hr_dir,
    db_url: str,
    scale: int = 4,
    methods=("nearest", "bicubic", "hr"),
    models=(),
    mode: str = "acr",
    votes_per_stimulus: int = 5,
    stimuli_dir=None,
    crop: int | None = None,
    calibration_images: int = 1,
    calibration: tuple[str, ...] = (),
    trials_per_rater: int | None = None,
    break_every: int = 20,
    repeats: int = 2,
    seed: int = 0,
    max_images: int | None = None,
    tile: int | None = None,
    progress: bool = True,
    log=None,
):
    """Make the stimuli and register the study; returns ``(StudyInfo, summary dict)``.

    ``models`` are ``--model`` strings (``PATH`` or ``NAME=PATH``). Raises ``SystemExit`` with a clear
    message for unusable arguments, an existing study name, or too few usable images.
    """
    from tqdm import tqdm

    from db import open_database, service
    from srkeras.data import ImageLoadError, degrade, list_images, load_image, modcrop, quantize, upsample
    from srkeras.metrics import psnr, ssim

    log = log or _stderr
    scale = int(scale)
    if scale < 1:
        raise SystemExit("--scale must be >= 1")
    if crop is not None and (crop < 16 or crop % scale):
        raise SystemExit(f"--crop {crop}: must be a multiple of --scale {scale} and at least 16 px")
    classical = []
    for m in methods:
        if m not in CLASSICAL:
            raise SystemExit(f"--method {m!r}: choose from {CLASSICAL} (trained models go in --model)")
        if m not in classical:
            classical.append(m)
    for anchor in ANCHORS:
        if anchor not in classical:
            log(f"note: adding the hidden anchor method {anchor!r} (the MOS scale is calibrated on it)")
            classical.append(anchor)
    model_specs = [parse_model_spec(m) for m in models]
    all_names = classical + [m.name for m in model_specs]
    if len(set(all_names)) != len(all_names):
        raise SystemExit(f"method names must be unique, got {all_names}; use --model NAME=PATH to rename")

    stim_dir = Path(stimuli_dir).resolve() if stimuli_dir else default_stimuli_dir(db_url)
    db = open_database(db_url)
    try:
        try:
            service.get_study(db, name)
            raise SystemExit(f"a study named {name!r} already exists in {db!r}; choose another --name")
        except service.UnknownStudy:
            pass

        try:
            files = list_images(hr_dir)
        except FileNotFoundError as e:
            raise SystemExit(str(e)) from None
        if max_images:
            files = files[:max_images]
        rng = random.Random(seed)
        if calibration:
            by_name = {f.name: f for f in files} | {f.stem: f for f in files}
            unknown = [c for c in calibration if c not in by_name]
            if unknown:
                raise SystemExit(f"--calibration {unknown}: not in {hr_dir}")
            calib = {by_name[c] for c in calibration}
            cal_left = 0
        else:
            # The first K usable images of a seeded shuffle (a broken file is never picked).
            calib = set()
            cal_left = min(max(0, calibration_images), max(0, len(files) - 2))
            files = list(files)
            rng.shuffle(files)

        loaded_models = _load_models(model_specs, scale, tile)
        sources, stimuli, skipped = [], [], []
        bar = tqdm(files, desc=f"stimuli for {name}", unit="img", disable=not progress, file=sys.stderr)
        for f in bar:
            try:
                hr = load_image(f, channels=3)
            except ImageLoadError as e:
                skipped.append(str(e))  # the message names the file
                log(f"skipping {e}")
                continue
            hr = modcrop(hr, scale)
            if crop is not None:
                if min(hr.shape[:2]) < crop:
                    msg = f"skipping {f}: {hr.shape[1]}x{hr.shape[0]} is smaller than --crop {crop}"
                    skipped.append(msg)
                    log(msg)
                    continue
                hr = center_crop(hr, crop)
            if min(hr.shape[:2]) < 2 * scale + 11:
                msg = f"skipping {f}: {hr.shape[1]}x{hr.shape[0]} is too small for SSIM at x{scale}"
                skipped.append(msg)
                log(msg)
                continue
            hr8 = quantize(hr, 8).astype(np.float32) / 255.0
            lr = quantize(degrade(hr8, scale, "bicubic"), 8).astype(np.float32) / 255.0
            is_cal = f in calib or cal_left > 0
            if is_cal and f not in calib:
                cal_left -= 1
            outputs = {}
            for m in classical:
                if is_cal and m not in ANCHORS:
                    continue
                outputs[m] = hr8 if m == "hr" else upsample(lr, scale, m)
            if not is_cal:
                for mname, (_model, run) in loaded_models.items():
                    out = np.asarray(run(lr), dtype=np.float32)
                    if out.shape != hr8.shape:
                        raise SystemExit(f"--model {mname}: output {out.shape} differs from HR {hr8.shape} on {f}")
                    outputs[mname] = out
            hr_sha = hashlib.sha256(Path(f).read_bytes()).hexdigest()
            sources.append(
                service.SourceSpec(f.name, hr_sha, int(hr8.shape[1]), int(hr8.shape[0]), is_calibration=is_cal)
            )
            for mname, out in outputs.items():
                data = png_bytes(out)
                sha = store_stimulus(stim_dir, data)
                shown = quantize(np.clip(out, 0, 1), 8).astype(np.float32) / 255.0  # exactly the stored pixels
                p = psnr(shown, hr8, crop_border=scale)
                stimuli.append(
                    service.StimulusSpec(
                        method=mname,
                        source=f.name,
                        sha256=sha,
                        width=int(out.shape[1]),
                        height=int(out.shape[0]),
                        psnr=None if np.isinf(p) else p,
                        ssim=ssim(shown, hr8, crop_border=scale),
                    )
                )
        sources.sort(key=lambda x: x.name)
        n_test = sum(not s.is_calibration for s in sources)
        if n_test < 2:
            raise SystemExit(
                f"only {n_test} usable test image(s) in {hr_dir} (after {len(skipped)} skipped and "
                f"{len(sources) - n_test} calibration): a study needs at least 2"
            )
        method_specs = [service.MethodSpec(m, ANCHORS.get(m, "test"), m) for m in classical] + [
            service.MethodSpec(m.name, "test", str(m.path)) for m in model_specs
        ]
        try:
            info = service.register_study(
                db,
                name,
                mode=mode,
                scale=scale,
                votes_per_stimulus=votes_per_stimulus,
                stimuli_dir=stim_dir,
                methods=method_specs,
                sources=sources,
                stimuli=stimuli,
                trials_per_rater=trials_per_rater,
                break_every=break_every,
                repeats=repeats,
                seed=seed,
                crop=crop,
            )
        except ValueError as e:
            raise SystemExit(f"cannot register study {name!r}: {e}") from None
        per_method = {}
        test_names = {s.name for s in sources if not s.is_calibration}
        for m in all_names:
            ps = [st.psnr for st in stimuli if st.method == m and st.source in test_names]
            ss = [st.ssim for st in stimuli if st.method == m and st.source in test_names]
            finite = [p for p in ps if p is not None]
            per_method[m] = {
                "psnr": (sum(finite) / len(finite)) if finite else float("inf"),
                "ssim": sum(ss) / len(ss) if ss else float("nan"),
            }
        summary = {
            "study": info.name,
            "stimuli_dir": str(stim_dir),
            "test_images": n_test,
            "calibration_images": [s.name for s in sources if s.is_calibration],
            "stimuli": len(stimuli),
            "skipped": skipped,
            "methods": per_method,
        }
        return info, summary
    finally:
        db.close()


def main(argv=None) -> int:
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
    p.add_argument("--no-progress", action="store_true")
    a = p.parse_args(argv)
    info, summary = build_study(
        name=a.name,
        hr_dir=a.hr_dir,
        db_url=a.db,
        scale=a.scale,
        methods=a.method or ("nearest", "bicubic", "hr"),
        models=a.model,
        mode=a.mode,
        votes_per_stimulus=a.votes_per_stimulus,
        stimuli_dir=a.stimuli_dir,
        crop=a.crop,
        calibration_images=a.calibration_images,
        calibration=tuple(a.calibration),
        trials_per_rater=a.trials_per_rater,
        break_every=a.break_every,
        repeats=a.repeats,
        seed=a.seed,
        max_images=a.max_images,
        tile=a.tile,
        progress=not a.no_progress,
    )
    print(
        f"study {info.name!r} ({info.mode}, x{info.scale}): {summary['test_images']} test images, "
        f"calibration {summary['calibration_images']}, {summary['stimuli']} stimuli in {summary['stimuli_dir']}"
    )
    if summary["skipped"]:
        print(f"skipped {len(summary['skipped'])} file(s):")
        for s in summary["skipped"]:
            print(f"  {s}")
    print(f"{'method':<24} {'PSNR (Y)':>9} {'SSIM':>7}")
    for m, v in summary["methods"].items():
        print(f"{m:<24} {v['psnr']:>9.2f} {v['ssim']:>7.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
