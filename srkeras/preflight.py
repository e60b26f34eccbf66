"""Preflight: what a long job needs, checked in seconds before its first step.

Every long job (``pipelines.study backbones``, ``train``, ``prepare_study``, ``evaluate``, ``upscale``)
builds one :class:`Preflight`, adds what it will need -- metric assets, models, backbone weights,
input folders, writable outputs with enough free disk -- and calls :meth:`Preflight.check`, which
raises one :class:`PreflightError` listing *everything* missing and the commands that fix it
(``python -m pipelines.pretrained fetch NAME...`` for registry assets and catalogue models; a CLI
prints :meth:`Preflight.message` itself), so a job never trains for hours and then stops on a missing
NIQE parameter file. Nothing here downloads or loads a model (only the training checks import Keras,
for the backbones' file names).

:func:`installed_metrics` is how a job that was not told which metrics to score (the study's
default) scores only those whose assets are installed, and says which it left out.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path

from srkeras.files import destination_problem, display_name

#: Free space asked for beside training outputs (checkpoints, logs, the final model) when the job
#: cannot say more precisely: a checkpoint of the largest recipes (RRDBNet + its Adam slots) is ~200 MB.
TRAINING_FREE_BYTES = 512 * 1024**2


class PreflightError(ValueError):
    """What a job needs and does not have; the message lists every item and the commands that fix them."""

    exit_code = 2


def _mb(n: float) -> str:
    return f"{n / 1024:,.0f} KB" if n < 1024**2 else f"{n / 1024**2:,.0f} MB"


def _image_size(path) -> tuple[int, int]:
    """(width, height) from the file's header, (0, 0) when unreadable (reported by name when reached)."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            return im.size
    except Exception:  # noqa: BLE001 -- any unreadable file: its job says why when it gets there
        return 0, 0


def free_bytes(path) -> int | None:
    """Free bytes on the disk of ``path`` (or of its nearest existing parent); None when unknown."""
    p = Path(path).expanduser()
    while not p.exists() and p != p.parent:
        p = p.parent
    try:
        return shutil.disk_usage(p).free
    except OSError:
        return None


@dataclass
class Preflight:
    """The checks of one job (``job``: how the message names it, e.g. ``"pipelines.train"``)."""

    job: str
    problems: list[str] = field(default_factory=list)
    fetch: list[str] = field(default_factory=list)  # names for `python -m pipelines.pretrained fetch`
    fixes: list[str] = field(default_factory=list)  # other commands / actions

    def add(self, problem: str, fetch=(), fix: str | None = None) -> None:
        self.problems.append(problem)
        self.fetch += [n for n in fetch if n not in self.fetch]
        if fix and fix not in self.fixes:
            self.fixes.append(fix)

    # -- what can be missing ------------------------------------------------------------------------

    def metric_assets(self, metrics) -> list[str]:
        """The assets of ``metrics`` (:data:`srkeras.metrics.registry.METRICS` names); returns the missing ones."""
        from srkeras import evaluation
        from srkeras.metrics.registry import METRICS

        if evaluation.missing_assets(metrics) is None:  # the one test of "installed" (tests replace it)
            return []
        needed = list(dict.fromkeys(a for m in metrics for a in METRICS.get(m, ())))
        return self.assets(needed, why=f"metric(s) {', '.join(m for m in metrics if METRICS.get(m))}")

    def assets(self, names, why: str = "") -> list[str]:
        from srkeras.inference.store import models_dir
        from srkeras.pretrained import metric_assets

        missing = [a for a in names if not metric_assets.is_installed(a)]
        missing += [r for a in missing for r in metric_assets.get(a).requires
                    if r not in missing and not metric_assets.is_installed(r)]  # fmt: skip
        if missing:
            self.add(f"metric asset(s) {', '.join(missing)}{f' (for {why})' if why else ''} not installed in "
                     f"{display_name(models_dir())} (set SRKERAS_MODEL_DIR to use another directory)",
                     fetch=missing)  # fmt: skip
        return missing

    def model(self, spec: str, flag: str = "--model") -> None:
        """A ``--model`` (path, run folder or installed name); a catalogue name gets its fetch command."""
        from srkeras.inference.store import ModelNotFoundError, find_model

        if Path(str(spec)).expanduser().exists():
            return  # there: its loader says what is wrong with it, if anything
        try:
            find_model(spec)
        except ModelNotFoundError as e:
            from srkeras.pretrained.catalogue import CATALOGUE  # here: the catalogue is a tenth of a second to import

            if str(spec) in CATALOGUE:
                self.add(f"{flag} {spec}: pretrained model not installed", fetch=[str(spec)])
            else:
                from srkeras.pretrained import did_you_mean

                self.add(f"{flag} {e}{did_you_mean(spec)}")

    def model_file(self, spec, flag: str) -> None:
        """A ``.keras`` file or a run folder holding ``model.keras`` (``--init-from``, ``--start``)."""
        p = Path(str(spec))
        if not (p / "model.keras" if p.is_dir() else p).is_file():
            self.add(f"{flag} {display_name(p)}: no such model (a .keras file or a RUN_DIR with model.keras)")

    def backbone(self, name: str, weights="imagenet", flag: str = "loss") -> None:
        """ImageNet weights of a perceptual-loss backbone (never downloaded; the hash is checked at load)."""
        from srkeras.losses.backbones import WeightsNotFoundError, backbone_spec, resolve_weights

        spec = backbone_spec(name)
        if weights is None:
            return
        if spec.file_name == "vgg16_imagenet.npz" and weights == "imagenet":
            self.assets(["vgg16_imagenet"], why=f"{flag} backbone {name}")
            return
        try:
            resolve_weights(spec, weights, check_hash=False)
        except WeightsNotFoundError as e:
            self.add(f"{flag} backbone {name}: " + str(e).split("\n")[0],
                     fix=f"put {spec.file_name} (from {spec.url}) in ~/.keras/models, or "
                         "--set loss.backbone_weights=/path/to/file.h5")  # fmt: skip

    def training(self, recipe, out, train_dirs=(), val_dir=None) -> None:
        """A training run of ``recipe`` into ``out``: its data folders, the first stage's generator of
        a two-stage recipe (unless resuming), the perceptual-loss backbones' weights, room for checkpoints."""
        from srkeras.losses.perceptual import PRESETS

        for d in train_dirs:
            self.folder(d, "--train-dir")
        self.folder(val_dir, "--val-dir")
        if not (Path(out) / "checkpoints" / "checkpoint").exists():
            spec, first = recipe.run.init_from, recipe.recipe.init_from
            if spec in (None, "") and first:
                self.add(f"recipe {recipe.name!r} starts from a trained {first!r} generator (two-stage training)",
                         fix=f"train it first (--recipe {first} --out RUN1) and pass --init-from RUN1/model.keras, "
                             "or --init-from none to start from random weights")  # fmt: skip
            elif spec not in (None, "", "none"):
                self.model_file(spec, "--init-from")
        for t in recipe.loss.terms:
            if t.name in PRESETS:
                name = t.options.get("backbone", PRESETS[t.name]["backbone"])
                self.backbone(name, t.options.get("weights", recipe.loss.backbone_weights), flag=f"loss {t.name!r}:")
        self.output(out, "--out", need_bytes=TRAINING_FREE_BYTES)

    def upscaling(self, model: str, files, out_dir, scale: int | None = None) -> None:
        """``pipelines.upscale``: the model, and a writable ``out_dir`` with room for the outputs
        (:func:`disk_need_estimate` from the inputs' headers; the scale from ``scale``, the model's
        sidecar, else 4)."""
        from srkeras.inference.sidecar import ModelSidecar
        from srkeras.inference.store import ModelNotFoundError, find_model

        self.model(model)
        if scale is None:
            try:
                side = ModelSidecar.read(find_model(model))
                scale = (side.scale_probed or side.scale) if side else None
            except (ModelNotFoundError, OSError):
                pass
        sizes = [s for s in map(_image_size, files) if s[0]]
        self.output(out_dir, "--out", need_bytes=disk_need_estimate(sizes, int(scale or 4)))

    def stimuli(self, files, n_methods: int, crop: int | None, folder) -> None:
        """``prepare_study``: a writable stimuli ``folder`` with room for ``n_methods`` 8-bit PNGs per HR
        file (each HR-sized, or ``crop`` x ``crop``)."""
        sizes = []
        for f in files:
            w, h = _image_size(f)
            if w:
                sizes.append((min(w, crop or w), min(h, crop or h)))
        self.output(folder, "--stimuli-dir", need_bytes=disk_need_estimate(sizes, 1) * n_methods)

    def folder(self, path, flag: str) -> None:
        if path is not None and not Path(path).is_dir():
            self.add(f"{flag} {display_name(path)}: no such folder")

    def output(self, path, flag: str = "--out", folder: bool = True, need_bytes: int = 0) -> None:
        """``path`` can be written and its disk has ``need_bytes`` free."""
        problem = destination_problem(path, folder=folder)
        if problem:
            self.add(f"{flag} {problem}")
            return
        free = free_bytes(path)
        if need_bytes and free is not None and free < need_bytes:
            where = display_name(path)
            self.add(f"{flag} {where}: {_mb(free)} free on its disk, the outputs need about {_mb(need_bytes)}",
                     fix=f"free some space on the disk of {where} or choose another {flag}")

    # -- the verdict --------------------------------------------------------------------------------

    def message(self) -> str:
        """One problem: itself; several: a list under ``<job> cannot start``; then the commands that fix them."""
        from srkeras.pretrained.metric_assets import fetch_command

        n = len(self.problems)
        if n == 1:
            lines = [self.problems[0]]
        else:
            lines = [f"{self.job} cannot start; {n} things are missing (nothing was done):"]
            lines += [f"  - {p}" for p in self.problems]
        cmds = ([fetch_command(self.fetch)] if self.fetch else []) + self.fixes
        if cmds:
            lines.append("fix with:")
            lines += [f"  {c}" for c in cmds]
        return "\n".join(lines)

    def check(self) -> None:
        """Raise :class:`PreflightError` (the whole list) when anything is missing."""
        if self.problems:
            raise PreflightError(self.message())


def assets_of(metrics) -> list[str]:
    """The metric assets ``metrics`` need (those they require included), in order."""
    from srkeras.metrics.registry import METRICS
    from srkeras.pretrained import metric_assets

    names = [a for m in metrics for a in METRICS.get(m, ())]
    return list(dict.fromkeys(names + [r for a in names for r in metric_assets.get(a).requires]))


def installed_metrics(metrics) -> tuple[list[str], list[str], list[str]]:
    """(metrics whose assets are all installed, the others, the assets those others lack): for jobs
    scoring a default set."""
    from srkeras.pretrained import metric_assets

    have = [m for m in metrics if all(metric_assets.is_installed(a) for a in assets_of([m]))]
    left = [m for m in metrics if m not in have]
    return have, left, [a for a in assets_of(left) if not metric_assets.is_installed(a)]


def disk_need_estimate(image_sizes, scale: int, channels: int = 3) -> int:
    """Bytes the outputs of upscaling images of ``image_sizes`` ((w, h) pairs) by ``scale`` need, as
    half their raw size (8-bit PNG of photographs: rarely under half the raw bytes)."""
    return int(sum(w * h * scale * scale * channels for w, h in image_sizes) // 2)


__all__ = ["TRAINING_FREE_BYTES", "Preflight", "PreflightError", "assets_of", "disk_need_estimate", "free_bytes", "installed_metrics"]
