"""The shape of the package: which files ship to the Hub and what they import, a light `import hf_sparse_distill`,
students saved by the previous version, shipped recipes found by name, and the Python entry point."""

import ast
import json
import subprocess
import sys
from dataclasses import fields
from pathlib import Path

import pytest
import torch

import hf_sparse_distill
from hf_sparse_distill import SparseDANConfig, SparseDANForSequenceClassification, SparseDANTokenizer
from hf_sparse_distill.distillation.recipe import StudentConfig, load_recipe, recipe_path

MODEL_DIR = Path(hf_sparse_distill.__file__).parent / "models" / "sparse_dan"
SHIPPED = [
    "configuration_sparse_dan.py",
    "modeling_sparse_dan.py",
    "pipeline_sparse_dan.py",
    "tokenization_sparse_dan.py",
]
ALLOWED_TOP_LEVEL = {"torch", "transformers", "numpy"}
FIXTURE = Path(__file__).parent / "fixtures" / "student_v0_1"


def imported_modules(path: Path) -> tuple[set[str], set[str]]:
    """(absolute top-level modules, relative module names) imported anywhere in a file."""
    absolute, relative = set(), set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            absolute |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                relative.add(node.module or "")
            elif node.module != "__future__":
                absolute.add(node.module.split(".")[0])
    return absolute, relative


def test_model_folder_holds_exactly_the_shipped_files():
    assert sorted(p.name for p in MODEL_DIR.glob("*.py") if p.name != "__init__.py") == SHIPPED


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_files_import_only_torch_transformers_numpy_and_each_other(name):
    absolute, relative = imported_modules(MODEL_DIR / name)
    third_party = absolute - set(sys.stdlib_module_names)
    assert third_party <= ALLOWED_TOP_LEVEL, f"{name} imports {third_party - ALLOWED_TOP_LEVEL}"
    assert relative <= {p.removesuffix(".py") for p in SHIPPED}, f"{name} imports {relative} relatively"


def test_save_pretrained_copies_the_model_files(saved_student):
    copied = {p.name for p in saved_student.glob("*.py")}
    assert copied == set(SHIPPED)
    for name in copied:
        assert (saved_student / name).read_text() == (MODEL_DIR / name).read_text()


def test_import_is_light():
    """Importing the package pulls in nothing of the extras beyond what the transformers classes it builds on import
    themselves (in transformers 5: jinja2, a dependency of torch, and accelerate and scipy when installed)."""
    heavy = "{'datasets', 'accelerate', 'matplotlib', 'sklearn', 'jinja2', 'yaml', 'tqdm', 'scipy', 'pandas'}"
    script = f"""
import sys
from transformers import PreTrainedModel, PreTrainedTokenizer, TextClassificationPipeline
before = {heavy} & {{m.split('.')[0] for m in sys.modules}}
import hf_sparse_distill
after = {heavy} & {{m.split('.')[0] for m in sys.modules}}
print(sorted(after - before))
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def test_lazy_distillation_api():
    from hf_sparse_distill.distillation import distill, load_recipe

    assert hf_sparse_distill.distill is distill and hf_sparse_distill.load_recipe is load_recipe
    with pytest.raises(AttributeError):
        hf_sparse_distill.no_such_name  # noqa: B018


def test_student_saved_by_version_0_1_loads_and_predicts_the_same():
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    expected = json.loads((FIXTURE / "expected.json").read_text())
    model = AutoModelForSequenceClassification.from_pretrained(FIXTURE).eval()
    tokenizer = AutoTokenizer.from_pretrained(FIXTURE)
    assert isinstance(model, SparseDANForSequenceClassification) and isinstance(tokenizer, SparseDANTokenizer)
    with torch.inference_mode():
        logits = model(**tokenizer.encode_bags(expected["texts"])).logits
    torch.testing.assert_close(logits, torch.tensor(expected["logits"]))


def test_config_hidden_size_is_the_embedding_width():
    config = SparseDANConfig(vocab_size=10, embed_dim=64)
    assert config.hidden_size == 64
    config.hidden_size = 32
    assert config.embed_dim == 32
    assert SparseDANConfig.from_pretrained(FIXTURE).hidden_size == 4


def test_student_settings_are_the_model_config_arguments():
    """The recipe's `student` section is derived from `SparseDANConfig`: same names, same defaults."""
    config = SparseDANConfig()
    student = StudentConfig()
    names = [f.name for f in fields(StudentConfig)]
    assert set(names) == {
        "embed_dim",
        "hidden_dims",
        "activation",
        "pooling",
        "feature_dropout",
        "classifier_dropout",
        "max_ngrams",
        "embedding_init_std",
        "initializer_range",
        "pair_overlap",
    }
    for name in names:
        assert getattr(student, name) == getattr(config, name), name


def test_shipped_recipe_by_name(monkeypatch):
    monkeypatch.setenv("HFSD_SHARED", "/shared")
    assert recipe_path("sst2_shared").name == "sst2_shared.yaml"
    assert load_recipe("sst2_shared").task == "sst2"
    assert load_recipe("sst2_shared.yaml").teacher.model == "/shared/teachers/minilm-l6-sst2"
    with pytest.raises(FileNotFoundError, match="shipped: .*sst2_shared"):
        load_recipe("no_such_recipe")
