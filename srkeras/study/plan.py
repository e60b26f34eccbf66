"""What a backbone study runs: its settings (:class:`StudyConfig`) and one :class:`Entry` per backbone.

Backbone weights are never downloaded. For ``NAME`` the weights are, in order:

* ``vgg16_torch``: torchvision's VGG16, the metric asset ``vgg16_imagenet``
  (``python -m pipelines.pretrained fetch vgg16_imagenet``, in ``$SRKERAS_MODEL_DIR``);
* ``--weights-dir DIR/<file>`` with the ``keras.applications`` file name of the network
  (:data:`srkeras.losses.backbones.BACKBONES`: ``vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5``,
  ``resnet152v2_weights_tf_dim_ordering_tf_kernels_notop.h5``, ``convnext_tiny_notop.h5``, ...);
* the Keras cache (``~/.keras/models/<file>``, hash checked).

A backbone with none of these is skipped and reported, or, under ``--smoke`` only, trained from a
random initialisation and labelled ``weights=random`` everywhere.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

from srkeras.study import layers as depth_table
from srkeras.study.errors import NoBackbones, StudyConfigError

#: Metrics scored by default (``--smoke``: the cheap ones).
METRICS = ("psnr", "ssim", "lpips", "niqe", "dists", "brisque")
SMOKE_METRICS = ("psnr", "ssim", "lpips", "niqe")
#: The smoke chain: a small generator and discriminator on small crops, so it runs on CPU in minutes.
SMOKE = dict(hr_patch=32, batch=2, generator={"num_blocks": 2, "num_features": 16}, d_features=8)


@dataclass(frozen=True)
class StudyConfig:
    """The study's settings (``pipelines.study backbones`` arguments)."""

    train_dirs: tuple[Path, ...]
    val_dir: Path | None
    test_dirs: tuple[Path, ...]
    backbones: tuple[str, ...]  # "name" or "name:deep" / "name:shallow"
    steps: int
    out: Path
    pretrain_steps: int | None = None  # SRResNet-MSE steps (default: steps)
    weights_dir: Path | None = None
    depth: str = "deep"  # default depth of a backbone given without ":depth"
    smoke: bool = False
    seed: int = 0
    scale: int = 4
    hr_patch: int | None = None  # default: the recipe's (96), smoke 32
    batch: int | None = None  # default: the recipe's (16), smoke 2
    metrics: tuple[str, ...] | None = None
    probe_steps: int | None = None  # timed steps of the cost probe (default 5, smoke 2)
    checkpoint_every: int | None = None
    overrides: tuple[str, ...] = ()  # --set key=value for every training run (both stages)
    feature_norm: str = "rms"  # rms: 1/RMS of each backbone's features; srgan: 1/12.75 for all
    start: Path | None = None  # an existing SRResNet-MSE (RUN_DIR or .keras) to reuse instead of training one
    progress: bool = True

    def __post_init__(self):
        if self.steps < 1 or (self.pretrain_steps is not None and self.pretrain_steps < 0):
            raise StudyConfigError("--steps must be >= 1 and --pretrain-steps >= 0")
        for d in (*self.train_dirs, *self.test_dirs, *([self.val_dir] if self.val_dir else [])):
            if not Path(d).is_dir():
                raise StudyConfigError(f"no such folder: {d}")
        if not self.train_dirs or not self.test_dirs:
            raise StudyConfigError("give at least one --train-dir and one --test-dir")
        if not self.backbones:
            raise StudyConfigError("give at least one --backbone")
        if self.start is not None and not self.start_model.is_file():
            raise StudyConfigError(f"--start {self.start}: no such model (a .keras file or a RUN_DIR with model.keras)")
        if self.feature_norm not in ("rms", "srgan"):
            raise StudyConfigError(f"feature_norm must be 'rms' or 'srgan', got {self.feature_norm!r}")
        names = [Path(d).name for d in self.test_dirs]
        if len(set(names)) != len(names):
            raise StudyConfigError(f"test folders must have distinct names (they name the datasets): {names}")

    @property
    def start_model(self) -> Path | None:
        if self.start is None:
            return None
        p = Path(self.start)
        return p / "model.keras" if p.is_dir() else p

    @property
    def n_pretrain(self) -> int:
        return self.steps if self.pretrain_steps is None else self.pretrain_steps

    @property
    def patch(self) -> int | None:
        return self.hr_patch or (SMOKE["hr_patch"] if self.smoke else None)

    @property
    def batch_size(self) -> int | None:
        return self.batch or (SMOKE["batch"] if self.smoke else None)

    @property
    def metric_names(self) -> tuple[str, ...]:
        return tuple(self.metrics or (SMOKE_METRICS if self.smoke else METRICS))

    @property
    def n_probe(self) -> int:
        return self.probe_steps or (2 if self.smoke else 5)

    def datasets(self) -> dict[str, Path]:
        return {Path(d).name: Path(d) for d in self.test_dirs}

    def fingerprint(self) -> dict:
        """The settings a study folder is bound to (a later run may add backbones, not change these)."""
        return {
            "steps": self.steps, "pretrain_steps": self.n_pretrain, "seed": self.seed, "scale": self.scale,
            "hr_patch": self.patch, "batch": self.batch_size, "smoke": self.smoke, "overrides": list(self.overrides),
            "feature_norm": self.feature_norm, "start": str(self.start_model.resolve()) if self.start else None,
            "train_dirs": [str(Path(d).resolve()) for d in self.train_dirs],
        }


@dataclass(frozen=True)
class Entry:
    """One backbone at one depth: its SRGAN run and its row in the results."""

    backbone: str  # canonical name (srkeras.losses.backbones.BACKBONES)
    depth: str
    tap: depth_table.Tap
    weights: str | None = None  # the value of loss.backbone_weights: "imagenet", a file, or None (random)
    weights_label: str = "imagenet"  # imagenet | imagenet-torchvision | random
    skipped: str | None = None  # why it is not run (no weights)
    extra: dict = field(default_factory=dict)

    @property
    def id(self) -> str:
        return f"{self.backbone}-{self.depth}"

    @property
    def method(self) -> str:
        """The method name in tables and the MOS study (random init says so)."""
        return f"srgan_{self.id}" + ("_random" if self.weights_label == "random" else "")


def parse_backbone(arg: str, default_depth: str = "deep") -> tuple[str, str]:
    """``"resnet152v2"`` / ``"vgg19:shallow"`` -> (canonical name, depth)."""
    name, _, depth = arg.partition(":")
    depth = depth or default_depth
    depth_table.tap(name, depth)  # raises StudyConfigError for an unknown name or depth
    return depth_table.canonical(name), depth


def find_weights(backbone: str, weights_dir: Path | None) -> tuple[str | None, str, str | None]:
    """(loss.backbone_weights value, label, why missing) of ``backbone``; nothing is downloaded."""
    from srkeras.losses.backbones import WeightsNotFoundError, backbone_spec, resolve_weights

    spec = backbone_spec(backbone)
    if backbone == "vgg16_torch":
        from srkeras.pretrained import metric_assets

        if metric_assets.is_installed("vgg16_imagenet"):
            return "imagenet", "imagenet-torchvision", None
        return None, "", f"metric asset vgg16_imagenet not installed (`{metric_assets.fetch_command(['vgg16_imagenet'])}`)"
    if weights_dir is not None and (Path(weights_dir) / spec.file_name).is_file():
        return str((Path(weights_dir) / spec.file_name).resolve()), "imagenet", None
    try:
        return str(resolve_weights(spec, "imagenet")), "imagenet", None
    except WeightsNotFoundError:
        where = f"{weights_dir}/ nor " if weights_dir else ""
        return None, "", f"{spec.file_name} is neither in {where}the Keras cache (download: {spec.url})"


def entries(cfg: StudyConfig) -> list[Entry]:
    """One entry per requested backbone/depth, in order, with its weights or why it is skipped.

    Raises :class:`NoBackbones` when none can run."""
    out, seen = [], set()
    for arg in cfg.backbones:
        name, depth = parse_backbone(arg, cfg.depth)
        if (name, depth) in seen:
            continue
        seen.add((name, depth))
        tap = depth_table.tap(name, depth)
        weights, label, missing = find_weights(name, cfg.weights_dir)
        e = Entry(name, depth, tap, weights, label)
        if missing:
            e = (dataclasses.replace(e, weights=None, weights_label="random") if cfg.smoke
                 else dataclasses.replace(e, skipped=missing, weights_label="none"))
        out.append(e)
    if not any(e.skipped is None for e in out):
        why = "; ".join(f"{e.backbone}: {e.skipped}" for e in out)
        raise NoBackbones(f"no backbone has local ImageNet weights ({why}); put the files in --weights-dir, "
                          "or use --smoke to run the chain with random initialisation")
    return out


__all__ = ["METRICS", "SMOKE", "SMOKE_METRICS", "Entry", "StudyConfig", "entries", "find_weights", "parse_backbone"]
