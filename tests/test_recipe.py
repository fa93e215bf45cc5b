"""Recipes: YAML → typed settings, environment expansion, overrides, clear errors."""

import pytest

from hf_sparse_distill.distillation.recipe import Recipe, RecipeError, expand_env, load_recipe

MINIMAL = """
task: demo
output_dir: ${DEMO_OUT:-runs/demo}
teacher: {model: "${DEMO_TEACHER}"}
data:
  train: {path: "${DEMO_DATA}/train.jsonl"}
  dev: {path: "${DEMO_DATA}/dev.jsonl"}
  unlabeled:
    - {path: imdb, split: unsupervised, label_column: null, split_sentences: true, max_rows: 1000}
kd: {epochs: 2, learning_rate: 1e-3, betas: [0.9, 0.999]}
"""


def write(tmp_path, text):
    path = tmp_path / "recipe.yaml"
    path.write_text(text)
    return path


def test_load_expand_and_defaults(tmp_path, monkeypatch):
    monkeypatch.setenv("DEMO_TEACHER", "org/teacher")
    monkeypatch.setenv("DEMO_DATA", "/data/sst2")
    monkeypatch.delenv("DEMO_OUT", raising=False)
    recipe = load_recipe(write(tmp_path, MINIMAL))
    assert isinstance(recipe, Recipe)
    assert recipe.output_dir == "runs/demo" and recipe.teacher.model == "org/teacher"
    assert recipe.data.train.path == "/data/sst2/train.jsonl"
    assert recipe.data.unlabeled[0].label_column is None and recipe.data.unlabeled[0].max_rows == 1000
    assert recipe.kd.learning_rate == 1e-3 and recipe.kd.epochs == 2.0 and recipe.kd.betas == [0.9, 0.999]
    assert recipe.finetune.enabled is False and recipe.vocab.size == 1_000_000  # defaults
    assert str(recipe.cache_path) == "runs/demo/cache"


def test_overrides(tmp_path, monkeypatch):
    monkeypatch.setenv("DEMO_TEACHER", "t")
    monkeypatch.setenv("DEMO_DATA", "d")
    recipe = load_recipe(write(tmp_path, MINIMAL), ["kd.epochs=5", "finetune.enabled=true", "vocab.size=1000"])
    assert recipe.kd.epochs == 5.0 and recipe.finetune.enabled is True and recipe.vocab.size == 1000


@pytest.mark.parametrize(
    "override, message",
    [
        ("kd.epochz=1", "unknown field"),
        ("kd.batch_size=big", "expected int"),
        ("vocab.ngram_range=3", "expected a list"),
        ("kd.batch_size", "section.field=value"),
    ],
)
def test_errors_name_the_field(tmp_path, monkeypatch, override, message):
    monkeypatch.setenv("DEMO_TEACHER", "t")
    monkeypatch.setenv("DEMO_DATA", "d")
    with pytest.raises(RecipeError, match=message):
        load_recipe(write(tmp_path, MINIMAL), [override])


def test_unset_variable_without_default(monkeypatch):
    monkeypatch.delenv("NOT_SET_ANYWHERE", raising=False)
    with pytest.raises(RecipeError, match="NOT_SET_ANYWHERE"):
        expand_env("${NOT_SET_ANYWHERE}/x")
    assert expand_env("${NOT_SET_ANYWHERE:-fallback}/x") == "fallback/x"


def test_shipped_recipes_parse(monkeypatch):
    from pathlib import Path

    monkeypatch.setenv("HFSD_SHARED", "/shared")
    recipes = sorted((Path(__file__).parent.parent / "recipes").glob("*.yaml"))
    assert recipes, "the repository ships recipes"
    for path in recipes:
        recipe = load_recipe(path)
        assert recipe.kd.enabled and recipe.teacher.model


def test_override_an_item_of_a_list(tmp_path, monkeypatch):
    monkeypatch.setenv("DEMO_TEACHER", "t")
    monkeypatch.setenv("DEMO_DATA", "d")
    recipe = load_recipe(write(tmp_path, MINIMAL), ["data.unlabeled[0].max_rows=5", "data.unlabeled[0].min_words=3"])
    assert recipe.data.unlabeled[0].max_rows == 5 and recipe.data.unlabeled[0].min_words == 3
    with pytest.raises(RecipeError, match="unlabeled has no item 1"):
        load_recipe(write(tmp_path, MINIMAL), ["data.unlabeled[1].max_rows=5"])
