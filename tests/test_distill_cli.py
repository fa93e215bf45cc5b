"""End to end through the CLI on tiny data: distill (vocab, teacher labels, KD, fine-tuning, scratch baseline),
then the saved student loads through remote code in a process without the package and predicts the same;
a 2-process `accelerate launch` of the same recipe trains and evaluates too."""

import json
import os
import subprocess

import pytest
from conftest import run_without_package, two_cpu_processes

from hf_sparse_distill.cli import main
from hf_sparse_distill.results import DistillationResults


def test_distill_end_to_end_and_remote_code(tiny_recipe, tmp_path, capsys):
    assert main(["distill", str(tiny_recipe)]) == 0
    printed = capsys.readouterr().out
    assert (
        "| teacher (torch.float32) |" in printed
        and "DAN (KD)" in printed
        and "DAN (KD+FT)" in printed
        and "from scratch" in printed
    )
    run = tmp_path / "run"
    results = DistillationResults.load(run / "results.json")
    assert results.data.unlabeled_removed_eval_overlap >= 1
    assert results.data.augmented_generated > 0
    for stage in ("kd", "finetune", "scratch"):
        assert 0.0 <= results.stages[stage].accuracy <= 1.0 and (run / stage / "best" / "model.safetensors").exists()
        assert not (run / stage / "checkpoints").exists()  # a finished stage drops its (large) checkpoints
    assert results.student_stage in ("kd", "finetune") and results.student_dir == str(run / "student")
    # choices on the selection split (15 train texts held out), the table on untouched dev
    assert results.report_split == "dev" and "15 texts drawn from the train split" in results.selection_split
    assert results.data.selection == 15 and results.data.train_removed_for_selection >= 15  # with duplicates
    kept = max(("kd", "finetune"), key=lambda s: results.selection[s].accuracy)
    assert results.student_stage == kept and set(results.selection) == {"teacher", "kd", "finetune", "scratch"}
    assert results.teacher.metrics.num_examples == 60 and results.selection["teacher"].num_examples == 15
    assert set(results.timings_s) >= {"data", "vocab", "label_kd", "train_kd", "total"}
    student = run / "student"
    assert {"config.json", "model.safetensors", "ngram_vocab.json", "modeling_sparse_dan.py"} <= {
        p.name for p in student.iterdir()
    }

    # a second run reuses everything (no teacher call, no training)
    assert main(["distill", str(tiny_recipe)]) == 0
    assert DistillationResults.load(run / "results.json").student == results.student
    assert "teacher labelling" not in capsys.readouterr().err

    # the saved student, without the package, predicts what the package predicts
    from transformers import pipeline

    texts = ["the movie is good", "awful boring plot", "", "great great great"]
    local = pipeline("text-classification", model=str(student))(texts)
    script = f"""
import json
from transformers import pipeline
print(json.dumps(pipeline("text-classification", model={str(student)!r}, trust_remote_code=True)({texts!r})))
"""
    remote = json.loads(run_without_package(script, env={"HF_HOME": str(tmp_path / "hf")}).strip().splitlines()[-1])
    assert [r["label"] for r in remote] == [r["label"] for r in local]
    assert [r["score"] for r in remote] == pytest.approx([r["score"] for r in local], abs=1e-6)

    # evaluate command on the dev file
    assert main(["evaluate", str(student), "--data", os.environ["TINY_DATA"] + "/dev.jsonl"]) == 0
    metrics = json.loads(capsys.readouterr().out)
    assert metrics["accuracy"] == pytest.approx(results.student.accuracy)


def test_step_commands_and_resume(tiny_recipe, tmp_path, capsys, caplog):
    assert main(["vocab", str(tiny_recipe)]) == 0
    report = json.loads(capsys.readouterr().out)
    assert 0 < report["vocab_size"] <= 3001
    assert main(["label", str(tiny_recipe)]) == 0
    labelled = json.loads(capsys.readouterr().out)
    assert labelled["kd_rows"] == report["kd_total"]
    keep = ["--set", "kd.save_steps=3", "--set", "kd.keep_checkpoints=true"]
    assert main(["train", str(tiny_recipe), "--stage", "kd", *keep]) == 0
    kd_dir = tmp_path / "run" / "kd"
    checkpoints = sorted(p.name for p in (kd_dir / "checkpoints").iterdir())
    assert checkpoints and len(checkpoints) <= 2  # save_total_limit
    # an interrupted stage resumes: drop the finished marker, keep checkpoints, train again; a checkpoint that
    # was being written when the run died (step_<n>.tmp) is ignored
    state = json.loads((kd_dir / "trainer_state.json").read_text())
    (kd_dir / "trainer_state.json").unlink()
    (kd_dir / "checkpoints" / "step_999999.tmp").mkdir()
    caplog.clear()
    with caplog.at_level("INFO", logger="hf_sparse_distill"):
        assert main(["train", str(tiny_recipe), "--stage", "kd", *keep]) == 0
    assert f"resumed kd from {kd_dir / 'checkpoints' / checkpoints[-1]}" in caplog.text
    resumed = json.loads((kd_dir / "trainer_state.json").read_text())
    assert resumed["total_steps"] == state["total_steps"]
    # resuming from the last checkpoint (data order, RNG, optimizer restored) replays the same evaluations
    assert resumed["history"] == state["history"]


def test_two_process_distill(tiny_recipe, tmp_path):
    command, env = two_cpu_processes(
        "-m", "hf_sparse_distill.cli", "distill", str(tiny_recipe),
        "--set", "finetune.enabled=false", "--set", "scratch.enabled=false",
    )  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=900)
    results_file = tmp_path / "run" / "results.json"
    assert results_file.exists(), result.stderr[-4000:]
    results = DistillationResults.load(results_file)
    assert results.stages["kd"].accuracy > 0 and (tmp_path / "run" / "student" / "model.safetensors").exists()


def test_python_entry_point_is_the_cli_run(tiny_recipe, tmp_path, capsys):
    """`hf_sparse_distill.distill(...)` with the recipe's settings as arguments gives the CLI's results."""
    from hf_sparse_distill import distill

    assert main(["distill", str(tiny_recipe), "--stages", "kd", "--set", "augment.enabled=false"]) == 0
    cli = DistillationResults.load(tmp_path / "run" / "results.json")
    data = os.environ["TINY_DATA"]
    results = distill(
        teacher={"model": os.environ["TINY_TEACHER"], "batch_size": 16, "chunk_size": 64},
        train=f"{data}/train.jsonl",
        dev=f"{data}/dev.jsonl",
        unlabeled=[
            f"{data}/reviews.jsonl",
            {"path": f"{data}/reviews.jsonl", "label_column": None, "split_sentences": True},
        ],
        output_dir=str(tmp_path / "python"),
        task="tiny-sentiment",
        stages=["kd"],
        speed_seconds=0.2,
        vocab={"size": 3000, "num_workers": 1},
        student={"embed_dim": 16, "hidden_dims": [16]},
        kd={"epochs": 2, "batch_size": 32, "learning_rate": 1e-2, "embedding_learning_rate": 5e-2, "eval_steps": 5},
    )
    assert isinstance(results, DistillationResults) and results.student_dir == str(tmp_path / "python" / "student")
    assert (tmp_path / "python" / "student" / "model.safetensors").exists()
    assert results.stages == cli.stages and results.data == cli.data and results.teacher.metrics == cli.teacher.metrics
