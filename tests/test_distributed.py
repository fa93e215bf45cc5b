"""A real 2-process run (gloo on CPU, started with `ACCELERATE_USE_CPU=1 accelerate launch --multi_gpu`, the one
combination that starts synchronised CPU processes) ends with identical weights on both ranks, equal to a
1-process run on the same global batches."""

import os
import subprocess
import sys
from pathlib import Path

import torch
from conftest import two_cpu_processes
from safetensors.torch import load_file

WORKER = Path(__file__).parent / "distributed_worker.py"


def test_two_processes_match_one(tmp_path):
    env = {**os.environ, "ACCELERATE_USE_CPU": "1", "OMP_NUM_THREADS": "1"}
    single = subprocess.run(
        [sys.executable, str(WORKER), str(tmp_path / "one")], capture_output=True, text=True, env=env, timeout=600
    )
    assert single.returncode == 0, single.stderr[-3000:]
    launch, env = two_cpu_processes(str(WORKER), str(tmp_path / "two"))
    double = subprocess.run(launch, capture_output=True, text=True, env=env, timeout=600)
    rank0_file, rank1_file = tmp_path / "two" / "rank0_of2.safetensors", tmp_path / "two" / "rank1_of2.safetensors"
    # gloo may abort at interpreter exit after all work is written: judge by the outputs, not the exit code
    assert rank0_file.exists() and rank1_file.exists(), double.stderr[-3000:]
    reference = load_file(str(tmp_path / "one" / "rank0_of1.safetensors"))
    rank0, rank1 = load_file(str(rank0_file)), load_file(str(rank1_file))
    assert set(rank0) == set(reference)
    for name in reference:
        assert torch.equal(rank0[name], rank1[name]), f"{name} differs between ranks"
        torch.testing.assert_close(rank0[name], reference[name], atol=1e-6, rtol=1e-5, msg=name)
    assert (tmp_path / "two" / "stage" / "best" / "model.safetensors").exists()
    assert float((tmp_path / "two" / "best_accuracy.txt").read_text()) > 0
