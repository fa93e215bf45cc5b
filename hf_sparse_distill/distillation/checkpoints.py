"""The files of a training stage: resumable checkpoints (`checkpoints/step_<n>`) and the kept student (`best/`).

Both are written under a temporary name and renamed when complete, so a run killed while saving never leaves a
half-written checkpoint or student where a later run would use it. Each checkpoint carries a manifest (the SHA-256
of every file in it); a checkpoint whose files do not match it (damaged, truncated, or with files that were not
written by the run) is never loaded.
"""

from __future__ import annotations

import hashlib
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
MANIFEST = "manifest.json"


def checkpoint_step(checkpoint: Path) -> int:
    """The training step a checkpoint folder (`step_<n>`) was saved at."""
    return int(checkpoint.name.split("_")[1])


def checkpoints(stage_dir: Path) -> list[Path]:
    """Complete checkpoints (`step_<n>`, oldest first); unfinished ones (`step_<n>.tmp`) are ignored."""
    found = [p for p in (stage_dir / CHECKPOINTS).glob("step_*") if re.fullmatch(r"step_\d+", p.name)]
    return sorted(found, key=checkpoint_step)


def prune_checkpoints(stage_dir: Path, keep: int) -> None:
    """Delete all but the `keep` newest checkpoints."""
    for path in checkpoints(stage_dir)[:-keep]:
        shutil.rmtree(path, ignore_errors=True)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()


def _files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.name != MANIFEST)


def write_manifest(folder: Path) -> None:
    """Record the SHA-256 of every file of `folder` in `folder/manifest.json`."""
    manifest = {str(p.relative_to(folder)): _sha256(p) for p in _files(folder)}
    (folder / MANIFEST).write_text(json.dumps(manifest, indent=2))


def checkpoint_problem(folder: Path) -> str | None:
    """Why the checkpoint in `folder` must not be loaded (no manifest, a file missing, changed or not listed), or
    `None` if every file is the one the run wrote."""
    manifest_path = folder / MANIFEST
    if not manifest_path.exists():
        return f"{manifest_path} is missing"
    manifest = json.loads(manifest_path.read_text())
    present = {str(p.relative_to(folder)): p for p in _files(folder)}
    for name in sorted(set(present) - set(manifest)):
        return f"{present[name]} was not written by the run"
    for name, digest in manifest.items():
        if name not in present:
            return f"{folder / name} is missing"
        if _sha256(present[name]) != digest:
            return f"{present[name]} is damaged (SHA-256 differs from the manifest)"
    return None


@contextmanager
def publish_checkpoint(stage_dir: Path, step: int, accelerator: Accelerator) -> Iterator[Path]:
    """Yield a temporary folder (`step_<n>.tmp`) for every process to write the checkpoint of `step` into; once
    all processes are done, its manifest is written and it is renamed to `step_<n>`."""
    target = stage_dir / CHECKPOINTS / f"step_{step}"
    partial = target.with_name(target.name + ".tmp")
    yield partial
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        write_manifest(partial)
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
