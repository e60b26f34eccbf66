"""The typed form of a resolved recipe: one frozen dataclass per TOML table, every default in one place.

:meth:`Recipe.from_dict` reads the nested dict that :func:`srkeras.recipes.load` and the command line
produce (plus the ``run`` table of run options); code reads ``recipe.train.ema_decay`` instead of
looking up dotted paths with scattered defaults. The dict itself stays the record of a run: the
Recipe carries it as :attr:`Recipe.config`, which ``RUN_DIR/config.json`` records as it is (keys
the typed view does not read included). :func:`srkeras.recipes.configure_run` builds a run's Recipe.
"""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass, field

from srkeras.recipes import checks as ck
from srkeras.recipes.checks import OPTIMIZER_NAMES, SCHEDULE_KINDS, RecipeError

KINDS = ("supervised", "gan")
DEGRADATIONS = ("bicubic", "blur_bicubic", "nearest")  # srkeras.data.dataset.DEGRADATIONS_TF


def _table(cfg: dict, key: str) -> dict:
    value = cfg.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise RecipeError(f"recipe key {key!r} must be a table, got {value!r}", key=key)
    return value


def _required(table: dict, key: str, where: str):
    if table.get(key) is None:
        raise RecipeError(f"the recipe has no {where}.{key}", key=f"{where}.{key}")
    return table[key]


def _every(table: dict, key: str, default: int, where: str = "train") -> int:
    """A period in steps: missing -> ``default``; ``0``/``None`` -> never."""
    if key in table and table[key] is None:
        return 0
    return ck.integer(table, key, where, default, minimum=0)


@dataclass(frozen=True)
class Meta:
    """``[recipe]``: which paper, supervised or adversarial, and the first stage of two-stage training."""

    name: str = "recipe"
    kind: str = "supervised"  # supervised | gan
    init_from: str | None = None  # recipe whose trained generator this one starts from
    paper: str = ""


@dataclass(frozen=True)
class ModelConfig:
    name: str
    scale: int
    options: dict = field(default_factory=dict)  # keyword arguments of the model builder

    @property
    def channels(self) -> int:
        """1 (Y only, SRCNN/ESPCN) or 3 (RGB)."""
        return int(self.options.get("channels", 3))


@dataclass(frozen=True)
class DataConfig:
    hr_patch: int  # HR crop side; a recipe may state ``lr_patch`` instead (HR = LR * scale)
    batch: int  # global batch, split over replicas
    degradation: str = "bicubic"
    augment: bool = True  # random flips and 90-degree rotations
    blur_sigma: float = 1.0  # Gaussian sigma of ``blur_bicubic``


@dataclass(frozen=True)
class TrainConfig:
    steps: int
    seed: int = 0
    checkpoint_every: int = 1000  # 0: only at the end
    val_every: int = 1000
    log_every: int = 100
    ema: bool = False  # exponential moving average of G (ESRGAN's BasicSR: decay 0.999)
    ema_decay: float = 0.999
    keep_checkpoints: int = 3
    val_max_images: int | None = None


@dataclass(frozen=True)
class OptimizerConfig:
    name: str = "adam"  # adam | adamw | sgd | rmsprop
    lr: float = 1e-3
    lr_multipliers: dict | None = None  # {layer name: factor} (SRCNN/ESPCN's slower last layer)
    options: dict = field(default_factory=dict)  # other keyword arguments (beta_1, momentum, ...)


@dataclass(frozen=True)
class ScheduleConfig:
    kind: str = "constant"  # constant | multistep | cosine
    milestones: tuple[int, ...] = ()
    gamma: float = 0.5
    alpha: float = 0.0  # cosine: final rate as a fraction of the initial one


@dataclass(frozen=True)
class LossTerm:
    name: str
    weight: float = 1.0
    options: dict = field(default_factory=dict)


@dataclass(frozen=True)
class LossConfig:
    terms: tuple[LossTerm, ...] = ()
    backbone_weights: str | None = "imagenet"  # perceptual backbones: Keras cache name or .h5 file


@dataclass(frozen=True)
class GANConfig:
    discriminator: str
    d_options: dict = field(default_factory=dict)
    adversarial: str = "standard"  # standard (SRGAN eq. 2) | ragan (ESRGAN eq. 1-2) | ...
    adversarial_weight: float = 1e-3  # lambda of SRGAN eq. 3


@dataclass(frozen=True)
class RunOptions:
    """``[run]``: how this machine runs the recipe (not part of the recipe's identity on resume);
    :func:`srkeras.recipes.run_table` writes the table."""

    strategy: str = "auto"
    mixed_precision: bool = False
    jit_compile: bool = False
    max_minutes: float | None = None
    init_from: str | None = None  # .keras file or RUN_DIR, or "none"
    sync_bn: bool = True  # synchronised BatchNorm across replicas
    # Multi-worker: seconds a collective operation may wait for the other workers before the run stops
    # with an error (a stuck worker; a dead one is caught sooner by the coordination heartbeat).
    collective_timeout: float | None = 600.0


def _options(table: dict, cls, skip=()):
    """``cls(**table)`` restricted to ``cls``'s fields (unknown keys are the recipe's own business)."""
    names = {f.name for f in dataclasses.fields(cls)} - set(skip)
    return {k: copy.deepcopy(v) for k, v in table.items() if k in names}


def _optimizer(table: dict, where: str = "optimizer") -> OptimizerConfig:
    rest = {k: copy.deepcopy(v) for k, v in table.items() if k not in ("name", "lr", "lr_multipliers")}
    return OptimizerConfig(
        name=ck.choice(table, "name", where, "adam", OPTIMIZER_NAMES, lower=True),
        lr=ck.number(table, "lr", where, 1e-3, low=0.0, open_low=True),
        lr_multipliers=copy.deepcopy(table.get("lr_multipliers")),
        options=rest,
    )


def _schedule(table: dict, where: str = "schedule") -> ScheduleConfig:
    return ScheduleConfig(
        kind=ck.choice(table, "kind", where, "constant", SCHEDULE_KINDS),
        milestones=ck.milestones(table, where),
        gamma=ck.number(table, "gamma", where, 0.5, low=0.0, open_low=True),
        alpha=ck.number(table, "alpha", where, 0.0, low=0.0, high=1.0),
    )


def _data(table: dict, scale: int) -> DataConfig:
    hr_patch = ck.integer(table, "hr_patch", "data", None, minimum=1)
    if hr_patch is None and table.get("lr_patch") is not None:
        hr_patch = ck.integer(table, "lr_patch", "data", minimum=1) * scale
    hr_patch = ck.integer({"hr_patch": hr_patch}, "hr_patch", "data", minimum=1)
    if hr_patch % scale:
        raise RecipeError(f"data.hr_patch {hr_patch} is not a multiple of model.scale {scale}", key="data.hr_patch")
    return DataConfig(
        hr_patch=hr_patch,
        batch=ck.integer(table, "batch", "data", minimum=1),
        degradation=ck.choice(table, "degradation", "data", "bicubic", DEGRADATIONS),
        augment=ck.boolean(table, "augment", "data", True),
        blur_sigma=ck.number(table, "blur_sigma", "data", 1.0, low=0.0, open_low=True),
    )


def _train(table: dict) -> TrainConfig:
    return TrainConfig(
        steps=ck.integer(table, "steps", "train", minimum=1),
        seed=ck.integer(table, "seed", "train", 0, minimum=0),
        checkpoint_every=_every(table, "checkpoint_every", 1000),
        val_every=_every(table, "val_every", 1000),
        log_every=_every(table, "log_every", 100),
        ema=ck.boolean(table, "ema", "train", False),
        ema_decay=ck.number(table, "ema_decay", "train", 0.999, low=0.0, high=1.0, open_high=True),
        keep_checkpoints=ck.integer(table, "keep_checkpoints", "train", 3, minimum=1),
        val_max_images=ck.integer(table, "val_max_images", "train", None, minimum=1, optional=True),
    )


def _loss(table: dict) -> LossConfig:
    terms = tuple(
        LossTerm(name=_required(t, "name", "loss.terms[]"), weight=ck.number(t, "weight", "loss.terms[]", 1.0), options=dict(t.get("options", {})))
        for t in table.get("terms", [])
    )
    return LossConfig(terms=terms, backbone_weights=table.get("backbone_weights", "imagenet"))


def _gan(table: dict) -> GANConfig:
    return GANConfig(
        discriminator=_required(table, "discriminator", "gan"),
        d_options=copy.deepcopy(dict(table.get("d_options", {}))),
        adversarial=table.get("adversarial", "standard"),
        adversarial_weight=ck.number(table, "adversarial_weight", "gan", 1e-3, low=0.0),
    )


def _run(table: dict) -> RunOptions:
    return RunOptions(
        strategy=ck.choice(table, "strategy", "run", "auto", ck.STRATEGIES),
        mixed_precision=bool(table.get("mixed_precision")),
        jit_compile=bool(table.get("jit_compile")),
        max_minutes=ck.number(table, "max_minutes", "run", None, low=0.0, open_low=True),
        init_from=table.get("init_from"),
        sync_bn=bool(table.get("sync_bn", True)),
        collective_timeout=ck.number(table, "collective_timeout", "run", 600.0, low=0.0, open_low=True),
    )


@dataclass(frozen=True)
class Recipe:
    """A resolved recipe. ``gan`` is ``None`` for supervised recipes; ``d_optimizer`` and
    ``d_schedule`` default to the generator's (SRGAN sec. 3.2: same settings for both). ``config`` is
    the dict it was read from: what ``RUN_DIR/config.json`` records."""

    recipe: Meta
    model: ModelConfig
    data: DataConfig
    train: TrainConfig
    optimizer: OptimizerConfig
    schedule: ScheduleConfig
    loss: LossConfig
    gan: GANConfig | None
    d_optimizer: OptimizerConfig
    d_schedule: ScheduleConfig
    run: RunOptions
    config: dict = field(default_factory=dict, compare=False, repr=False)

    @property
    def name(self) -> str:
        return self.recipe.name

    @property
    def kind(self) -> str:
        return self.recipe.kind

    @classmethod
    def from_dict(cls, cfg: dict) -> Recipe:
        """The typed view of ``cfg``; raises :class:`RecipeError` for missing or ill-typed values."""
        try:
            return cls._from_dict(cfg)
        except (TypeError, ValueError) as e:
            if isinstance(e, RecipeError):
                raise
            name = cfg.get("recipe", {}).get("name", "?") if isinstance(cfg.get("recipe"), dict) else "?"
            raise RecipeError(f"recipe {name!r}: {e}") from None

    @classmethod
    def _from_dict(cls, cfg: dict) -> Recipe:
        ck.check_keys(cfg)
        meta = Meta(**_options(_table(cfg, "recipe"), Meta))
        if meta.kind not in KINDS:
            raise RecipeError(f"recipe {meta.name!r}: kind {meta.kind!r} is not one of {', '.join(KINDS)}", key="recipe.kind")
        m = _table(cfg, "model")
        model = ModelConfig(_required(m, "name", "model"), ck.integer(m, "scale", "model", minimum=1), copy.deepcopy(dict(m.get("options", {}))))
        optimizer, schedule = _table(cfg, "optimizer"), _table(cfg, "schedule")
        return cls(
            recipe=meta,
            model=model,
            data=_data(_table(cfg, "data"), model.scale),
            train=_train(_table(cfg, "train")),
            optimizer=_optimizer(optimizer),
            schedule=_schedule(schedule),
            loss=_loss(_table(cfg, "loss")),
            gan=_gan(_table(cfg, "gan")) if meta.kind == "gan" else None,
            d_optimizer=_optimizer(_table(cfg, "d_optimizer"), "d_optimizer") if "d_optimizer" in cfg else _optimizer(optimizer),
            d_schedule=_schedule(_table(cfg, "d_schedule"), "d_schedule") if "d_schedule" in cfg else _schedule(schedule),
            run=_run(_table(cfg, "run")),
            config=copy.deepcopy(cfg),
        )


__all__ = [
    "DataConfig",
    "GANConfig",
    "KINDS",
    "DEGRADATIONS",
    "LossConfig",
    "LossTerm",
    "Meta",
    "ModelConfig",
    "OPTIMIZER_NAMES",
    "OptimizerConfig",
    "Recipe",
    "RecipeError",
    "RunOptions",
    "SCHEDULE_KINDS",
    "ScheduleConfig",
    "TrainConfig",
]
