"""Peer: a model2vec static model distilled from the teacher's encoder, trained on the teacher's hard labels.

    HF_HUB_OFFLINE=1 /tmp/m2v/bin/python benchmarks/model2vec_peer.py                      # all 710k KD rows
    HF_HUB_OFFLINE=1 /tmp/m2v/bin/python benchmarks/model2vec_peer.py --train-rows 20000 --out /tmp/p   # smoke

Runs in its own venv, not the project's: model2vec's `distill` extra pins transformers<5.4. Create it with

    python3 -m venv /tmp/m2v
    /tmp/m2v/bin/pip install torch==2.13.0     # this pin takes the local CPU wheel, not the CUDA build
    /tmp/m2v/bin/pip install "model2vec[distill,train,quantization]==0.10.0"

(`model2vec.distill` imports scikit-learn, which only the `quantization` extra brings.) Its training data is the
student's, exported first with `python benchmarks/export_kd_labels.py sst2_shared --out runs/peer_data`.

Steps: `model2vec.distill.distill` on the teacher folder (its BERT encoder; the classifier head is ignored; PCA to
`--dims`, model2vec's defaults otherwise), then `StaticModelForClassification.fit` on the KD labels with
`select.jsonl` as its validation / early-stopping set (library defaults otherwise). The trained model is saved as a
`StaticModelPipeline` (float32, as trained) and once more per `--quantize` dtype; each saved folder is reloaded and
measured: accuracy on dev (gold labels, used for nothing else) and select, folder size, and texts/s of the
pipeline's `predict` on the dev texts (tokenization included). Writes `results.json` to `--out`.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path


def read_jsonl(path: Path) -> tuple[list[str], list[int]]:
    rows = [json.loads(line) for line in path.open(encoding="utf-8")]
    return [row["text"] for row in rows], [row["label"] for row in rows]


def folder_mb(folder: Path) -> float:
    return sum(f.stat().st_size for f in folder.iterdir() if f.is_file()) / 2**20


def texts_per_s(predict, texts: list[str], batch_size: int, min_seconds: float) -> float:
    predict(texts, batch_size=batch_size)  # warm-up
    done, start = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - start) < min_seconds or done == 0:
        predict(texts, batch_size=batch_size)
        done += len(texts)
    return done / elapsed


def accuracy(predict, texts: list[str], labels: list[int]) -> float:
    return float((predict(texts) == labels).mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--teacher", type=Path, default=Path("../shared/teachers/minilm-l6-sst2"))
    parser.add_argument("--data", type=Path, default=Path("runs/peer_data"), help="kd_teacher_labels/select/dev.jsonl")
    parser.add_argument("--out", type=Path, default=Path("runs/peer_m2v"))
    parser.add_argument("--dims", type=int, default=256, help="PCA dimensions of the distilled embeddings")
    parser.add_argument("--train-rows", type=int, default=0, help="seeded random subset of the KD rows; 0 = all")
    parser.add_argument("--seed", type=int, default=0, help="seed of the --train-rows subset")
    parser.add_argument("--quantize", nargs="*", default=["float16", "int8"], help="extra saves with these dtypes")
    parser.add_argument("--threads", type=int, default=2, help="torch threads, for everything")
    parser.add_argument("--batch-size", type=int, default=256, help="predict batch size when timing")
    parser.add_argument("--min-seconds", type=float, default=3.0, help="time each predict loop at least this long")
    args = parser.parse_args()

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import model2vec
    import numpy as np
    import torch
    import transformers
    from model2vec.distill import distill
    from model2vec.inference import StaticModelPipeline
    from model2vec.model import quantize_model
    from model2vec.train import StaticModelForClassification

    torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    seconds = {}

    start = time.perf_counter()
    static = distill(str(args.teacher.resolve()), pca_dims=args.dims, device="cpu")
    seconds["distill"] = time.perf_counter() - start

    x_train, y_train = read_jsonl(args.data / "kd_teacher_labels.jsonl")
    total_rows = len(x_train)
    if args.train_rows:
        keep = np.random.default_rng(args.seed).choice(len(x_train), args.train_rows, replace=False)
        x_train, y_train = [x_train[i] for i in keep], [y_train[i] for i in keep]
    x_select, y_select = read_jsonl(args.data / "select.jsonl")
    x_dev, y_dev = read_jsonl(args.data / "dev.jsonl")

    start = time.perf_counter()
    classifier = StaticModelForClassification.from_static_model(model=static)
    classifier.fit(x_train, y_train, X_val=x_select, y_val=y_select, device="cpu")
    seconds["train"] = time.perf_counter() - start

    pipeline = classifier.to_pipeline()
    variants = {"float32": pipeline.model} | {d: quantize_model(pipeline.model, quantize_to=d) for d in args.quantize}
    measured = {}
    for dtype, model in variants.items():
        folder = args.out / f"model_{dtype}"
        StaticModelPipeline(model, pipeline.head).save_pretrained(str(folder))
        start = time.perf_counter()
        saved = StaticModelPipeline.from_pretrained(folder)
        measured[dtype] = {
            "path": str(folder),
            "embedding_dtype": str(saved.model.embedding.dtype),
            "accuracy_dev": accuracy(saved.predict, x_dev, y_dev),
            "accuracy_select": accuracy(saved.predict, x_select, y_select),
            "disk_mb": folder_mb(folder),
            "texts_per_s": texts_per_s(saved.predict, x_dev, args.batch_size, args.min_seconds),
        }
        seconds[f"measure_{dtype}"] = time.perf_counter() - start
        print(dtype, measured[dtype], flush=True)

    results = {
        "model2vec_version": model2vec.__version__,
        "transformers_version": transformers.__version__,
        "torch_version": torch.__version__,
        "train_rows": len(x_train),
        "train_rows_total": total_rows,
        "dims": static.dim,
        "vocab_size": len(static.tokens),
        **measured.pop("float32"),
        **measured,
        "accuracy_dev_torch_classifier": accuracy(classifier.predict, x_dev, y_dev),
        "texts_per_s_torch_classifier": texts_per_s(classifier.predict, x_dev, args.batch_size, args.min_seconds),
        "seconds": seconds,
        "command": " ".join([Path(sys.executable).as_posix(), *sys.argv]),
        "settings": {
            "distill": {"pca_dims": args.dims, "other": "model2vec defaults (sif 1e-4, mean pooling, float16)"},
            "fit": "library defaults (lr 1e-3, auto batch size, early stopping on select accuracy, patience 5)",
            "train_subset_seed": args.seed if args.train_rows else None,
            "threads": args.threads,
            "predict_batch_size": args.batch_size,
            "timed_on": f"dev.jsonl ({len(x_dev)} texts), >= {args.min_seconds} s, after one warm-up pass",
        },
    }
    (args.out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
