"""Shared fixtures. No test may touch the network: the Hub is forced offline before transformers loads."""

import os

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import json
import random
import shutil
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from sklearn.feature_extraction.text import CountVectorizer

from hf_sparse_distill import SparseDANConfig, SparseDANForSequenceClassification, SparseDANTokenizer

WORDS = (
    "the a movie film is was not very good bad great awful boring fun funny plot actor acting "
    "story never ever really quite terrible wonderful n't 's it this that and but or love hate"
).split()

CORPUS = [
    "The movie is good.",
    "The movie is not good!",
    "A very good film, really great acting.",
    "Not a good film: boring plot and awful acting.",
    "I love this movie; it's wonderful and fun.",
    "I hate this film -- it was terrible, never again.",
    "The plot was quite funny but the acting was bad.",
    "Great story, great actor, great movie.",
    "It isn't good, it's not bad, it is boring.",
    "Wonderful!!! 10/10 would watch again",
]


def random_texts(n: int, seed: int = 0) -> list[str]:
    """Varied texts: vocabulary words mixed with case, punctuation, digits, accents, other scripts and emoji."""
    rng = random.Random(seed)
    extras = [
        "!!!",
        "?",
        "--",
        "...",
        "42",
        "3.14",
        "x",
        "I",
        "Élan",
        "naïve",
        "café",
        "日本語",
        "Привет",
        "مرحبا",
        "😀",
        "🎉🎉",
        "don't",
        "e-mail",
        "snake_case",
        "UPPER",
        "MiXeD",
        "\t",
        "\n",
        "  ",
    ]
    texts = []
    for _ in range(n):
        tokens = [rng.choice(WORDS if rng.random() < 0.75 else extras) for _ in range(rng.randint(0, 30))]
        texts.append(" ".join(token.upper() if rng.random() < 0.1 else token for token in tokens))
    return texts


@pytest.fixture(scope="session")
def fitted_vectorizer() -> CountVectorizer:
    """A CountVectorizer with scikit-learn's defaults and n-grams 1-4, fitted on varied text."""
    return CountVectorizer(ngram_range=(1, 4)).fit(CORPUS + random_texts(300, seed=1))


@pytest.fixture(scope="session")
def tokenizer(fitted_vectorizer) -> SparseDANTokenizer:
    return SparseDANTokenizer.from_ngrams(fitted_vectorizer.get_feature_names_out().tolist())


def make_model(tokenizer: SparseDANTokenizer, seed: int = 0, **overrides) -> SparseDANForSequenceClassification:
    """A small randomly initialised student whose predictions differ from text to text."""
    torch.manual_seed(seed)
    settings = dict(
        vocab_size=tokenizer.vocab_size,
        embed_dim=16,
        hidden_dims=[12],
        embedding_init_std=1.0,
        initializer_range=0.5,
        id2label={0: "negative", 1: "positive"},
        label2id={"negative": 0, "positive": 1},
    )
    settings.update(overrides)
    return SparseDANForSequenceClassification(SparseDANConfig(**settings)).eval()


@pytest.fixture()
def model(tokenizer) -> SparseDANForSequenceClassification:
    return make_model(tokenizer)


@pytest.fixture()
def saved_student(tmp_path, model, tokenizer) -> Path:
    """A student saved with `save_pretrained` (model + tokenizer + code files)."""
    out = tmp_path / "student"
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


BLOCK_PACKAGE = """
import sys
sys.modules["hf_sparse_distill"] = None  # any import of the package now fails: only remote code can serve
"""


def run_without_package(script: str, env: dict[str, str] | None = None, timeout: float = 300) -> str:
    """Run `script` in a fresh Python where `hf_sparse_distill` cannot be imported; return its stdout.

    The script must not leave any module of the package imported (checked at the end of the run)."""
    check = """
leaked = [name for name in sys.modules if name.startswith("hf_sparse_distill") and sys.modules[name] is not None]
assert not leaked, leaked
"""
    full_env = {**os.environ, "HF_HUB_OFFLINE": "1", **(env or {})}
    result = subprocess.run(
        [sys.executable, "-c", BLOCK_PACKAGE + textwrap.dedent(script) + check],
        capture_output=True,
        text=True,
        env=full_env,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )
    if result.returncode != 0:
        raise AssertionError(f"subprocess failed ({result.returncode}):\n{result.stderr[-4000:]}")
    return result.stdout


def place_in_hub_cache(folder: Path, hf_home: Path, repo_id: str) -> str:
    """Lay `folder` out as a downloaded Hub snapshot of model `repo_id` under `hf_home`; return the revision."""
    revision = "0123456789abcdef0123456789abcdef01234567"
    repo_dir = hf_home / "hub" / ("models--" + repo_id.replace("/", "--"))
    (repo_dir / "refs").mkdir(parents=True)
    (repo_dir / "refs" / "main").write_text(revision)
    shutil.copytree(folder, repo_dir / "snapshots" / revision)
    return revision


def build_tiny_teacher(
    folder: Path, seed: int = 0, labels: tuple[str, ...] = ("negative", "positive"), problem_type: str | None = None
) -> Path:
    """A real (tiny, randomly initialised) BERT sequence classifier with its WordPiece tokenizer, saved with
    `save_pretrained` like any fine-tuned teacher (`labels`: its outputs; `problem_type` as transformers')."""
    from transformers import BertConfig, BertForSequenceClassification, BertTokenizer

    folder.mkdir(parents=True, exist_ok=True)
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", ",", ".", "!", "-", "'"] + sorted(set(WORDS))
    (folder / "vocab.txt").write_text("\n".join(vocab) + "\n")
    tokenizer = BertTokenizer(str(folder / "vocab.txt"), model_max_length=128)
    torch.manual_seed(seed)
    config = BertConfig(
        vocab_size=len(vocab),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=128,
        id2label=dict(enumerate(labels)),
        label2id={name: i for i, name in enumerate(labels)},
        problem_type=problem_type,
    )
    BertForSequenceClassification(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    (folder / "vocab.txt").unlink()
    return folder


@pytest.fixture(scope="session")
def tiny_teacher(tmp_path_factory) -> Path:
    return build_tiny_teacher(tmp_path_factory.mktemp("teacher") / "tiny-bert")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def two_cpu_processes(*program: str) -> tuple[list[str], dict[str, str]]:
    """Command and environment that start `program` (a script path, or `-m module ...`) as 2 synchronised CPU
    processes: `ACCELERATE_USE_CPU=1 accelerate launch --multi_gpu`, the one combination that does so."""
    command = [
        sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
        "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
        "--main_process_port", str(free_port()), *program,
    ]  # fmt: skip
    return command, {**os.environ, "ACCELERATE_USE_CPU": "1", "OMP_NUM_THREADS": "1"}


def write_jsonl(path: Path, rows: list[dict]) -> str:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


@pytest.fixture()
def tiny_recipe(tmp_path, tiny_teacher, monkeypatch) -> Path:
    """A complete recipe on tiny data (train 150, dev 60, 61 unlabeled reviews incl. one dev text) and the tiny teacher."""
    texts = CORPUS + random_texts(200, seed=31)
    rows = [{"text": t, "label": int("good" in t.lower() or "great" in t.lower())} for t in texts]
    data = tmp_path / "data"
    data.mkdir()
    write_jsonl(data / "train.jsonl", rows[:150])
    write_jsonl(data / "dev.jsonl", rows[150:])
    reviews = [{"text": " ".join(random_texts(4, seed=100 + i))} for i in range(60)]
    reviews.append({"text": rows[150]["text"]})  # a dev text hidden in the unlabeled corpus
    write_jsonl(data / "reviews.jsonl", reviews)
    monkeypatch.setenv("TINY_DATA", str(data))
    monkeypatch.setenv("TINY_TEACHER", str(tiny_teacher))
    recipe = tmp_path / "tiny.yaml"
    recipe.write_text(
        f"""
task: tiny-sentiment
speed_seconds: 0.2
output_dir: {tmp_path / "run"}
teacher: {{model: "${{TINY_TEACHER}}", batch_size: 16, chunk_size: 64}}
data:
  train: {{path: "${{TINY_DATA}}/train.jsonl"}}
  dev: {{path: "${{TINY_DATA}}/dev.jsonl"}}
  unlabeled:
    - {{path: "${{TINY_DATA}}/reviews.jsonl", label_column: null}}
    - {{path: "${{TINY_DATA}}/reviews.jsonl", label_column: null, split_sentences: true}}
vocab: {{size: 3000, num_workers: 1}}
student: {{embed_dim: 16, hidden_dims: [16]}}
augment: {{enabled: true, copies_per_example: 1}}
kd: {{epochs: 2, batch_size: 32, learning_rate: 1e-2, embedding_learning_rate: 5e-2, eval_steps: 5}}
finetune: {{enabled: true, epochs: 1, batch_size: 16, learning_rate: 1e-3}}
scratch: {{enabled: true, epochs: 1, batch_size: 16}}
"""
    )
    return recipe
