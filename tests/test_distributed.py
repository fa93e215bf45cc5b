"""Real multi-process runs (gloo on CPU, started with `ACCELERATE_USE_CPU=1 accelerate launch --multi_gpu`, the one
combination that starts synchronised CPU processes) of the distillation steps, through `benchmarks/gpu_check.py`
(the script a GPU machine runs on NCCL): the vocabulary, the teacher's logits and the trained student of 2
processes equal those of 1 (the student trained on teacher logits and on gold labels of half the rows), and the
student is identical on both ranks."""

import json
import subprocess
import sys
from pathlib import Path

GPU_CHECK = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu_check.py"


def test_two_processes_match_one(tmp_path):
    # 1025 texts in batches of 64: the last batch of each epoch holds 1 text, so one process gets none of it
    command = [
        sys.executable, str(GPU_CHECK), "--processes", "2", "--out", str(tmp_path), "--texts", "1025",
        "--batch-size", "64", "--vocab-size", "5000", "--embed-dim", "16",
    ]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    report = json.loads((tmp_path / "gpu_check.json").read_text())
    assert report["alpha"] == 0.5  # KD and gold labels (on half the rows): both terms' weighting between processes
    assert report["ok"] and report["same_vocabulary"] and report["ranks_identical"]
    assert report["max_weight_diff"] < 1e-5 and report["max_logit_diff"] < 1e-4
    assert report["runs"]["many"]["processes"] == 2 and report["runs"]["many"]["train_examples_per_s_per_process"] > 0
    for run in ("one", "many"):
        assert (tmp_path / run / "stage" / "best" / "model.safetensors").exists()
