"""Which end of a long text should the teacher read? Teacher accuracy with the first or the last `max_length` tokens
(`teacher.truncation_side: right` or `left`) on a seeded sample of labeled texts, never the report split.

    python benchmarks/truncation_side.py    # the shared SST-2 teacher on 800 IMDB train reviews, 128 tokens: ~3 min

Writes `truncation_side.json` and `TRUNCATION_SIDE.md` to `--out`.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import random
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
SHARED = Path(os.environ.get("HFSD_SHARED", "../shared"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--teacher", default=str(SHARED / "teachers" / "minilm-l6-sst2"))
    parser.add_argument("--data", default=str(SHARED / "data" / "imdb" / "train.jsonl.gz"))
    parser.add_argument("--texts", type=int, default=800, help="size of the seeded sample")
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--out", default=str(HERE))
    args = parser.parse_args()
    import numpy as np

    from hf_sparse_distill.distillation.data import load_source
    from hf_sparse_distill.distillation.recipe import DatasetSource, TeacherConfig
    from hf_sparse_distill.distillation.teacher import Teacher
    from hf_sparse_distill.speed import machine_description

    teacher_labels = Teacher(TeacherConfig(model=args.teacher)).model_config.label2id
    data = load_source(DatasetSource(path=args.data), teacher_labels)
    rows = random.Random(0).sample(range(len(data.texts)), min(args.texts, len(data.texts)))
    texts, labels = [data.texts[i] for i in rows], np.array([data.labels[i] for i in rows])
    points = []
    for side, reads in (("right", "the first tokens"), ("left", "the last tokens")):
        config = TeacherConfig(model=args.teacher, max_length=args.max_length, truncation_side=side, batch_size=32)
        teacher = Teacher(config)
        teacher.predict(texts[:1])  # loads the model: not timed
        start = time.perf_counter()
        predictions = teacher.predict(texts).argmax(-1)
        points.append({
            "truncation_side": side, "reads": reads, "accuracy": float((predictions == labels).mean()),
            "seconds": round(time.perf_counter() - start, 1),
        })  # fmt: skip
        print(json.dumps(points[-1]), flush=True)
    report = {
        "teacher": args.teacher, "data": args.data, "texts": len(texts), "max_length": args.max_length,
        "machine": machine_description(), "date": datetime.date.today().isoformat(), "points": points,
    }  # fmt: skip
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "truncation_side.json").write_text(json.dumps(report, indent=2))
    lines = [
        "# Which end of a long text the teacher reads",
        "",
        f"Generated {report['date']} by `python benchmarks/truncation_side.py` on: {report['machine']}.",
        f"Teacher `{args.teacher}`, {args.max_length} tokens, {len(texts)} texts drawn with seed 0 from "
        f"`{args.data}` (not a report split).",
        "",
        "| truncation_side | the teacher reads | accuracy | seconds |",
        "|---|---|---|---|",
        *(f"| {p['truncation_side']} | {p['reads']} | {100 * p['accuracy']:.2f} | {p['seconds']} |" for p in points),
    ]
    (out / "TRUNCATION_SIDE.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
