"""Export a recipe's KD corpus with the teacher's hard labels, and its labeled splits, as JSON Lines: the training
data of the peers (`model2vec_peer.py`) is then exactly the student's.

    python benchmarks/export_kd_labels.py sst2_shared --out runs/peer_data

Writes `kd_teacher_labels.jsonl` (every KD text with the teacher's argmax), `select.jsonl`, `dev.jsonl` and
`train_gold.jsonl` (gold labels). The teacher's logits come from the recipe's cache (labelled once).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from hf_sparse_distill.distillation import Distiller, load_recipe


def write(path: Path, texts: list[str], labels) -> None:
    with open(path, "w", encoding="utf-8") as f:
        for text, label in zip(texts, labels):
            f.write(json.dumps({"text": text, "label": int(label)}) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("recipe", help="a recipe file or the name of a shipped recipe")
    parser.add_argument("--out", default="runs/peer_data")
    args = parser.parse_args()
    steps = Distiller(load_recipe(args.recipe))
    data = steps.data()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    write(out / "kd_teacher_labels.jsonl", data.corpus.texts, steps.teacher_logits("kd").argmax(axis=1))
    for name, split in (("select", data.select), ("dev", data.dev), ("train_gold", data.train)):
        write(out / f"{name}.jsonl", split.texts, split.labels)
    print(f"{len(data.corpus.texts):,} KD texts, {len(data.select):,} selection, {len(data.dev):,} dev -> {out}")


if __name__ == "__main__":
    main()
