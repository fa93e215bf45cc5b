"""The files of a training stage: resumable checkpoints (`checkpoints/step_<n>`) and the kept student (`best/`).

Both are written under a temporary name and renamed when complete, so a run killed while saving never leaves a
half-written checkpoint or student where a later run would use it.
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path

from accelerate import Accelerator

from ..models.sparse_dan.modeling_sparse_dan import SparseDANForSequenceClassification
from ..models.sparse_dan.tokenization_sparse_dan import SparseDANTokenizer
from ..results import Metrics

CHECKPOINTS = "checkpoints"
BEST = "best"
EVAL_RESULTS = "eval_results.json"


def checkpoint_step(checkpoint: Path) -> int:
    """The training step a checkpoint folder (`step_<n>`) was saved at."""
    return int(checkpoint.name.split("_")[1])


def checkpoints(stage_dir: Path) -> list[Path]:
    """Complete checkpoints (`step_<n>`, oldest first); unfinished ones (`step_<n>.tmp`) are ignored."""
    found = [p for p in (stage_dir / CHECKPOINTS).glob("step_*") if re.fullmatch(r"step_\d+", p.name)]
    return sorted(found, key=checkpoint_step)


def latest_checkpoint(stage_dir: Path) -> Path | None:
    """The checkpoint with the highest step under `stage_dir/checkpoints`, if any."""
    found = checkpoints(stage_dir)
    return found[-1] if found else None


def prune_checkpoints(stage_dir: Path, keep: int) -> None:
    """Delete all but the `keep` newest checkpoints."""
    for path in checkpoints(stage_dir)[:-keep]:
        shutil.rmtree(path, ignore_errors=True)


@contextmanager
def publish_checkpoint(stage_dir: Path, step: int, accelerator: Accelerator) -> Iterator[Path]:
    """Yield a temporary folder (`step_<n>.tmp`) for every process to write the checkpoint of `step` into; once
    all processes are done, it is renamed to `step_<n>`."""
    target = stage_dir / CHECKPOINTS / f"step_{step}"
    partial = target.with_name(target.name + ".tmp")
    yield partial
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        shutil.rmtree(target, ignore_errors=True)
        partial.rename(target)
    accelerator.wait_for_everyone()


def save_best(
    model: SparseDANForSequenceClassification, tokenizer: SparseDANTokenizer, stage_dir: Path, metrics: Metrics
) -> None:
    """Write the student atomically to `stage_dir/best` (model, tokenizer, code, metrics)."""
    tmp = stage_dir / f"{BEST}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    (tmp / EVAL_RESULTS).write_text(json.dumps(asdict(metrics), indent=2))
    shutil.rmtree(stage_dir / BEST, ignore_errors=True)
    tmp.rename(stage_dir / BEST)
