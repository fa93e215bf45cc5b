"""Publishing: one commit with the exact files, a card whose metadata parses back, fp16 table and sharding,
and the uploaded folder served from a Hub cache to a process without the package."""

import json
import shutil
from unittest import mock

import huggingface_hub
import pytest
import torch
from conftest import place_in_hub_cache, random_texts, run_without_package, write_jsonl
from huggingface_hub import CommitInfo, HfApi, ModelCard, RepoUrl
from safetensors import safe_open

from hf_sparse_distill import SparseDANForSequenceClassification, SparseDANTokenizer
from hf_sparse_distill.cli import main
from hf_sparse_distill.hub import push_student, save_for_hub
from hf_sparse_distill.results import DataReport, DistillationResults, Metrics, SpeedResult, TeacherResult

RESULTS_V0_1 = {  # the untyped results.json of version 0.1
    "task": "sst2",
    "teacher": {"accuracy": 0.8968, "macro_f1": 0.8966, "num_examples": 872},
    "kd": {"accuracy": 0.8601, "macro_f1": 0.8600, "num_examples": 872},
    "finetune": {"accuracy": 0.8716, "macro_f1": 0.8715, "num_examples": 872},
    "student": {"source": "finetune", "accuracy": 0.8716, "macro_f1": 0.8715, "num_examples": 872},
    "data": {"train": 67349, "unlabeled_kept": 300000, "unlabeled_removed_eval_overlap": 12, "kd_total": 367349},
    "avg_ngrams_dev": 41.5,
    "speed": {
        "machine": "test CPU",
        "texts": "sst2 dev (872 texts)",
        "student_texts_per_s": 25000.0,
        "student_batch_size": 256,
        "teacher_texts_per_s": 180.0,
        "teacher_batch_size": 64,
        "teacher_dtype": "torch.float32",
        "speedup": 138.9,
    },
}
RESULTS = DistillationResults(
    task="sst2",
    report_split="dev",
    selection_split="dev (version 0.1 chose on the split it reports)",
    teacher=TeacherResult("philschmid/roberta-large-sst2", "torch.float32", Metrics(0.8968, 0.8966, 872)),
    stages={"kd": Metrics(0.8601, 0.8600, 872, step=900), "finetune": Metrics(0.8716, 0.8715, 872, step=300)},
    selection={
        "teacher": Metrics(0.8968, 0.8966, 872),
        "kd": Metrics(0.8601, 0.8600, 872, step=900),
        "finetune": Metrics(0.8716, 0.8715, 872, step=300),
    },
    student_stage="finetune",
    student_dir="run/student",
    data=DataReport(train=67349, unlabeled_kept=300000, unlabeled_removed_eval_overlap=12, kd_total=367349),
    avg_ngrams=41.5,
    speed=SpeedResult("test CPU", "sst2 dev (872 texts)", 25000.0, 256, 180.0, 64, "torch.float32"),
)
RECIPE = {
    "task": "sst2",
    "license": "apache-2.0",
    "language": "en",
    "dataset_ids": ["stanfordnlp/sst2"],
    "teacher": {"model": "philschmid/roberta-large-sst2"},
    "vocab": {"size": 1000000, "lowercase": True, "token_pattern": "(?u)n't|\\b\\w+\\b|[!?]"},
    "kd": {"epochs": 3, "batch_size": 256, "learning_rate": 1e-3, "embedding_learning_rate": 0.05, "temperature": 1.0},
    "finetune": {"epochs": 2, "batch_size": 64, "learning_rate": 1e-4},
}
EXPECTED_FILES = [
    "README.md",
    "config.json",
    "configuration_sparse_dan.py",
    "model.safetensors",
    "modeling_sparse_dan.py",
    "ngram_vocab.json",
    "pipeline_sparse_dan.py",
    "speed_accuracy.png",
    "tokenization_sparse_dan.py",
    "tokenizer_config.json",
]


@pytest.fixture()
def run_dir(tmp_path, saved_student):
    """A finished distillation run: student/ plus results.json and recipe.json beside it."""
    run = tmp_path / "run"
    shutil.copytree(saved_student, run / "student")
    RESULTS.save(run / "results.json")
    (run / "recipe.json").write_text(json.dumps(RECIPE))
    return run


@pytest.fixture()
def fake_hub(tmp_path):
    """HfApi with the network calls replaced: records repos, branches and commits (copying the uploaded files)."""
    uploaded = tmp_path / "uploaded"
    calls = {"create_repo": [], "create_branch": [], "create_commit": []}

    def create_repo(self, repo_id, **kwargs):
        calls["create_repo"].append((repo_id, kwargs))
        return RepoUrl(f"https://huggingface.co/{repo_id}")

    def create_branch(self, repo_id, **kwargs):
        calls["create_branch"].append((repo_id, kwargs))

    def create_commit(self, repo_id, operations, **kwargs):
        calls["create_commit"].append((repo_id, [op.path_in_repo for op in operations], kwargs))
        for op in operations:
            target = uploaded / op.path_in_repo
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(op.path_or_fileobj, target)
        return CommitInfo(
            commit_url=f"https://huggingface.co/{repo_id}/commit/{'a' * 40}",
            commit_message=kwargs.get("commit_message", ""),
            commit_description="",
            oid="a" * 40,
        )

    def validate_yaml(self, content, **kwargs):  # the Hub's server-side card check; the card is parsed locally
        calls.setdefault("validate_yaml", []).append(content)

    with (
        mock.patch.object(HfApi, "_validate_yaml", validate_yaml),
        mock.patch.object(HfApi, "create_repo", create_repo),
        mock.patch.object(HfApi, "create_branch", create_branch),
        mock.patch.object(HfApi, "create_commit", create_commit),
        mock.patch.object(huggingface_hub.hf_api, "is_xet_available", lambda: False),
    ):
        yield calls, uploaded


def test_push_is_one_commit_with_the_expected_files_and_card(run_dir, fake_hub):
    calls, uploaded = fake_hub
    url = push_student(run_dir / "student", "acme/sst2-dan", private=True, commit_message="first student")
    assert url == f"https://huggingface.co/acme/sst2-dan/commit/{'a' * 40}"
    assert calls["create_repo"] == [("acme/sst2-dan", {"private": True, "exist_ok": True, "repo_type": "model"})]
    assert len(calls["create_commit"]) == 1
    repo, files, kwargs = calls["create_commit"][0]
    assert repo == "acme/sst2-dan" and sorted(files) == EXPECTED_FILES
    assert kwargs["commit_message"] == "first student"

    card = ModelCard.load(uploaded / "README.md")
    data = card.data.to_dict()
    assert data["library_name"] == "transformers" and data["pipeline_tag"] == "text-classification"
    assert {"sparse-distillation", "dan", "custom_code"} <= set(data["tags"])
    assert data["base_model"] == "philschmid/roberta-large-sst2"
    assert data["datasets"] == ["stanfordnlp/sst2"] and data["license"] == "apache-2.0"
    metrics = {m["type"]: m["value"] for m in data["model-index"][0]["results"][0]["metrics"]}
    assert metrics == {"accuracy": 0.8716, "f1": 0.8715}
    text = card.text
    assert "89.68" in text and "87.16" in text and "97.2%" in text  # teacher, student, retention
    assert "25,000" in text and "139× faster" in text and "test CPU" in text
    assert "trust_remote_code=True" in text and "acme/sst2-dan" in text and "Limitations" in text
    assert "ye-etal-2022-sparse" in text and "speed_accuracy.png" in text
    assert "lower-cased, words matching `(?u)n't\\|\\b\\w+\\b\\|[!?]`" in text
    assert "was made on dev (version 0.1 chose on the split it reports)" in text


def test_results_of_version_0_1_give_the_same_card(run_dir, tmp_path):
    """A run made by version 0.1 (untyped results.json) is still published with the same card."""
    typed = save_for_hub(run_dir / "student", tmp_path / "typed", "acme/sst2-dan")
    (run_dir / "results.json").write_text(json.dumps(RESULTS_V0_1))
    legacy = save_for_hub(run_dir / "student", tmp_path / "legacy", "acme/sst2-dan")
    assert (legacy / "README.md").read_text() == (typed / "README.md").read_text()


def test_push_to_a_branch(run_dir, fake_hub):
    calls, _ = fake_hub
    push_student(run_dir / "student", "acme/sst2-dan", revision="v2")
    assert calls["create_branch"] == [("acme/sst2-dan", {"branch": "v2", "exist_ok": True})]
    assert calls["create_commit"][0][2]["revision"] == "v2"


def test_push_command(run_dir, fake_hub, capsys):
    calls, _ = fake_hub
    assert main(["push", str(run_dir / "student"), "acme/cli-dan", "--fp16-embeddings"]) == 0
    assert "acme/cli-dan/commit" in capsys.readouterr().out
    assert len(calls["create_commit"]) == 1


def test_push_dry_run_writes_the_folder_only(run_dir, fake_hub, tmp_path):
    calls, _ = fake_hub
    assert main(["push", str(run_dir / "student"), "acme/dry", "--dry-run", str(tmp_path / "dry")]) == 0
    assert sorted(p.name for p in (tmp_path / "dry").iterdir()) == EXPECTED_FILES
    assert calls["create_commit"] == [] and calls["create_repo"] == []


def test_fp16_table_and_sharding(run_dir, tmp_path, model):
    folder = save_for_hub(run_dir / "student", tmp_path / "half", "acme/half", fp16_embeddings=True)
    with safe_open(str(folder / "model.safetensors"), "pt") as f:
        assert f.get_tensor("dan.embeddings.weight").dtype == torch.float16
        assert f.get_tensor("classifier.layers.1.weight").dtype == torch.float32
    loaded = SparseDANForSequenceClassification.from_pretrained(folder)
    assert loaded.get_input_embeddings().weight.dtype == torch.float32
    torch.testing.assert_close(loaded.get_input_embeddings().weight, model.get_input_embeddings().weight.half().float())
    assert "float16" in (folder / "README.md").read_text()

    sharded = save_for_hub(run_dir / "student", tmp_path / "sharded", "acme/sharded", max_shard_size="200KB")
    shards = sorted(p.name for p in sharded.glob("model-*.safetensors"))
    assert len(shards) >= 2 and (sharded / "model.safetensors.index.json").exists()
    reloaded = SparseDANForSequenceClassification.from_pretrained(sharded)
    torch.testing.assert_close(reloaded.get_input_embeddings().weight, model.get_input_embeddings().weight)


def test_card_without_a_run(saved_student, tmp_path):
    folder = save_for_hub(saved_student, tmp_path / "bare", "acme/bare")
    assert not (folder / "speed_accuracy.png").exists()
    card = ModelCard.load(folder / "README.md")
    assert card.data.library_name == "transformers" and "base_model" not in card.data.to_dict()
    assert "lower-cased, words of 2+ word characters" in card.text


def test_uploaded_folder_serves_from_the_hub_cache(run_dir, fake_hub, tmp_path, model, tokenizer):
    _, uploaded = fake_hub
    push_student(run_dir / "student", "acme/served-dan")
    hf_home = tmp_path / "hf_home"
    place_in_hub_cache(uploaded, hf_home, "acme/served-dan")
    texts = ["the movie is good", "awful boring plot", "", "I love this film"]
    script = f"""
import json
from transformers import pipeline
classifier = pipeline("text-classification", model="acme/served-dan", trust_remote_code=True)
print(json.dumps(classifier({texts!r}, top_k=None)))
"""
    remote = json.loads(run_without_package(script, env={"HF_HOME": str(hf_home)}).strip().splitlines()[-1])
    from transformers import pipeline

    local = pipeline("text-classification", model=model, tokenizer=tokenizer)(texts, top_k=None)
    for got, expected in zip(remote, local):
        assert {r["label"]: pytest.approx(r["score"], abs=1e-6) for r in expected} == {
            r["label"]: r["score"] for r in got
        }


def test_card_of_a_calibrated_student(run_dir, tmp_path, tiny_teacher, capsys):
    """After `calibrate`, the uploaded folder carries calibration.json and its curve, and the card shows the
    temperature, the threshold and the strongest n-grams of each label."""
    rows = [{"text": t, "label": int("good" in t)} for t in random_texts(100, seed=3)]
    data = tmp_path / "cal.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert main(["calibrate", str(run_dir / "student"), "--dev", str(data), "--teacher", str(tiny_teacher)]) == 0
    folder = save_for_hub(run_dir / "student", tmp_path / "calibrated", "acme/calibrated")
    assert (folder / "calibration.json").exists() and (folder / "calibration.png").stat().st_size > 0
    text = ModelCard.load(folder / "README.md").text
    assert "## Calibrated scores and teacher fallback" in text and "T = " in text and "teacher alone" in text
    assert "## What the student looks at" in text and "| positive |" in text and "| negative |" in text


def test_card_of_a_compressed_student_states_its_size_and_accuracy(run_dir, tmp_path, capsys):
    """`compress` measures the compressed and the source student on the run's report split; the card of the
    compressed student states its size and both retentions, and keeps the run's teacher and data."""
    rows = [{"text": t, "label": int("good" in t)} for t in random_texts(40, seed=5)]
    dev = write_jsonl(tmp_path / "dev.jsonl", rows)
    (run_dir / "recipe.json").write_text(json.dumps({**RECIPE, "data": {"train": {"path": dev}, "dev": {"path": dev}}}))
    small = tmp_path / "small"
    assert main(["compress", str(run_dir / "student"), str(small), "--keep-ngrams", "100"]) == 0
    report = json.loads(capsys.readouterr().out)
    evaluation = report["evaluation"]
    labels = torch.tensor([r["label"] for r in rows])
    for key, folder in (("accuracy", small), ("student_accuracy", run_dir / "student")):
        model = SparseDANForSequenceClassification.from_pretrained(folder).eval()
        with torch.inference_mode():
            logits = model(**SparseDANTokenizer.from_pretrained(folder).encode_bags([r["text"] for r in rows])).logits
        assert evaluation[key] == pytest.approx((logits.argmax(-1) == labels).float().mean().item())
    assert (
        evaluation["split"] == "dev" and evaluation["num_examples"] == 40 and evaluation["teacher_accuracy"] == 0.8968
    )

    card = ModelCard.load(save_for_hub(small, tmp_path / "hub", "acme/sst2-dan-small") / "README.md")
    data = card.data.to_dict()
    assert data["base_model"] == "philschmid/roberta-large-sst2" and data["datasets"] == ["stanfordnlp/sst2"]
    metrics = {m["type"]: m["value"] for m in data["model-index"][0]["results"][0]["metrics"]}
    assert metrics == {"accuracy": round(evaluation["accuracy"], 4)}
    text = card.text
    assert "## Compression" in text and "100 of its" in text and f"{report['size_mb']:,.1f} MB** instead of" in text
    assert f"| this model (compressed) | {100 * evaluation['accuracy']:.2f} |" in text
    assert (
        "← the run's student" in text and "speed_accuracy.png" not in text and "faster** than the teacher" not in text
    )
    with pytest.raises(ValueError, match="int8 table already"):
        save_for_hub(small, tmp_path / "hub16", "acme/x", fp16_embeddings=True)
