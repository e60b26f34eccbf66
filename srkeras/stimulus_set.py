"""Making the stimulus set of a MOS study: checked options, calibration images, trained models, and every stimulus with its metrics.

For every HR image (``modcrop``-ed to the scale, optionally centre-cropped to ``crop`` px), the LR
input and the 8-bit HR come from :func:`srkeras.evaluation.prepare` (MATLAB bicubic, 8-bit, as SR
test sets store them). Each method's output is stored blind by :func:`srkeras.stimuli.store`; its
PSNR/SSIM against the 8-bit HR is :func:`srkeras.evaluation.score`, as are the further metrics of
:class:`Plan` ``metrics`` (``lpips``, ``niqe``...: :attr:`MadeStimulus.metrics`).

``nearest`` and ``hr`` are the hidden anchors of the SRGAN protocol (Ledig et al. 2017, sec. 3.4:
NN rated 1, HR rated 5) and are always included. Calibration images (:func:`choose_calibration`)
only provide the anchor examples of the instructions and are never trials.

Library code: unusable inputs raise :class:`~srkeras.stimuli.StudyInputError` subclasses, skipped
files are reported in the result and through a callback; nothing is printed and nothing touches a
database. :func:`make` can write into a :class:`~srkeras.stimuli.Staging` folder (``write_dir``) for
an all-or-nothing caller. Source names are :func:`srkeras.files.display_name` (valid UTF-8 for any
file name).
"""

from __future__ import annotations

import dataclasses
import hashlib
import random
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import numpy as np

from srkeras import evaluation
from srkeras.files import display_name
from srkeras.mos.vocabulary import MethodRole
from srkeras.stimuli import StudyInputError, png_bytes, store

ANCHORS = {"nearest": MethodRole.LOW_ANCHOR, "hr": MethodRole.HIGH_ANCHOR}
CLASSICAL = ("nearest", "bicubic", "hr")
DEFAULT_METRICS = ("psnr", "ssim")  # always stored (their own columns); others go to MadeStimulus.metrics


class BadOption(StudyInputError):
    """An option value is unusable (scale, crop, method name, duplicate method names)."""


class NoImages(StudyInputError):
    """The HR folder does not exist or holds no image files."""


class UnknownCalibration(StudyInputError):
    """A named calibration image is not in the HR folder."""


class ModelError(StudyInputError):
    """A trained model cannot be loaded, upscales by another factor, or returns a wrongly sized image."""


class TooFewImages(StudyInputError):
    """Fewer than two usable test images are left (a study compares images)."""


class MetricError(StudyInputError):
    """A metric refused a stimulus (e.g. smaller than its window); the message names the file."""


def center_crop(img: np.ndarray, size: int) -> np.ndarray:
    h, w = img.shape[:2]
    top, left = (h - size) // 2, (w - size) // 2
    return img[top : top + size, left : left + size]


# ------------------------------------------------------------------------------------------------
# Options
# ------------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class StudyModel:
    """A trained model of the study (``--model NAME=PATH``): its method name and where it is."""

    name: str
    path: str


def parse_model_spec(spec: str) -> StudyModel:
    """``PATH`` (name = run dir name or .keras file stem) or ``NAME=PATH``."""
    if "=" in spec and not Path(spec).exists():
        name, path = spec.split("=", 1)
    else:
        path = spec
        p = Path(spec)
        name = p.stem if p.suffix == ".keras" else p.resolve().name
    if not name:
        raise BadOption(f"--model {spec!r}: empty method name")
    return StudyModel(name=name, path=path)


@dataclasses.dataclass(frozen=True)
class Plan:
    """Checked study options: the classical methods (anchors included) and the trained models."""

    scale: int
    crop: int | None
    classical: tuple[str, ...]
    models: tuple[StudyModel, ...]
    added_anchors: tuple[str, ...] = ()  # anchors the caller did not ask for (worth a note)
    metrics: tuple[str, ...] = DEFAULT_METRICS  # srkeras.metrics names stored per stimulus (psnr, ssim first)

    @property
    def method_names(self) -> list[str]:
        return list(self.classical) + [m.name for m in self.models]

    def methods(self) -> list[tuple[str, str, str]]:
        """``(name, role, spec)`` per method: role ``low_anchor`` | ``high_anchor`` | ``test``."""
        test = MethodRole.TEST
        return [(m, ANCHORS.get(m, test), m) for m in self.classical] + [(m.name, test, str(m.path)) for m in self.models]


def plan(scale: int = 4, crop: int | None = None, methods: Iterable[str] = CLASSICAL, models: Iterable[str] = (),
         metrics: Iterable[str] = DEFAULT_METRICS) -> Plan:
    """Check the options; ``models``: ``PATH`` or ``NAME=PATH``, ``metrics``: srkeras.metrics names. Raises :class:`BadOption`."""
    from srkeras.metrics.registry import check_names

    scale = int(scale)
    if scale < 1:
        raise BadOption("--scale must be >= 1")
    if crop is not None and (crop < 16 or crop % scale):
        raise BadOption(f"--crop {crop}: must be a multiple of --scale {scale} and at least 16 px")
    classical: list[str] = []
    for m in methods:
        if m not in CLASSICAL:
            raise BadOption(f"--method {m!r}: choose from {CLASSICAL} (trained models go in --model)")
        if m not in classical:
            classical.append(m)
    added = tuple(a for a in ANCHORS if a not in classical)
    classical += added
    specs = tuple(parse_model_spec(m) for m in models)
    try:
        metrics = check_names(metrics)
    except ValueError as e:
        raise BadOption(f"--metric: {e}") from None
    if crop is not None and "niqe" in metrics and (crop // 96) * (crop // 96) < 2:
        raise BadOption(f"--crop {crop}: NIQE needs at least two whole 96x96 blocks (a crop of 192 px or more)")
    out = Plan(scale, crop, tuple(classical), specs, added, tuple(dict.fromkeys((*DEFAULT_METRICS, *metrics))))
    names = out.method_names
    if len(set(names)) != len(names):
        raise BadOption(f"method names must be unique, got {names}; use --model NAME=PATH to rename")
    return out


class CalibrationChoice:
    """Which source images are calibration images: the named ones, else the first ``left`` usable
    images of the (shuffled) order; ask :meth:`take` once per usable image, in order."""

    def __init__(self, named=(), left: int = 0):
        self.named, self.left = frozenset(named), int(left)

    def take(self, f) -> bool:
        if f in self.named:
            return True
        if self.left > 0:
            self.left -= 1
            return True
        return False


def choose_calibration(files: Sequence[Path], count: int = 1, names: Sequence[str] = (), seed: int = 0, folder=None):
    """``(files in processing order, CalibrationChoice)``.

    Named images (file name or stem) keep the sorted order; otherwise the order is a seeded shuffle
    and the first ``count`` usable images (at most all but two) are picked, so a broken file is never
    a calibration image. Raises :class:`UnknownCalibration` for a name not in ``files`` (of ``folder``).
    """
    if names:
        stems = [f.stem for f in files]
        by_name = {f.stem: f for f in files if stems.count(f.stem) == 1}  # a shared stem must be a file name
        by_name |= {f.name: f for f in files} | {display_name(f.name): f for f in files}
        unknown = [display_name(c) for c in names if c not in by_name]
        if unknown:
            where = display_name(folder) if folder is not None else "the HR folder"
            raise UnknownCalibration(f"--calibration {unknown}: not in {where} (give the file name if stems are shared)")
        return list(files), CalibrationChoice({by_name[c] for c in names})
    order = list(files)
    random.Random(seed).shuffle(order)
    return order, CalibrationChoice(left=min(max(0, count), max(0, len(files) - 2)))


# ------------------------------------------------------------------------------------------------
# Stimuli
# ------------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Source:
    name: str
    hr_sha256: str  # of the source file's bytes
    width: int
    height: int
    is_calibration: bool = False


@dataclasses.dataclass(frozen=True)
class MadeStimulus:
    """One stimulus made and stored: which method on which source, its file (by hash) and its scores."""

    method: str
    source: str
    sha256: str  # of the PNG bytes: the file is ``file_name(sha256)``
    width: int
    height: int
    psnr: float | None  # None for an image identical to HR
    ssim: float
    metrics: dict = dataclasses.field(default_factory=dict)  # further metrics: {"lpips": 0.12, "niqe": 4.1}


@dataclasses.dataclass
class StimulusSet:
    """What :func:`make` produced: sources sorted by name, stimuli in the order they were made."""

    stimuli_dir: Path
    sources: list[Source] = dataclasses.field(default_factory=list)
    stimuli: list[MadeStimulus] = dataclasses.field(default_factory=list)
    skipped: list[str] = dataclasses.field(default_factory=list)

    @property
    def test_sources(self) -> list[str]:
        return [s.name for s in self.sources if not s.is_calibration]

    @property
    def calibration_sources(self) -> list[str]:
        return [s.name for s in self.sources if s.is_calibration]

    def mean_scores(self, methods: Iterable[str]) -> dict:
        """``{method: {"psnr", "ssim", further...}}`` means over test images (PSNR ``inf``: identical to HR)."""
        test = set(self.test_sources)
        out = {}
        for m in methods:
            mine = [st for st in self.stimuli if st.method == m and st.source in test]
            finite = [st.psnr for st in mine if st.psnr is not None]
            out[m] = {
                "psnr": (sum(finite) / len(finite)) if finite else float("inf"),
                "ssim": sum(st.ssim for st in mine) / len(mine) if mine else float("nan"),
            }
            for k in dict.fromkeys(k for st in mine for k in st.metrics):
                out[m][k] = float(np.mean([st.metrics[k] for st in mine if k in st.metrics]))
        return out


def load_models(specs: Iterable[StudyModel], scale: int, tile: int | None = None, precision: str = "float32",
                max_memory=None, progress=None) -> dict:  # fmt: skip
    """``{name: lr -> sr}`` for trained generators (imports TensorFlow only when there are any).

    ``tile`` and ``max_memory`` (the budget of the tiles and of the receptive-field probe) as
    :func:`srkeras.inference.upscale`'s; ``progress``: callable(message) told of a probe's steps.
    Raises :class:`ModelError` for a missing or unreadable model or one of another scale, and when
    run, for a ``max_memory`` too small for the model's receptive-field probe.
    """
    specs = list(specs)
    if not specs:
        return {}
    from srkeras import inference

    out = {}
    for m in specs:
        try:
            model = inference.load_generator(m.path, precision=precision, purpose="score")
            model.progress = progress
            s = inference.model_scale(model)
        except (OSError, ValueError) as e:  # ModelNotFoundError is a FileNotFoundError
            raise ModelError(f"--model {m.path}: {e}") from None
        if int(s) != int(scale):
            raise ModelError(f"--model {m.path}: the model upscales x{s}, the study is x{scale}")
        out[m.name] = lambda lr, _m=model, _path=m.path: _upscale(_m, _path, lr, tile, max_memory)
    return out


def _upscale(model, path, lr, tile, max_memory):
    from srkeras import inference

    try:
        return inference.upscale(model, lr, tile=tile, max_memory=max_memory)
    except inference.ProbeMemoryError as e:
        raise ModelError(f"--model {path}: {e}") from None


class _Skip(Exception):
    def __init__(self, recorded: str, logged: str):
        super().__init__(logged)
        self.recorded, self.logged = recorded, logged


def _prepared(f: Path, scale: int, crop: int | None) -> tuple[evaluation.Pair, str]:
    """The 8-bit HR/LR pair of one file (modcrop, centre crop) and the SHA-256 of its bytes;
    raises :class:`_Skip` if unusable."""
    from srkeras.data.io import ImageLoadError, load_image, modcrop

    try:
        hr_sha = hashlib.sha256(f.read_bytes()).hexdigest()
        hr = load_image(f, channels=3)
    except ImageLoadError as e:
        raise _Skip(str(e), f"skipping {e}") from None  # the message names the file
    except OSError as e:
        why = "permission denied" if isinstance(e, PermissionError) else e.strerror
        msg = f"{display_name(f)}: cannot read the file ({why})"
        raise _Skip(msg, f"skipping {msg}") from None
    hr = modcrop(hr, scale)
    if crop is not None:
        if min(hr.shape[:2]) < crop:
            msg = f"skipping {display_name(f)}: {hr.shape[1]}x{hr.shape[0]} is smaller than --crop {crop}"
            raise _Skip(msg, msg)
        hr = center_crop(hr, crop)
    try:
        return evaluation.prepare(hr, scale, "bicubic", name=display_name(f)), hr_sha
    except evaluation.ImageTooSmall:
        msg = f"skipping {display_name(f)}: {hr.shape[1]}x{hr.shape[0]} is too small for SSIM at x{scale}"
        raise _Skip(msg, msg) from None


def _outputs(p: Plan, pair: evaluation.Pair, runners: dict, calibration: bool, f: Path) -> dict:
    """``{method: float image}``: anchors only for a calibration image, every method otherwise.
    Classical methods are the evaluation protocol's baselines, so a study's PSNR/SSIM equal
    ``pipelines.evaluate``'s."""
    outputs = {}
    for m in p.classical:
        if calibration and m not in ANCHORS:
            continue
        outputs[m] = pair.hr if m == "hr" else evaluation.classical_sr(pair.lr, p.scale, m)
    if not calibration:
        for name, run in runners.items():
            out = np.asarray(run(pair.lr), dtype=np.float32)
            if out.shape != pair.hr.shape:
                raise ModelError(f"--model {name}: output {out.shape} differs from HR {pair.hr.shape} on {display_name(f)}")
            outputs[name] = out
    return outputs


def _stimulus(method: str, source: str, out: np.ndarray, hr8: np.ndarray, p: Plan, dirs) -> MadeStimulus:
    sha = store(dirs[0], png_bytes(out), into=dirs[1])
    try:  # of exactly the stored 8-bit pixels
        s = evaluation.score(out, hr8, p.scale, metrics=p.metrics, name=f"{source} ({method})")
    except ValueError as e:  # e.g. smaller than a metric's window; the message names the file
        raise MetricError(str(e)) from None
    extra = {m: float(s[m]) for m in p.metrics if m not in DEFAULT_METRICS}
    psnr = None if np.isinf(s["psnr"]) else s["psnr"]
    return MadeStimulus(method, source, sha, int(out.shape[1]), int(out.shape[0]), psnr, s["ssim"], extra)


def make(
    p: Plan,
    files: Sequence[Path],
    stimuli_dir,
    calibration: CalibrationChoice,
    runners: dict | None = None,
    on_skip: Callable[[str], None] | None = None,
    progress: Callable[[Iterable], Iterable] | None = None,
    write_dir=None,
) -> StimulusSet:
    """Make and store every stimulus of ``files`` (in that order) under ``stimuli_dir``.

    ``runners`` are :func:`load_models`' output; ``on_skip(message)`` hears of each unusable file
    (also listed in ``skipped``); ``progress`` may wrap the file iterable (e.g. ``tqdm``).
    ``write_dir``: write new files there instead (a :class:`~srkeras.stimuli.Staging` folder). Raises
    :class:`ModelError` when a model returns an image of the wrong size, :class:`~srkeras.stimuli.OutputFailed`
    when a file cannot be written, :class:`MetricError` when a metric refuses a stimulus.
    """
    result = StimulusSet(Path(stimuli_dir))
    dirs = (result.stimuli_dir, write_dir)
    for f in progress(files) if progress else files:
        try:
            pair, hr_sha = _prepared(Path(f), p.scale, p.crop)
        except _Skip as s:
            result.skipped.append(s.recorded)
            if on_skip:
                on_skip(s.logged)
            continue
        is_cal = calibration.take(f)
        outputs = _outputs(p, pair, runners or {}, is_cal, f)
        h, w = pair.hr.shape[:2]
        name = display_name(Path(f).name)
        result.sources.append(Source(name, hr_sha, int(w), int(h), is_calibration=is_cal))
        for method, out in outputs.items():
            result.stimuli.append(_stimulus(method, name, out, pair.hr, p, dirs))
    result.sources.sort(key=lambda x: x.name)
    return result


def require_test_images(result: StimulusSet, hr_dir, minimum: int = 2) -> None:
    """Raise :class:`TooFewImages` unless ``result`` has ``minimum`` usable test images."""
    n_test = len(result.test_sources)
    if n_test < minimum:
        raise TooFewImages(
            f"only {n_test} usable test image(s) in {display_name(hr_dir)} (after {len(result.skipped)} skipped and "
            f"{len(result.calibration_sources)} calibration): a study needs at least {minimum}"
        )


def list_sources(hr_dir, max_images: int | None = None) -> list[Path]:
    """The image files of ``hr_dir`` sorted by name (the first ``max_images``); raises :class:`NoImages`."""
    from srkeras.data.io import list_images

    try:
        files = list_images(hr_dir)
    except FileNotFoundError as e:
        raise NoImages(str(e)) from None
    return files[:max_images] if max_images else files


__all__ = [
    "ANCHORS", "BadOption", "CLASSICAL", "CalibrationChoice", "DEFAULT_METRICS", "MadeStimulus", "MetricError", "ModelError",
    "NoImages", "Plan", "Source", "StimulusSet", "StudyModel", "TooFewImages",
    "UnknownCalibration", "center_crop", "choose_calibration", "list_sources", "load_models", "make", "parse_model_spec",
    "plan", "require_test_images",
]
