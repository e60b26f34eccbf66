"""What a resolved recipe may contain: its known keys (a misspelt one is an error that suggests the
closest known key) and typed readers that check ranges, each naming the key it reads.

:meth:`srkeras.recipes.Recipe.from_dict` reads every value through these, so a bad value
(``--scale 0``, ``--steps -5``, ``--set trian.steps=1``) is refused before any work starts.
"""

from __future__ import annotations

import difflib
import math

MISSING = object()


class RecipeError(ValueError):
    """A recipe lacks a required value or has one of the wrong kind; the message names its key
    (also in ``key``, a dotted path, when one value is at fault)."""

    def __init__(self, message: str, key: str | None = None):
        super().__init__(message)
        self.key = key


OPTIMIZER_NAMES = ("adam", "adamw", "sgd", "rmsprop")
SCHEDULE_KINDS = ("constant", "multistep", "cosine")
STRATEGIES = ("auto", "default", "mirrored", "multiworker")
# Keyword arguments of the Keras optimizers that a recipe may pass (optimizer.<key>).
OPTIMIZER_OPTIONS = (
    "beta_1", "beta_2", "epsilon", "amsgrad", "weight_decay", "momentum", "nesterov", "rho", "centered",
    "clipnorm", "clipvalue", "global_clipnorm", "use_ema", "ema_momentum", "ema_overwrite_frequency",
    "loss_scale_factor", "gradient_accumulation_steps",
)  # fmt: skip
_OPTIMIZER = ("name", "lr", "lr_multipliers", *OPTIMIZER_OPTIONS)
_SCHEDULE = ("kind", "milestones", "gamma", "alpha")

# table -> its keys. Values under model.options, gan.d_options, optimizer.lr_multipliers and a loss
# term's options are the builders' own keyword arguments and are not checked here.
KNOWN_KEYS = {
    "recipe": ("name", "kind", "init_from", "paper", "profile"),
    "model": ("name", "scale", "options"),
    "data": ("hr_patch", "lr_patch", "batch", "degradation", "augment", "blur_sigma"),
    "train": ("steps", "seed", "checkpoint_every", "val_every", "log_every", "ema", "ema_decay", "keep_checkpoints", "val_max_images"),
    "optimizer": _OPTIMIZER,
    "schedule": _SCHEDULE,
    "loss": ("terms", "backbone_weights"),
    "gan": ("discriminator", "d_options", "adversarial", "adversarial_weight"),
    "d_optimizer": _OPTIMIZER,
    "d_schedule": _SCHEDULE,
    "run": ("strategy", "mixed_precision", "jit_compile", "max_minutes", "init_from", "sync_bn", "collective_timeout", "train_dirs", "val_dir"),
}
# Top-level keys that are records, not recipe tables (RUN_DIR/config.json's history of changes on resume).
RECORD_KEYS = ("changes",)
LOSS_TERM_KEYS = ("name", "weight", "options")


def all_keys() -> list[str]:
    return [*KNOWN_KEYS, *(f"{t}.{k}" for t, keys in KNOWN_KEYS.items() for k in keys)]


def unknown_key(dotted: str) -> RecipeError:
    close = difflib.get_close_matches(dotted, all_keys(), n=1, cutoff=0.6)
    hint = f"; did you mean {close[0]!r}?" if close else "; see the recipe files in srkeras/recipes/ for the known keys"
    return RecipeError(f"unknown recipe key {dotted!r}{hint}", key=dotted)


def check_keys(cfg: dict) -> None:
    """Every key of ``cfg`` is a known one (misspelt keys would otherwise be silently ignored)."""
    for top, value in cfg.items():
        if top in RECORD_KEYS:
            continue
        if top not in KNOWN_KEYS:
            sub = next(iter(value), None) if isinstance(value, dict) and len(value) == 1 else None
            raise unknown_key(f"{top}.{sub}" if sub else top)
        if value is None:
            continue
        if not isinstance(value, dict):
            raise RecipeError(f"recipe key {top!r} must be a table (set its keys, e.g. {top}.{KNOWN_KEYS[top][0]}=...), got {value!r}", key=top)
        for k in value:
            if k not in KNOWN_KEYS[top]:
                raise unknown_key(f"{top}.{k}")
    terms = (cfg.get("loss") or {}).get("terms") or []
    if not isinstance(terms, list):
        raise RecipeError(f"loss.terms must be an array of {{name, weight, options}} tables, got {terms!r}", key="loss.terms")
    for t in terms:
        if not isinstance(t, dict):
            raise RecipeError(f"loss.terms: each term must be a table {{name, weight, options}}, got {t!r}", key="loss.terms")
        for k in t:
            if k not in LOSS_TERM_KEYS:
                close = difflib.get_close_matches(k, LOSS_TERM_KEYS, n=1)
                raise RecipeError(f"unknown loss term key {k!r}" + (f"; did you mean {close[0]!r}?" if close else ""), key="loss.terms")


# --------------------------------------------------------------------------------------------------
# Typed readers: table[key] checked, errors naming "where.key"
# --------------------------------------------------------------------------------------------------


def _fail(where: str, key: str, what: str, value) -> RecipeError:
    return RecipeError(f"{where}.{key} must be {what}, got {value!r}", key=f"{where}.{key}")


def integer(table: dict, key: str, where: str, default=MISSING, minimum: int | None = None, optional: bool = False):
    """An integer (an integral float such as TOML's ``1e5`` too) at least ``minimum``; ``None`` only
    when ``optional``; missing -> ``default`` (required when there is none)."""
    value = table.get(key)
    if value is None:
        if optional and key in table:
            return None
        if default is MISSING:
            raise RecipeError(f"the recipe has no {where}.{key}", key=f"{where}.{key}")
        return default
    what = "an integer" if minimum is None else ("a positive integer" if minimum == 1 else f"an integer >= {minimum}")
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (isinstance(value, float) and not value.is_integer()):
        raise _fail(where, key, what, value)
    if minimum is not None and value < minimum:
        raise _fail(where, key, what, value)
    return int(value)


def number(table: dict, key: str, where: str, default, low: float | None = None, high: float | None = None, open_low: bool = False, open_high: bool = False):
    """A finite number in [low, high] (``open_*``: the bound excluded); missing -> ``default``."""
    value = table.get(key, default)
    if value is None and default is None:
        return None
    lo = "" if low is None else f"{'>' if open_low else '>='} {low:g}"
    hi = "" if high is None else f"{'<' if open_high else '<='} {high:g}"
    what = "a number" + (f" {lo}" if lo else "") + (" and" if lo and hi else "") + (f" {hi}" if hi else "")
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise _fail(where, key, what, value)
    if low is not None and (value < low or (open_low and value == low)):
        raise _fail(where, key, what, value)
    if high is not None and (value > high or (open_high and value == high)):
        raise _fail(where, key, what, value)
    return float(value)


def boolean(table: dict, key: str, where: str, default: bool) -> bool:
    value = table.get(key)
    if value is None:
        return default
    if not isinstance(value, bool):
        raise _fail(where, key, "true or false", value)
    return value


def choice(table: dict, key: str, where: str, default: str, choices, lower: bool = False) -> str:
    value = table.get(key, default)
    text = value.lower() if lower and isinstance(value, str) else value
    if text not in choices:
        raise _fail(where, key, f"one of {', '.join(choices)}", value)
    return text


def milestones(table: dict, where: str) -> tuple[int, ...]:
    value = table.get("milestones") or []
    if not isinstance(value, list):
        raise _fail(where, "milestones", "an array of increasing positive step numbers", value)
    out = tuple(integer({"milestones": m}, "milestones", where, minimum=1) for m in value)
    if any(b <= a for a, b in zip(out, out[1:])):
        raise _fail(where, "milestones", "an array of increasing positive step numbers", value)
    return out
