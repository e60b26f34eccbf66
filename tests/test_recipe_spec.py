"""srkeras.recipes.Recipe: the typed view of a resolved recipe (defaults in one place)."""

from __future__ import annotations

import pytest

from srkeras import recipes
from srkeras.recipes import Recipe, RecipeError


def test_every_recipe_has_a_typed_view():
    for name in recipes.names():
        for profile in ("default", "paper"):
            r = Recipe.from_dict(recipes.load(name, profile))
            assert r.name == name and r.kind in ("supervised", "gan")
            assert r.data.hr_patch > 0 and r.train.steps > 0 and r.loss.terms
            assert (r.gan is not None) == (r.kind == "gan")


def test_defaults_and_lr_patch():
    r = Recipe.from_dict({
        "recipe": {"name": "t"},
        "model": {"name": "espcn", "scale": 3, "options": {"channels": 1}},
        "data": {"lr_patch": 17, "batch": 4},
        "train": {"steps": 5, "log_every": None, "seed": None},
        "optimizer": {"name": "SGD", "lr": 0.01, "momentum": 0.9},
    })
    assert r.data.hr_patch == 51 and r.model.channels == 1 and r.kind == "supervised"
    assert (r.train.seed, r.train.log_every, r.train.val_every, r.train.checkpoint_every) == (0, 0, 1000, 1000)
    assert (r.train.ema, r.train.ema_decay, r.train.keep_checkpoints) == (False, 0.999, 3)
    assert r.optimizer.name == "sgd" and r.optimizer.options == {"momentum": 0.9}
    assert r.d_optimizer == r.optimizer and r.schedule.kind == "constant" and r.d_schedule == r.schedule
    assert r.run.strategy == "auto" and r.run.sync_bn and r.run.max_minutes is None
    assert r.loss.backbone_weights == "imagenet"


@pytest.mark.parametrize(
    "change, message",
    [
        ({"model": {"scale": 2}}, "model.name"),
        ({"recipe": {"name": "t", "kind": "gan"}}, "gan.discriminator"),
        ({"recipe": {"name": "t", "kind": "weird"}}, "kind"),
        ({"train": {"steps": "many"}}, "many"),
    ],
)
def test_errors_name_the_key(change, message):
    cfg = {"recipe": {"name": "t"}, "model": {"name": "espcn", "scale": 2}, "data": {"hr_patch": 8, "batch": 2}, "train": {"steps": 1}}
    cfg.update(change)
    with pytest.raises(RecipeError, match=message):
        Recipe.from_dict(cfg)


def test_changed_keys():
    a = {"model": {"options": {"n1": 8}}, "train": {"steps": 2}, "run": {"x": 1}}
    b = {"model": {"options": {"n1": 16}}, "train": {"steps": 4}, "run": {"x": 2}}
    assert recipes.changed_keys(a, b, ignore=("train.steps", "run")) == ["model.options.n1"]
    assert recipes.changed_keys(a, a) == []


def test_configure_run_is_the_one_builder_of_a_runs_record():
    run = recipes.run_table(["a", "b"], "v", max_minutes=2.0)
    assert list(run) == ["strategy", "mixed_precision", "jit_compile", "max_minutes", "init_from", "train_dirs", "val_dir"]
    assert recipes.run_table(None, collective_timeout=30.0)["collective_timeout"] == 30.0
    assert recipes.run_table(None)["train_dirs"] == recipes.PHOTOS
    base = recipes.load("espcn")  # states lr_patch (ESPCN's LR sub-images)
    r = recipes.configure_run(base, {"model.scale": 4}, ["optimizer.lr=1e-4"], run=run)
    assert r.data.hr_patch == 24 * 4 and r.optimizer.lr == 1e-4 and r.run.max_minutes == 2.0
    assert "lr_patch" not in r.config["data"] and r.config["data"]["hr_patch"] == 96  # the crop stated once
    assert r.config["run"] == run and r == Recipe.from_dict(r.config)  # config.json reads back as the same recipe
    assert "lr_patch" in base["data"]  # the loaded recipe is not changed
    # Overriding one patch size drops the other; a Recipe + overrides keeps its own run table unless replaced.
    assert recipes.configure_run(r, {"data.lr_patch": 10}).data.hr_patch == 40
    again = recipes.configure_run(r, {"train.steps": 3, "run.init_from": "none"})
    assert (again.train.steps, again.run.init_from, again.config["run"]["train_dirs"]) == (3, "none", ["a", "b"])
    with pytest.raises(RecipeError, match="model.scale") as e:
        recipes.configure_run(base, {"model.scale": 0})
    assert e.value.key == "model.scale"
