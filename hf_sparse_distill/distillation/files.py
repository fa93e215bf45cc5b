"""Files that a crash cannot leave half-written, and folders of work kept only for the inputs they were made from:
what the resumable steps (vocabulary counts, encoded ids, teacher logits) share."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

import numpy as np


def temporary_path(path: Path) -> Path:
    """Where this process writes `path` before moving it into place: hidden, beside it, named by the writer's pid
    (`remove_abandoned_files` reads it back)."""
    return path.with_name(f".{path.name}.{os.getpid()}.tmp")


@contextmanager
def atomic_file(path: Path, mode: str = "w") -> Iterator[IO]:
    """Open a temporary file beside `path` for writing (`mode` "w" or "wb") and move it to `path` once written:
    a file that exists is complete."""
    tmp = temporary_path(path)
    with open(tmp, mode, **({"encoding": "utf-8"} if "b" not in mode else {})) as f:
        yield f
    os.replace(tmp, path)


def remove_abandoned_files(folder: Path) -> None:
    """Delete the `temporary_path` files in `folder` whose writer, a process of this machine, is gone
    (killed mid-write); a live process's are kept. A writer on another machine sharing the folder would look gone:
    runs on several machines should not label into one cache folder at the same time."""
    for tmp in folder.glob(".*.tmp"):
        pid = tmp.name.removesuffix(".tmp").rpartition(".")[2]
        if pid.isdigit() and not _process_alive(int(pid)):
            tmp.unlink(missing_ok=True)


def _process_alive(pid: int) -> bool:
    if os.name == "nt":  # os.kill would end the process there: keep its files
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        return True
    return True


def json_digest(value: object) -> str:
    """A short hash (16 hex digits) of `value` as JSON with sorted keys: how cached work records its inputs."""
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()[:16]


def save_npy(path: Path, array: np.ndarray) -> None:
    """`np.save`, atomically (a file that exists is complete)."""
    with atomic_file(path, "wb") as f:
        np.save(f, array)


def read_json(path: Path) -> dict | None:
    """The JSON in `path`, or None if there is none or it cannot be read (e.g. cut short by a crash)."""
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def reset_folder(folder: Path, manifest_name: str, manifest: dict) -> None:
    """Empty `folder` unless its file `manifest_name` holds `manifest` (the work in it was made from the same
    inputs and settings); then record `manifest` there."""
    path = folder / manifest_name
    if read_json(path) == json.loads(json.dumps(manifest)):
        return
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    with atomic_file(path) as f:
        f.write(json.dumps(manifest, indent=2))
