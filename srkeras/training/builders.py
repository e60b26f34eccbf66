"""Builders of a run's parts from the typed recipe: learning-rate schedules, optimizers, loss terms.

The learning rate is a function of the recipe and the optimizer's iteration count. A constant rate is
a variable of the optimizer (and so of its checkpoint); :func:`apply_learning_rate` sets it from the
recipe after a restore, so a rate changed on resume (the NaN advice) takes effect.
"""

from __future__ import annotations

from srkeras.recipes.spec import OPTIMIZER_NAMES, LossConfig, OptimizerConfig, ScheduleConfig
from srkeras.training.errors import TrainingError


def make_schedule(opt: OptimizerConfig, sched: ScheduleConfig, total_steps: int):
    """Learning rate or schedule on optimizer iterations: constant | multistep | cosine."""
    import keras

    if sched.kind == "constant":
        return opt.lr
    if sched.kind == "multistep":
        if not sched.milestones:
            return opt.lr
        values = [opt.lr * sched.gamma**i for i in range(len(sched.milestones) + 1)]
        return keras.optimizers.schedules.PiecewiseConstantDecay(list(sched.milestones), values)
    if sched.kind == "cosine":
        return keras.optimizers.schedules.CosineDecay(opt.lr, decay_steps=max(1, int(total_steps)), alpha=sched.alpha)
    raise TrainingError(f"unknown schedule kind {sched.kind!r}; choose constant, multistep or cosine")


OPTIMIZERS = {"adam": "Adam", "adamw": "AdamW", "sgd": "SGD", "rmsprop": "RMSprop"}
assert tuple(OPTIMIZERS) == OPTIMIZER_NAMES


def make_optimizer(opt: OptimizerConfig, sched: ScheduleConfig, total_steps: int, mixed_precision: bool):
    """The Keras optimizer of ``opt`` on the schedule ``sched``, loss-scaled under mixed precision."""
    import keras

    if opt.name not in OPTIMIZERS:
        raise TrainingError(f"unknown optimizer {opt.name!r}; choose from {', '.join(OPTIMIZERS)}")
    cls = getattr(keras.optimizers, OPTIMIZERS[opt.name])
    out = cls(learning_rate=make_schedule(opt, sched, total_steps), **opt.options)
    return keras.optimizers.LossScaleOptimizer(out) if mixed_precision else out


def make_loss_terms(loss: LossConfig):
    """The weighted content losses; perceptual ones get ``loss.backbone_weights`` unless they set theirs."""
    from srkeras import losses
    from srkeras.training.supervised import LossTerms

    terms = []
    for t in loss.terms:
        options = dict(t.options)
        if t.name in losses.PRESETS:
            options.setdefault("weights", loss.backbone_weights)
        try:
            fn = losses.get(t.name, **options)
        except losses.WeightsNotFoundError as e:
            raise TrainingError(
                f"loss {t.name!r} needs ImageNet backbone weights: {e}\n"
                "Pass a local weights file with --set loss.backbone_weights=/path/to/file.h5"
            ) from None
        terms.append((t.name, fn, t.weight))
    return LossTerms(terms)


def lr_is_variable(opt: OptimizerConfig, sched: ScheduleConfig) -> bool:
    """Whether the optimizer holds its rate as a variable (a constant rate) rather than a schedule: the
    optimizer's checkpointed state differs between the two, so a resumed run cannot switch."""
    return isinstance(make_schedule(opt, sched, 1), float)


def apply_learning_rate(optimizer, opt: OptimizerConfig, sched: ScheduleConfig) -> None:
    """Set a constant rate from the recipe (after a restore that loaded the checkpoint's rate)."""
    lr = make_schedule(opt, sched, 1)
    if isinstance(lr, float):
        optimizer.learning_rate = lr
