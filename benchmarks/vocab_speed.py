"""N-gram vocabulary: hf-sparse-distill's streaming counter against scikit-learn's CountVectorizer.

    python benchmarks/vocab_speed.py                      # SST-2 + SST phrases + MR + SUBJ + 50k IMDB reviews
    python benchmarks/vocab_speed.py --imdb-reviews 0 --max-texts 5000 --size 1000 --out /tmp/v   # smoke

Both build the top-K 1-4-gram vocabulary of the same texts (K = --size). Each runs in its own process, so the
peak memory is its own. The result says whether the two vocabularies are the same set (scikit-learn breaks ties at
the boundary in an unspecified order, so sets can differ only among n-grams tied with the K-th count).
Writes `VOCAB.md` and `vocab.json` to `--out`.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))


def texts(imdb_reviews: int, max_texts: int | None = None) -> list[str]:
    from measure import shared_dir

    data = shared_dir() / "data"
    out = []
    for name in ("sst2/train.jsonl", "sst/train_phrases.jsonl", "mr/all.jsonl", "subj/all.jsonl"):
        with open(data / name, encoding="utf-8") as f:
            out.extend(json.loads(line)["text"] for line in f)
    with gzip.open(data / "imdb" / "unsup.jsonl.gz", "rt", encoding="utf-8") as f:
        for _, line in zip(range(imdb_reviews), f):
            out.append(json.loads(line)["text"])
    return out[:max_texts]


def worker(method: str, size: int, imdb_reviews: int, workers: int, out_file: str, max_texts: int | None) -> dict:
    from measure import peak_rss_mb

    corpus = texts(imdb_reviews, max_texts)
    start = time.perf_counter()
    if method == "countvectorizer":
        from sklearn.feature_extraction.text import CountVectorizer

        vocabulary = CountVectorizer(ngram_range=(1, 4), max_features=size).fit(corpus).get_feature_names_out().tolist()
    else:
        from hf_sparse_distill.distillation.vocab import build_vocabulary

        vocabulary = build_vocabulary(corpus, size, num_workers=workers, show_progress=False)
    seconds = time.perf_counter() - start
    Path(out_file).write_text("\n".join(vocabulary))
    return {
        "method": method,
        "seconds": round(seconds, 2),
        "peak_rss_mb": round(peak_rss_mb(), 1),
        "texts": len(corpus),
        "size": len(vocabulary),
        "workers": workers if method != "countvectorizer" else 1,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=1_000_000)
    parser.add_argument("--imdb-reviews", type=int, default=50_000)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--max-texts", type=int, help="use only the first N texts (smoke runs)")
    parser.add_argument("--out", default=str(HERE))
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--list-file", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(
            json.dumps(worker(args.worker, args.size, args.imdb_reviews, args.workers, args.list_file, args.max_texts))
        )
        return
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rows, vocabularies = [], {}
    runs = [("hf-sparse-distill", args.workers), ("hf-sparse-distill", 1), ("countvectorizer", 1)]
    for method, workers in runs:
        list_file = out / f".vocab-{method}-{workers}.txt"
        command = [
            sys.executable,
            __file__,
            "--worker",
            method,
            "--size",
            str(args.size),
            "--imdb-reviews",
            str(args.imdb_reviews),
            "--workers",
            str(workers),
            "--list-file",
            str(list_file),
        ]
        command += ["--max-texts", str(args.max_texts)] if args.max_texts else []
        done = subprocess.run(command, capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(done.stderr[-3000:])
        rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
        vocabularies[(method, workers)] = set(list_file.read_text().split("\n"))
        list_file.unlink()
    ours, theirs = vocabularies[("hf-sparse-distill", args.workers)], vocabularies[("countvectorizer", 1)]
    same_across_workers = vocabularies[("hf-sparse-distill", 1)] == ours
    from measure import machine_description

    lines = [
        "# N-gram vocabulary: streaming counter vs CountVectorizer",
        "",
        f"`python benchmarks/vocab_speed.py --size {args.size} --imdb-reviews {args.imdb_reviews}`, "
        f"{time.strftime('%Y-%m-%d')}, {machine_description()}. Top-{args.size:,} 1-4-grams of {rows[0]['texts']:,} texts "
        "(SST-2 train, SST train phrases, MR, SUBJ, IMDB unlabeled reviews).",
        "",
        "| method | processes | seconds | peak RSS (MB) | n-grams |",
        "|---|---|---|---|---|",
    ]
    lines += [
        f"| {r['method']} | {r['workers']} | {r['seconds']} | {r['peak_rss_mb']:,} | {r['size']:,} |" for r in rows
    ]
    lines += [
        "",
        f"Vocabulary shared with CountVectorizer: {len(ours & theirs):,} of {len(theirs):,} n-grams"
        f"{' (identical sets)' if ours == theirs else ''}. CountVectorizer orders equal counts arbitrarily "
        "(unstable argsort), so n-grams tied with the K-th count may differ; `tests/test_vocab.py` checks "
        f"equality wherever the K-th count is not tied. 1 process and {args.workers} give "
        f"{'the same' if same_across_workers else 'DIFFERENT'} vocabulary.",
    ]
    (out / "VOCAB.md").write_text("\n".join(lines) + "\n")
    (out / "vocab.json").write_text(
        json.dumps({"rows": rows, "shared": len(ours & theirs), "same_across_workers": same_across_workers}, indent=2)
    )
    print("\n".join(lines))


if __name__ == "__main__":
    main()
