"""Distillation: recipes, data, n-gram vocabulary, teacher labelling and training of the student.

Needs the `[distill]` extra (`pip install "hf-sparse-distill[distill]"`): datasets, accelerate, PyYAML.
"""

from ..extras import require_extra

require_extra("distill", ("datasets", "accelerate", "yaml", "tqdm", "filelock"), "distillation")

from .api import distill, run_recipe  # noqa: E402
from .distiller import Distiller  # noqa: E402
from .recipe import Recipe, load_recipe, recipe_from_dict  # noqa: E402

__all__ = ["Distiller", "Recipe", "distill", "load_recipe", "recipe_from_dict", "run_recipe"]
