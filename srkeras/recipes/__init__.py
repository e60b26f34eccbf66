"""Training recipes: one small TOML file per paper (``srkeras/recipes/<name>.toml``).

A recipe is a nested dict with the tables ``recipe`` (paper, kind = supervised | gan, init_from),
``model``, ``data``, ``train``, ``optimizer``, ``schedule``, ``loss`` and, for GANs, ``gan`` and
``d_optimizer``. Values are the paper's unless a comment says ``deviation:``; the optional
``[paper]`` table (dotted keys) restores the paper's exact values for those
(``load(name, profile="paper")``). Any value can be overridden with ``key.path=value`` strings
(``--set`` on the command line); values are parsed as TOML (``1e-4``, ``true``, ``[1, 2]``), and
taken as a plain string when that fails.

:class:`Recipe` (:mod:`.spec`) is the typed, read-only view of a resolved recipe with every default
in one place: ``Recipe.from_dict(cfg).train.ema_decay``. :func:`configure_run` is the one builder of a
run's Recipe (the recipe, the overrides of the command line or the study, and the :func:`run_table`),
so the run's ``config.json`` has one author.
"""

from __future__ import annotations

import copy
import dataclasses
import tomllib
from collections.abc import Sequence
from pathlib import Path

from srkeras.recipes.spec import Recipe, RecipeError

RECIPE_DIR = Path(__file__).resolve().parent


def names() -> list[str]:
    return sorted(p.stem for p in RECIPE_DIR.glob("*.toml"))


def path_of(name_or_path) -> Path:
    p = Path(name_or_path)
    if p.suffix == ".toml" and p.is_file():
        return p
    q = RECIPE_DIR / f"{name_or_path}.toml"
    if not q.is_file():
        raise ValueError(f"unknown recipe {name_or_path!r}; choose from {', '.join(names())} or give a .toml file")
    return q


def parse_value(text: str):
    """TOML value of ``text`` (number, bool, array, inline table, quoted string); else the raw string."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def set_path(cfg: dict, dotted: str, value) -> None:
    """Set ``a.b.c`` in ``cfg``; a table is never replaced by a plain value (``--set optimizer=1``)."""
    keys = dotted.split(".")
    if not all(keys):
        raise RecipeError(f"override key {dotted!r} is not a dotted path such as optimizer.lr", key=dotted)
    node = cfg
    for k in keys[:-1]:
        nxt = node.setdefault(k, {})
        if not isinstance(nxt, dict):
            raise RecipeError(f"cannot set {dotted!r}: {k!r} is a value, not a table", key=dotted)
        node = nxt
    if isinstance(node.get(keys[-1]), dict) and not isinstance(value, dict):
        some = next(iter(node[keys[-1]]), "key")
        raise RecipeError(
            f"cannot set {dotted!r} to {value!r}: it is a table of values; set one of them instead (e.g. {dotted}.{some}=...)", key=dotted
        )
    node[keys[-1]] = value


def parse_overrides(items) -> dict:
    """``["a.b=value", ...]`` as {dotted key: parsed value}; a key given twice with different values is
    an error (neither is silently chosen)."""
    out = {}
    for item in items:
        if "=" not in item:
            raise RecipeError(f"override {item!r} is not of the form key.path=value")
        key, text = (t.strip() for t in item.split("=", 1))
        value = parse_value(text)
        if key in out and out[key] != value:
            raise RecipeError(f"--set {key} is given twice, as {out[key]!r} and {value!r}; give it once", key=key)
        out[key] = value
    return out


def get_path(cfg: dict, dotted: str, default=None):
    node = cfg
    for k in dotted.split("."):
        if not isinstance(node, dict) or k not in node:
            return default
        node = node[k]
    return node


def changed_keys(a: dict, b: dict, ignore=()) -> list[str]:
    """Sorted dotted paths whose values differ between two configurations, ``ignore``-d paths (and
    everything under them) left out: what stops a run from resuming with another recipe."""
    skip = tuple(ignore)

    def walk(x, y, prefix):
        if prefix and any(prefix == k or prefix.startswith(k + ".") for k in skip):
            return []
        if not (isinstance(x, dict) and isinstance(y, dict)):
            return [prefix] if x != y else []
        return [d for k in set(x) | set(y) for d in walk(x.get(k), y.get(k), f"{prefix}.{k}" if prefix else k)]

    return sorted(walk(a, b, ""))


def apply_overrides(cfg: dict, overrides) -> dict:
    """Copy of ``cfg`` with ``["a.b=value", ...]`` (or a {dotted: value} dict) applied."""
    out = copy.deepcopy(cfg)
    items = overrides.items() if isinstance(overrides, dict) else parse_overrides(overrides).items()
    for key, value in items:
        set_path(out, key.strip(), value)
    return out


PHOTOS = "skimage photos (not held out)"  # the training images of a run given no folders, as recorded


def run_table(train_dirs: Sequence | None, val_dir=None, *, strategy: str = "auto", mixed_precision: bool = False,
              jit_compile: bool = False, max_minutes: float | None = None, init_from: str | None = None,
              collective_timeout: float | None = None) -> dict:
    """The ``[run]`` table that ``config.json`` records (:class:`~.spec.RunOptions` is its typed view):
    how this machine runs the recipe, and on which images (``train_dirs`` None: the scikit-image photos).
    ``collective_timeout`` is recorded only when given."""
    return {
        "strategy": strategy,
        "mixed_precision": bool(mixed_precision),
        "jit_compile": bool(jit_compile),
        "max_minutes": max_minutes,
        "init_from": init_from,
        **({"collective_timeout": collective_timeout} if collective_timeout is not None else {}),
        "train_dirs": [str(d) for d in train_dirs] if train_dirs else PHOTOS,
        "val_dir": str(val_dir) if val_dir else None,
    }


def configure_run(recipe: dict | Recipe, *overrides, run: dict | None = None) -> Recipe:
    """A run's Recipe: ``recipe`` (a loaded recipe dict, or another run's Recipe) with each of
    ``overrides`` applied in order (a {dotted key: value} dict or ``"key=value"`` strings) and the run
    table ``run`` (:func:`run_table`; None keeps the recipe's own), validated.

    Overriding one patch size (``data.hr_patch`` or ``data.lr_patch``) drops the recipe's other one,
    and an LR patch is recorded as its HR size (HR = LR x scale), so ``config.json`` states the crop
    once. Raises :class:`RecipeError` naming the key (or ``ValueError`` for a malformed override).
    """
    cfg = copy.deepcopy(recipe.config if isinstance(recipe, Recipe) else recipe)
    layers = [layer if isinstance(layer, dict) else parse_overrides(layer) for layer in overrides]
    keys = {k for layer in layers for k in layer}
    if "data.hr_patch" in keys:
        cfg.get("data", {}).pop("lr_patch", None)
    elif "data.lr_patch" in keys:
        cfg.get("data", {}).pop("hr_patch", None)
    for layer in layers:
        cfg = apply_overrides(cfg, layer)
    if run is not None:
        cfg["run"] = run
    typed = Recipe.from_dict(cfg)
    data = cfg["data"]
    if "lr_patch" in data:  # papers that state LR sub-image sizes (ESPCN)
        data.pop("lr_patch")
        data["hr_patch"] = typed.data.hr_patch
    return dataclasses.replace(typed, config=cfg)


def load(name_or_path, profile: str | None = None) -> dict:
    """The recipe as a dict (``profile='paper'`` applies its ``[paper]`` table)."""
    path = path_of(name_or_path)
    with open(path, "rb") as f:
        cfg = tomllib.load(f)
    paper = cfg.pop("paper", {})
    cfg.setdefault("recipe", {})["name"] = path.stem
    if profile == "paper":
        cfg = apply_overrides(cfg, _flatten(paper))
        cfg["recipe"]["profile"] = "paper"
    elif profile not in (None, "default"):
        raise ValueError(f"unknown profile {profile!r}; choose default or paper")
    return cfg


def _flatten(table: dict, prefix: str = "") -> dict:
    # [paper] may use dotted keys or nested tables; both become leaf paths (overlay per value).
    out = {}
    for k, v in table.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(_flatten(v, key + "."))
        else:
            out[key] = v
    return out


__all__ = [
    "PHOTOS", "RECIPE_DIR", "Recipe", "RecipeError", "apply_overrides", "changed_keys", "configure_run", "get_path", "load",
    "names", "parse_overrides", "parse_value", "path_of", "run_table", "set_path",
]
