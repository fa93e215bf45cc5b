"""What a careless or hostile user can do, each ending in a correct result or a clear error naming the field or file:
stale stages, non-finite training, planted pickles and damaged checkpoints, out-of-range recipe numbers, bad labels
and files, kill -9 and resume, half-precision sums."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import make_model, random_texts, write_jsonl
from safetensors.torch import load_file

from hf_sparse_distill import SparseDANTokenizer
from hf_sparse_distill.cli import main
from hf_sparse_distill.distillation import load_recipe
from hf_sparse_distill.distillation.encoding import encode_texts
from hf_sparse_distill.distillation.recipe import RecipeError, StageConfig
from hf_sparse_distill.distillation.train import EvalData, NonFiniteTrainingError, StageData, StageTrainer
from hf_sparse_distill.results import DistillationResults


def kd_dir(tiny_recipe: Path) -> Path:
    return tiny_recipe.parent / "run" / "kd"


# 1. stale stages
def test_a_stage_is_retrained_when_its_inputs_change(tiny_recipe, caplog):
    assert main(["distill", str(tiny_recipe), "--stages", "kd"]) == 0
    first = load_file(str(kd_dir(tiny_recipe) / "best" / "model.safetensors"))
    with caplog.at_level("WARNING"):  # nothing changed: reused
        assert main(["distill", str(tiny_recipe), "--stages", "kd"]) == 0
    assert "trained from other inputs" not in caplog.text

    data = Path(os.environ["TINY_DATA"])
    rows = [json.loads(line) for line in (data / "reviews.jsonl").read_text().splitlines()]
    write_jsonl(data / "reviews.jsonl", rows + [{"text": "an entirely new review about a good film"}])
    with caplog.at_level("WARNING"):
        assert main(["distill", str(tiny_recipe), "--stages", "kd"]) == 0
    assert (
        "stage kd" in caplog.text
        and "changed: " in caplog.text
        and "texts" in caplog.text
        and "tokenizer" in caplog.text
    )
    caplog.clear()

    with caplog.at_level("WARNING"):
        assert main(["distill", str(tiny_recipe), "--stages", "kd", "--set", "student.embed_dim=8"]) == 0
    assert "changed: student" in caplog.text
    student = tiny_recipe.parent / "run" / "student"
    assert json.loads((student / "config.json").read_text())["embed_dim"] == 8
    assert json.loads((tiny_recipe.parent / "run" / "recipe.json").read_text())["student"]["embed_dim"] == 8
    assert load_file(str(kd_dir(tiny_recipe) / "best" / "model.safetensors"))["dan.embeddings.weight"].shape[1] == 8
    assert first["dan.embeddings.weight"].shape[1] == 16


def test_finished_kd_logits_are_reused_until_the_corpus_changes(tiny_recipe, monkeypatch):
    """A run that finds `teacher_logits/kd.npy` finished for its corpus and teacher memory-maps it without hashing
    the corpus again; another corpus, or a file left without its record (a killed labelling), is labelled again."""
    from hf_sparse_distill.distillation import Distiller
    from hf_sparse_distill.distillation.teacher import Teacher

    first = np.array(Distiller(load_recipe(tiny_recipe)).teacher_logits("kd"))
    label, calls = Teacher.label, []

    def counted(self, texts, *args, **kwargs):
        calls.append(len(texts))
        return label(self, texts, *args, **kwargs)

    monkeypatch.setattr(Teacher, "label", counted)
    again = Distiller(load_recipe(tiny_recipe)).teacher_logits("kd")
    assert calls == [] and isinstance(again, np.memmap) and np.array_equal(again, first)

    marker = tiny_recipe.parent / "run" / "teacher_logits" / "kd.json"
    marker.unlink()  # as a run killed while labelling leaves it
    assert np.array_equal(Distiller(load_recipe(tiny_recipe)).teacher_logits("kd"), first) and calls == [len(first)]
    assert marker.exists()

    data = Path(os.environ["TINY_DATA"])
    rows = [json.loads(line) for line in (data / "reviews.jsonl").read_text().splitlines()]
    write_jsonl(data / "reviews.jsonl", rows + [{"text": "an entirely new review about a good film"}])
    grown = Distiller(load_recipe(tiny_recipe)).teacher_logits("kd")
    assert len(calls) == 2 and calls[-1] == len(grown) > len(first)


def test_table_regularisers_change_the_stage_fingerprint_only_when_set(tiny_recipe):
    """Settings added after 0.1 leave the fingerprint of a stage as it was while at their defaults (its finished
    stages stay valid) and change it when set."""
    from hf_sparse_distill.distillation import Distiller

    def settings(*overrides):
        distiller = Distiller(load_recipe(tiny_recipe, list(overrides)))
        distiller.tokenizer()  # the fingerprint names it
        return distiller.stage_fingerprint("kd")["settings"]

    plain = settings()
    assert settings("kd.embedding_weight_decay=0", "kd.embedding_max_norm=null") == plain
    assert settings("kd.embedding_max_norm=5") != plain and settings("kd.embedding_weight_decay=0.01") != plain


def test_fine_tuning_refuses_a_stale_kd_student(tiny_recipe):
    assert main(["train", str(tiny_recipe), "--stage", "kd"]) == 0
    with pytest.raises(RuntimeError, match="train the kd stage first"):
        main(["train", str(tiny_recipe), "--stage", "finetune", "--set", "kd.learning_rate=0.02"])


# 2. non-finite training
def tiny_stage_data(tokenizer, n=64, seed=0):
    texts = random_texts(n, seed=seed)
    encoded = encode_texts(tokenizer, texts, show_progress=False)
    logits = np.random.default_rng(seed).normal(size=(n, 2)).astype(np.float32)
    labels = logits.argmax(1)
    return encoded, logits, labels


def test_non_finite_loss_stops_training_and_saves_nothing(tokenizer, tmp_path):
    encoded, logits, labels = tiny_stage_data(tokenizer)
    logits[5] = np.nan
    trainer = StageTrainer(
        make_model(tokenizer), tokenizer, StageData(encoded, logits, labels), EvalData(encoded, labels, logits),
        StageConfig(epochs=2, batch_size=64, eval_steps=1), tmp_path / "stage",
    )  # fmt: skip
    with pytest.raises(NonFiniteTrainingError, match="stage: the training loss is nan at step 1"):
        trainer.train()
    assert not (tmp_path / "stage" / "best").exists() and not (tmp_path / "stage" / "trainer_state.json").exists()


def test_non_finite_weights_are_never_saved_as_best(tokenizer, tmp_path):
    encoded, logits, labels = tiny_stage_data(tokenizer)
    model = make_model(tokenizer)
    with torch.no_grad():
        model.classifier.layers[-1].bias[0] = float("inf")  # logits inf - inf: the first loss is nan
    trainer = StageTrainer(
        model, tokenizer, StageData(encoded, logits, labels), EvalData(encoded, labels, logits),
        StageConfig(epochs=1, batch_size=64), tmp_path / "stage",
    )  # fmt: skip
    with pytest.raises(NonFiniteTrainingError):
        trainer.train()
    assert not (tmp_path / "stage" / "best").exists()


# 3. pickles and damaged checkpoints
def test_planted_pickles_are_never_run_and_damaged_checkpoints_are_skipped(tiny_recipe, tmp_path, caplog):
    keep = ["--set", "kd.save_steps=4", "--set", "kd.keep_checkpoints=true"]
    assert main(["train", str(tiny_recipe), "--stage", "kd", *keep]) == 0
    stage = kd_dir(tiny_recipe)
    reference = json.loads((stage / "trainer_state.json").read_text())
    (stage / "trainer_state.json").unlink()
    newest, older = sorted((stage / "checkpoints").iterdir(), key=lambda p: int(p.name.split("_")[1]))[::-1][:2]
    marker = tmp_path / "pwned"

    class Exploit:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    import pickle

    for name in ("custom_checkpoint_0.pkl", "random_states_0.pkl"):  # one planted, one replaced
        (newest / name).write_bytes(pickle.dumps(Exploit()))
    weights = bytearray((older / "model.safetensors").read_bytes())
    weights[-5] ^= 0xFF
    (older / "model.safetensors").write_bytes(bytes(weights))
    with caplog.at_level("WARNING"):
        assert main(["train", str(tiny_recipe), "--stage", "kd", *keep]) == 0
    assert not marker.exists(), "a planted pickle was executed"
    assert f"{newest / 'custom_checkpoint_0.pkl'} was not written by the run" in caplog.text
    assert f"{older / 'model.safetensors'} is damaged" in caplog.text
    assert "training it from the start" in caplog.text
    assert json.loads((stage / "trainer_state.json").read_text())["history"] == reference["history"]


def test_no_untrusted_pickle_loading_in_the_package():
    package = Path(__file__).resolve().parents[1] / "hf_sparse_distill"
    for path in package.rglob("*.py"):
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if "pickle" in line or "torch.load" in line:
                assert "weights_only=True" in line, f"{path}:{number}: {line.strip()}"


# 4. recipe numbers and data
@pytest.mark.parametrize(
    "override, message",
    [
        ("kd.batch_size=-5", "kd.batch_size must be >= 1, got -5"),
        ("kd.batch_size=0", "kd.batch_size must be >= 1, got 0"),
        ("kd.epochs=0", "kd.epochs must be > 0"),
        ("kd.epochs=-1", "kd.epochs must be > 0"),
        ("kd.max_steps=0", "kd.max_steps must be None or >= 1"),
        ("kd.temperature=0", "kd.temperature must be > 0"),
        ("kd.alpha=2", "kd.alpha must be in \\[0, 1\\]"),
        ("vocab.size=0", "vocab.size must be >= 1"),
        ("vocab.ngram_range=[3, 1]", "vocab.ngram_range must be \\[min_n, max_n\\]"),
        ("vocab.token_pattern='\\s*'", "vocab.token_pattern must be a regular expression"),
        ("student.embed_dim=0", "student: embed_dim must be >= 1"),
        ("student.pooling=median", "student: pooling must be one of"),
        ("student.pair_overlap=true", "student: pair_overlap .* needs pair_mode"),  # tiny_recipe has single texts
        (
            "augment.words_from=[{path: x.jsonl}]",
            "augment.words_from widens word replacement: it needs augment.enabled and augment.replace_prob",
        ),
        ("data.train.max_rows=-1", "data.train.max_rows must be None or >= 1"),
        ("data.train.match=a(", "data.train.match must be None or a regular expression"),
        ("teacher.chunk_size=-1", "teacher.chunk_size must be >= 1"),
        ("teacher.dtype=int4", "teacher.dtype must be one of"),
        ("finetune.warmup_ratio=1.5", "finetune.warmup_ratio must be in \\[0, 1\\)"),
        ("kd.embedding_max_norm=0", "kd.embedding_max_norm must be None or > 0"),
        ("kd.embedding_weight_decay=-0.1", "kd.embedding_weight_decay must be >= 0"),
        ("kd.average_last_evaluations=1", "kd.average_last_evaluations must be 0 \\(off\\) or >= 2"),
    ],
)
def test_out_of_range_numbers_are_refused_at_load(tiny_recipe, override, message):
    with pytest.raises(RecipeError, match=message):
        load_recipe(tiny_recipe, [override])


def test_a_word_corpus_of_sentence_pairs_is_refused(tiny_recipe):
    overrides = ["augment.replace_prob=0.2", "augment.words_from=[{path: x.jsonl, text_pair_column: b}]"]
    with pytest.raises(RecipeError, match="augment.words_from reads single texts"):
        load_recipe(tiny_recipe, overrides)


def test_environment_variables_fill_numeric_fields(tiny_recipe, monkeypatch):
    monkeypatch.setenv("BS", "48")
    recipe = load_recipe(tiny_recipe, ["kd.batch_size=${BS:-32}", "finetune.enabled=${FT:-false}"])
    assert recipe.kd.batch_size == 48 and recipe.finetune.enabled is False


def test_bad_labels_and_files_name_the_split(tiny_recipe, tmp_path, caplog):
    data = Path(os.environ["TINY_DATA"])
    write_jsonl(data / "bad.jsonl", [{"text": "fine", "label": 1}, {"text": "odd", "label": -3}])
    with pytest.raises(ValueError, match=r"the train split has label -3; class ids must be in \[0, 2\)"):
        main(["vocab", str(tiny_recipe), "--set", f"data.train.path={data / 'bad.jsonl'}"])
    (data / "empty.jsonl").write_text("")
    with pytest.raises(ValueError, match="empty.jsonl is empty"):
        main(["vocab", str(tiny_recipe), "--set", f"data.dev.path={data / 'empty.jsonl'}"])
    with caplog.at_level("WARNING"):
        main(["vocab", str(tiny_recipe), "--set", f"data.dev.path={data / 'train.jsonl'}"])
    assert "dev texts are also train texts" in caplog.text
    student = tmp_path / "student"
    tokenizer = SparseDANTokenizer.from_ngrams(["fine", "odd"])
    make_model(tokenizer).save_pretrained(student)
    tokenizer.save_pretrained(student)
    with pytest.raises(ValueError, match="label -3"):
        main(["evaluate", str(student), "--data", str(data / "bad.jsonl")])


# 6. kill -9 and resume
TRAIN = [sys.executable, "-m", "hf_sparse_distill.cli", "train"]


def run_until(command: list[str], ready, timeout: float = 300) -> None:
    """Start `command`, kill -9 it once `ready()` is true."""
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + timeout
    while time.time() < deadline and process.poll() is None and not ready():
        time.sleep(0.01)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()


@pytest.mark.parametrize("kill_after", [2, 5, 9])
def test_killed_training_resumes_bit_identical(tiny_recipe, tmp_path, kill_after):
    """Dropout on (feature and classifier), checkpoints every 2 steps; killed once `kill_after` checkpoints exist."""
    settings = ["--set", "kd.save_steps=2", "--set", "kd.save_total_limit=20", "--set", "student.feature_dropout=0.2"]
    assert main(["label", str(tiny_recipe), *settings]) == 0
    reference = tmp_path / "reference"
    assert main(["train", str(tiny_recipe), *settings, "--set", f"output_dir={reference}"]) == 0
    stage = kd_dir(tiny_recipe)
    run_until([*TRAIN, str(tiny_recipe), *settings], lambda: len(list(stage.glob("checkpoints/step_*"))) >= kill_after)
    assert not (stage / "trainer_state.json").exists(), "killed too late"
    assert main(["train", str(tiny_recipe), *settings]) == 0
    expected = load_file(str(reference / "kd" / "best" / "model.safetensors"))
    got = load_file(str(stage / "best" / "model.safetensors"))
    for name in expected:
        assert torch.equal(got[name], expected[name]), name
    assert json.loads((stage / "trainer_state.json").read_text()) == json.loads(
        (reference / "kd" / "trainer_state.json").read_text()
    )


@pytest.mark.parametrize("kill_after", [3, 12, 30])
def test_killed_labelling_resumes_bit_identical(tiny_teacher, tmp_path, kill_after):
    texts = random_texts(1200, seed=21)
    (tmp_path / "texts.json").write_text(json.dumps(texts))
    script = (
        "import json, sys\n"
        "from hf_sparse_distill.distillation.recipe import TeacherConfig\n"
        "from hf_sparse_distill.distillation.teacher import Teacher\n"
        "texts = json.load(open(sys.argv[1]))\n"
        "logits = Teacher(TeacherConfig(model=sys.argv[2], batch_size=16, chunk_size=20)).label(texts, sys.argv[3])\n"
        "import numpy; numpy.save(sys.argv[4], logits)\n"
    )
    command = [sys.executable, "-c", script, str(tmp_path / "texts.json"), str(tiny_teacher)]
    cache = tmp_path / "cache"
    run_until(
        [*command, str(cache), str(tmp_path / "x.npy")], lambda: len(list(cache.glob("*/*/shard-*"))) >= kill_after
    )
    subprocess.run([*command, str(cache), str(tmp_path / "resumed.npy")], check=True, capture_output=True)
    subprocess.run([*command, str(tmp_path / "fresh"), str(tmp_path / "fresh.npy")], check=True, capture_output=True)
    np.testing.assert_array_equal(np.load(tmp_path / "resumed.npy"), np.load(tmp_path / "fresh.npy"))


def test_concurrent_labelling_runs_share_the_work(tiny_teacher, tmp_path):
    texts = random_texts(1200, seed=22)
    (tmp_path / "texts.json").write_text(json.dumps(texts))
    script = (
        "import json, sys\n"
        "from hf_sparse_distill.distillation.recipe import TeacherConfig\n"
        "from hf_sparse_distill.distillation.teacher import Teacher\n"
        "texts = json.load(open(sys.argv[1]))\n"
        "Teacher(TeacherConfig(model=sys.argv[2], batch_size=16, chunk_size=20)).label(texts, sys.argv[3])\n"
    )
    command = [sys.executable, "-c", script, str(tmp_path / "texts.json"), str(tiny_teacher), str(tmp_path / "cache")]
    runs = [subprocess.Popen(command, stderr=subprocess.DEVNULL) for _ in range(2)]
    assert [run.wait(timeout=600) for run in runs] == [0, 0]
    rows = sum(len(load_file(str(p))["keys"]) for p in (tmp_path / "cache").glob("*/*/shard-*.safetensors"))
    assert rows == len(set(texts))  # every text labelled once, by one of the two runs


# 7. half precision
def test_half_precision_sums_the_bag_in_float32(tokenizer, tmp_path):
    model = make_model(tokenizer, embedding_init_std=30.0)
    model.save_pretrained(tmp_path / "m")
    huge = " ".join(["great great boring plot"] * 100_000)  # 2.4 MB of text, 1.6 million n-grams, untruncated
    batch = tokenizer.encode_bags([huge, "the movie is good"], truncation=False)
    with torch.inference_mode():
        reference = model(**batch).logits
        for dtype in (torch.float16, torch.bfloat16):
            half = type(model).from_pretrained(tmp_path / "m", dtype=dtype).eval()
            logits = half(**batch).logits
            assert torch.isfinite(logits).all(), dtype
            assert torch.equal(logits.argmax(-1), reference.argmax(-1))
            torch.testing.assert_close(logits.float(), reference, atol=0.2, rtol=0.05)


def test_results_record_where_choices_were_made(tiny_recipe):
    assert main(["distill", str(tiny_recipe), "--stages", "kd"]) == 0
    results = DistillationResults.load(tiny_recipe.parent / "run" / "results.json")
    assert results.report_split == "dev" and "selection split" in results.selection_split
