"""What may change when a run is resumed, and the record of those changes in ``RUN_DIR/config.json``.

A run resumes only with the recipe it started with, except for the keys in :data:`RESUMABLE_KEYS`:
the step count and logging periods, the run options and -- so that the NaN advice ("lower the
learning rate and re-run to resume") can be followed -- the learning rates and their schedules.
Each resume that changes one of them appends ``{"step": S, "changed": {key: [old, new]}}`` to
``config.json``'s ``changes`` list, S being the step the new values took effect from.

A constant rate is a variable of the optimizer (its checkpoint holds it) while a decaying schedule is
not; :func:`srkeras.training.builders.apply_learning_rate` sets the recipe's rate after a restore, and
a switch between the two kinds is refused (the optimizer's checkpointed state differs).
"""

from __future__ import annotations

import json
from pathlib import Path

from srkeras.recipes import Recipe, RecipeError, changed_keys, get_path
from srkeras.training.builders import lr_is_variable
from srkeras.training.errors import TrainingError

LR_KEYS = ("optimizer.lr", "d_optimizer.lr", "schedule", "d_schedule")
# Values that may differ between the first run and a resumed one without invalidating the checkpoint.
RESUMABLE_KEYS = ("train.steps", "train.checkpoint_every", "train.val_every", "train.log_every", "run", "changes", *LR_KEYS)


def previous_config(run_dir: Path) -> dict | None:
    """The recorded configuration of the run in ``run_dir`` if it has a checkpoint to resume from."""
    path = Path(run_dir) / "config.json"
    if not (path.exists() and (Path(run_dir) / "checkpoints" / "checkpoint").exists()):
        return None
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise TrainingError(f"{path}: cannot read the configuration of the run to resume ({e}); use another --out") from None


def resume_changes(old: dict, cfg: dict, recipe: Recipe) -> dict:
    """{dotted key: [old, new]} of what changes on resume (run options left out); raises
    :class:`TrainingError` if anything that makes the checkpoint another run's changed."""
    diff = changed_keys(old, cfg, ignore=RESUMABLE_KEYS)
    if diff:
        raise TrainingError(
            f"the run in this folder has a different configuration ({', '.join(diff)}); use another --out, or the same "
            "options to resume it (only the step count, logging periods, learning rates and schedules may change)"
        )
    changed = [k for k in changed_keys(old, cfg, ignore=("run", "changes"))]
    if any(k.startswith(LR_KEYS) for k in changed):
        _check_lr_layout(old, recipe)
    return {k: [get_path(old, k), get_path(cfg, k)] for k in changed}


def _check_lr_layout(old_cfg: dict, new: Recipe) -> None:
    try:
        old = Recipe.from_dict({k: v for k, v in old_cfg.items() if k != "changes"})
    except RecipeError:
        return  # a record from an older version: the checkpoint restore checks what it can
    pairs = [("schedule", old.optimizer, old.schedule, new.optimizer, new.schedule)]
    if new.gan is not None:
        pairs.append(("d_schedule", old.d_optimizer, old.d_schedule, new.d_optimizer, new.d_schedule))
    for key, o_opt, o_sched, n_opt, n_sched in pairs:
        if lr_is_variable(o_opt, o_sched) != lr_is_variable(n_opt, n_sched):
            raise TrainingError(
                f"{key}: cannot switch between a constant learning rate and a decaying schedule ({o_sched.kind} -> "
                f"{n_sched.kind}) on resume; change the rate itself (--lr or --set optimizer.lr=...), or use another --out"
            )


def record(cfg: dict, old: dict | None, changes: dict, step: int) -> dict:
    """``cfg`` as ``config.json`` records it: with the history of changes made on resume."""
    history = list((old or {}).get("changes") or [])
    if changes:
        history.append({"step": int(step), "changed": changes})
    return {**cfg, "changes": history} if history else dict(cfg)


def describe(changes: dict) -> str:
    return ", ".join(f"{k} {a!r} -> {b!r}" for k, (a, b) in changes.items())
