"""Accuracy against download size of compressed students (`hf-sparse-distill compress`), with model2vec beside them.

    python benchmarks/compression.py --student runs/sst2_shared_full/student      # about 10 minutes on 2 cores
    python benchmarks/compression.py --student DIR --smoke --out /tmp/comp          # seconds

Each point keeps the K most important n-grams (by frequency on the distillation corpus, or by row norm) with the
table in float32, float16 or int8, and is measured on the selection split (where the ranking and the smallest
student are chosen) and on SST-2 dev (reported only). The smallest student keeping >= 99 % of the full student's
selection accuracy is marked. model2vec's figures come from `runs/peer_m2v/results.json`
(`benchmarks/model2vec_peer.py`) when it exists. Writes `COMPRESSION.md`, `compression.json`, `compression.png`.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import shutil
from pathlib import Path

import numpy as np
import torch

from hf_sparse_distill import SparseDANForSequenceClassification, SparseDANTokenizer
from hf_sparse_distill.compression import compress, folder_mb
from hf_sparse_distill.speed import machine_description

HERE = Path(__file__).resolve().parent
KEEP = [1_000_000, 500_000, 200_000, 100_000, 50_000, 20_000, 10_000, 5_000]


def labeled(path: Path) -> tuple[list[str], np.ndarray]:
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    return [r["text"] for r in rows], np.asarray([r["label"] for r in rows])


def accuracy(folder: Path, texts: list[str], labels: np.ndarray) -> float:
    model = SparseDANForSequenceClassification.from_pretrained(folder).eval()
    tokenizer = SparseDANTokenizer.from_pretrained(folder)
    with torch.inference_mode():
        logits = model(**tokenizer.encode_bags(texts)).logits
    return float((logits.argmax(-1).numpy() == labels).mean())


def selection_split(run_dir: Path) -> tuple[list[str], np.ndarray]:
    """The run's selection split, rebuilt from its `recipe.json` (its texts are not stored with the student)."""
    from hf_sparse_distill.distillation import recipe_from_dict
    from hf_sparse_distill.distillation.data import dedup_key, load_source, select_split

    recipe = recipe_from_dict(json.loads((run_dir / "recipe.json").read_text()))
    label2id = json.loads((run_dir / "student" / "config.json").read_text())["label2id"]
    train = load_source(recipe.data.train, label2id)
    selection = select_split(recipe.data, train, dedup_key(recipe.vocab), label2id).texts
    return selection.texts, np.asarray(selection.labels)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--student", required=True, help="student folder of a distillation run (results beside it)")
    parser.add_argument("--select", help="labeled JSONL for the choices (default: the run's selection split)")
    parser.add_argument("--out", default=str(HERE))
    parser.add_argument("--work", default="runs/compression")
    parser.add_argument("--smoke", action="store_true")
    args = parser.parse_args()
    shared = Path(os.environ.get("HFSD_SHARED", HERE.parents[1] / "shared"))
    student = Path(args.student)
    dev_texts, dev_labels = labeled(shared / "data" / "sst2" / "dev.jsonl")
    select_texts, select_labels = labeled(Path(args.select)) if args.select else selection_split(student.parent)
    vocab = SparseDANTokenizer.from_pretrained(student).vocab_size - 1
    keep = [k for k in KEEP if k < vocab] or [vocab // 2]
    plan = [(vocab, dtype, "frequency") for dtype in ("float32", "float16", "int8")]
    plan += [(k, "int8", rank) for k in keep for rank in ("frequency", "norm")]
    if args.smoke:
        plan = [(vocab, "int8", "frequency"), (keep[-1], "int8", "norm")]
    work = Path(args.work)
    points = [{"kept_ngrams": vocab, "dtype": "float32", "rank_by": "none (the student)", "size_mb": folder_mb(student),
               "select_accuracy": accuracy(student, select_texts, select_labels),
               "dev_accuracy": accuracy(student, dev_texts, dev_labels)}]  # fmt: skip
    for k, dtype, rank in plan:
        folder = work / f"{k}-{dtype}-{rank}"
        shutil.rmtree(folder, ignore_errors=True)
        report = compress(student, folder, keep_ngrams=k, dtype=dtype, rank_by=rank)
        points.append({"kept_ngrams": report.kept_ngrams, "dtype": dtype, "rank_by": rank, "size_mb": report.size_mb,
                       "select_accuracy": accuracy(folder, select_texts, select_labels),
                       "dev_accuracy": accuracy(folder, dev_texts, dev_labels)})  # fmt: skip
        print(json.dumps(points[-1]), flush=True)
    full = points[0]["select_accuracy"]
    good = [p for p in points[1:] if p["select_accuracy"] >= 0.99 * full]
    smallest = min(good, key=lambda p: p["size_mb"]) if good else None
    peer_file = Path("runs/peer_m2v/results.json")
    peer = json.loads(peer_file.read_text()) if peer_file.exists() else None
    report = {"machine": machine_description(), "date": datetime.date.today().isoformat(), "student": str(student),
              "points": points, "smallest_99": smallest, "model2vec": peer}  # fmt: skip
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "compression.json").write_text(json.dumps(report, indent=2))
    (out / "COMPRESSION.md").write_text(markdown(report))
    plot(report, out / "compression.png")
    print(markdown(report))


def markdown(report: dict) -> str:
    lines = [
        "# Compressed students: accuracy against size (SST-2)",
        "",
        f"Generated {report['date']} by `python benchmarks/compression.py --student {report['student']}` on: "
        f"{report['machine']}. Selection = the run's selection split (choices); dev = SST-2 dev (reported only).",
        "",
        "| n-grams kept | table | ranked by | MB | selection accuracy | dev accuracy |",
        "|---|---|---|---|---|---|",
    ]
    for p in sorted(report["points"], key=lambda p: -p["size_mb"]):
        mark = " ← smallest ≥ 99 % of the student (selection)" if p == report["smallest_99"] else ""
        lines.append(
            f"| {p['kept_ngrams']:,} | {p['dtype']} | {p['rank_by']} | {p['size_mb']:,.1f} | "
            f"{100 * p['select_accuracy']:.2f} | {100 * p['dev_accuracy']:.2f}{mark} |"
        )
    peer = report.get("model2vec")
    if peer:
        lines += ["", f"model2vec {peer['model2vec_version']} (`benchmarks/model2vec_peer.py`: distilled from the same "
                  f"teacher, classifier trained on the teacher's labels of the same {peer['train_rows']:,} texts): "
                  f"dev {100 * peer['accuracy_dev']:.2f} at {peer['disk_mb']:.1f} MB (float32), "
                  f"{100 * peer['int8']['accuracy_dev']:.2f} at {peer['int8']['disk_mb']:.1f} MB (int8)."]  # fmt: skip
    return "\n".join(lines) + "\n"


def plot(report: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4), dpi=120)
    for rank, marker in (("frequency", "o-"), ("norm", "s--")):
        pts = sorted(
            (p for p in report["points"] if p["rank_by"] == rank and p["dtype"] == "int8"), key=lambda p: p["size_mb"]
        )
        ax.plot(
            [p["size_mb"] for p in pts],
            [100 * p["dev_accuracy"] for p in pts],
            marker,
            label=f"student, int8, by {rank}",
        )
    full = report["points"][0]
    ax.scatter([full["size_mb"]], [100 * full["dev_accuracy"]], color="black", zorder=3, label="student, float32")
    peer = report.get("model2vec")
    if peer:
        ax.scatter([peer["disk_mb"], peer["int8"]["disk_mb"]], [100 * peer["accuracy_dev"], 100 * peer["int8"]["accuracy_dev"]],
                   marker="^", color="red", zorder=3, label="model2vec (float32, int8)")  # fmt: skip
    ax.set_xscale("log")
    ax.set_xlabel("download size (MB, log scale)")
    ax.set_ylabel("SST-2 dev accuracy (%)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


if __name__ == "__main__":
    main()
