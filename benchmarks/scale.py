"""How students scale: build / save / load time, disk, memory and throughput as the vocabulary grows
(100k → 1M → 4M n-grams) and as the embedding dimension grows (100 → 1000), including the paper's
1M × 1000 student (4 GB).

    python benchmarks/scale.py                 # about 8 minutes on 2 cores (vocabulary counted once), peak ~6.4 GB RAM
    python benchmarks/scale.py --smoke --out /tmp/scale

The vocabularies are real: the most frequent 1-4-grams of the shared corpora (SST-2, SST phrases, IMDB, Amazon,
Yelp, MR, SUBJ), counted once and cached. Weights are random (speed does not depend on their values). Each
configuration runs in its own process. Writes `SCALING.md` and `scaling.json` to `--out`.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))


FULL_CORPUS = [
    "sst2/train.jsonl",
    "sst/train_phrases.jsonl",
    "mr/all.jsonl",
    "subj/all.jsonl",
    "amazon_multidomain/all.jsonl",
    "yelp/dev.jsonl",
    "imdb/train.jsonl.gz",
    "imdb/test.jsonl.gz",
    "imdb/unsup.jsonl.gz",
]


def corpus_texts(files: list[str]) -> list[str]:
    from measure import shared_dir

    data = shared_dir() / "data"
    texts = []
    for name in files:
        opener = gzip.open if name.endswith(".gz") else open
        with opener(data / name, "rt", encoding="utf-8") as f:
            texts.extend(json.loads(line)["text"] for line in f)
    return texts


def vocabulary(size: int, cache: Path, files: list[str] = FULL_CORPUS) -> list[str]:
    """The `size` most frequent n-grams of the shared corpora (computed once for the largest size asked)."""
    from hf_sparse_distill.distillation.vocab import build_vocabulary

    counted = sorted(cache.glob("ngrams_top*.txt"), key=lambda p: int(p.stem.split("top")[1]))
    usable = [p for p in counted if int(p.stem.split("top")[1]) >= size]
    if not usable:
        cache.mkdir(parents=True, exist_ok=True)
        texts = corpus_texts(files)
        ngrams = build_vocabulary(texts, size, total=len(texts))
        path = cache / f"ngrams_top{size}.txt"
        path.write_text("\n".join(ngrams) + "\n", encoding="utf-8")
        usable = [path]
    with open(usable[0], encoding="utf-8") as f:
        return [line.rstrip("\n") for _, line in zip(range(size), f)]


def worker(vocab_size: int, dim: int, cache: Path, seconds: float, files: list[str]) -> dict:
    import torch
    from measure import long_reviews, peak_rss_mb, rss_mb, sst2_split, throughput
    from transformers import pipeline

    from hf_sparse_distill import SparseDANConfig, SparseDANForSequenceClassification, SparseDANTokenizer

    torch.set_num_threads(2)
    ngrams = vocabulary(vocab_size, cache, files)
    result = {"vocab_size": len(ngrams), "embed_dim": dim}
    start = time.perf_counter()
    tokenizer = SparseDANTokenizer.from_ngrams(ngrams)
    config = SparseDANConfig(
        vocab_size=tokenizer.vocab_size,
        embed_dim=dim,
        hidden_dims=[dim],
        id2label={0: "negative", 1: "positive"},
        label2id={"negative": 0, "positive": 1},
    )
    model = SparseDANForSequenceClassification(config).eval()
    result["build_s"] = round(time.perf_counter() - start, 2)
    result["parameters"] = sum(p.numel() for p in model.parameters())
    with tempfile.TemporaryDirectory(dir=cache) as tmp:
        start = time.perf_counter()
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        result["save_s"] = round(time.perf_counter() - start, 2)
        result["disk_mb"] = round(sum(p.stat().st_size for p in Path(tmp).iterdir()) / 2**20, 2)
        del model, tokenizer
        before = rss_mb()
        start = time.perf_counter()
        model = SparseDANForSequenceClassification.from_pretrained(tmp).eval()
        result["load_model_s"] = round(time.perf_counter() - start, 2)
        start = time.perf_counter()
        tokenizer = SparseDANTokenizer.from_pretrained(tmp)
        _ = tokenizer.matcher  # build the n-gram index now: part of loading
        result["load_tokenizer_s"] = round(time.perf_counter() - start, 2)
        dev, _ = sst2_split("dev")
        long = long_reviews(256)

        @torch.inference_mode()
        def direct(texts):
            return model(**tokenizer.encode_bags(texts)).logits

        result["direct_sst2_b256"] = round(throughput(direct, dev, 256, min_seconds=seconds), 1)
        result["direct_long_b256"] = round(throughput(direct, long, 256, min_seconds=seconds), 1)
        result["tokenizer_sst2_b256"] = round(throughput(tokenizer.encode_bags, dev, 256, min_seconds=seconds), 1)
        classifier = pipeline("text-classification", model=model, tokenizer=tokenizer, device="cpu")
        result["pipeline_sst2_b64"] = round(
            throughput(lambda t: classifier(t, batch_size=64), dev, 64, min_seconds=seconds), 1
        )
        result["ram_after_load_mb"] = round(rss_mb() - before, 1)
    result["peak_rss_mb"] = round(peak_rss_mb(), 1)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--vocab-sizes", default="100000,1000000,4000000")
    parser.add_argument("--dims", default="100,300,1000")
    parser.add_argument("--fixed-dim", type=int, default=256, help="embedding dim of the vocabulary sweep")
    parser.add_argument("--fixed-vocab", type=int, default=1_000_000, help="vocabulary of the dimension sweep")
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--out", default=str(HERE))
    parser.add_argument("--cache", default=str(HERE / ".cache"))
    parser.add_argument("--smoke", action="store_true")
    parser.add_argument("--worker", nargs=2, type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    cache = Path(args.cache)
    files = ["sst2/dev.jsonl"] if args.smoke else FULL_CORPUS
    if args.worker:
        print(json.dumps(worker(args.worker[0], args.worker[1], cache, args.seconds, files)))
        return
    if args.smoke:
        args.vocab_sizes, args.dims, args.fixed_dim, args.fixed_vocab, args.seconds = "200,400", "8,16", 8, 400, 0.05
    configs = [(v, args.fixed_dim) for v in map(int, args.vocab_sizes.split(","))]
    configs += [(args.fixed_vocab, d) for d in map(int, args.dims.split(",")) if (args.fixed_vocab, d) not in configs]
    vocabulary(max(v for v, _ in configs), cache, files)  # count once, before the workers
    rows = []
    for vocab_size, dim in configs:
        print(f"scaling: {vocab_size} n-grams x {dim}", file=sys.stderr, flush=True)
        env = {**os.environ, "OMP_NUM_THREADS": "2", "HF_HUB_OFFLINE": "1"}
        command = [
            sys.executable,
            str(Path(__file__).resolve()),
            "--worker",
            str(vocab_size),
            str(dim),
            "--cache",
            str(cache),
            "--seconds",
            str(args.seconds),
        ] + (["--smoke"] if args.smoke else [])
        done = subprocess.run(command, capture_output=True, text=True, env=env)
        if done.returncode != 0:
            raise RuntimeError(f"worker {vocab_size}x{dim} failed:\n{done.stderr[-3000:]}")
        rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
    from measure import machine_description

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    lines = [
        "# Scaling of the student",
        "",
        f"`python benchmarks/scale.py`, {time.strftime('%Y-%m-%d')}, {machine_description()}. Random weights, real "
        "vocabularies (top n-grams of the shared corpora); throughput includes tokenization (SST-2 dev sentences, "
        "IMDB reviews cut to 300 words); RAM = resident memory added by loading model + tokenizer.",
        "",
        "| n-grams | dim | parameters | build (s) | save (s) | load model (s) | load tokenizer (s) | disk (MB) | RAM (MB) | peak RSS (MB) | SST-2 texts/s (b256) | long texts/s (b256) | tokenizer only, SST-2 | stock pipeline, SST-2 (b64) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['vocab_size']:,} | {r['embed_dim']} | {r['parameters']:,} | {r['build_s']} | {r['save_s']} | "
            f"{r['load_model_s']} | {r['load_tokenizer_s']} | {r['disk_mb']:,} | {r['ram_after_load_mb']:,} | "
            f"{r['peak_rss_mb']:,} | {r['direct_sst2_b256']:,.0f} | {r['direct_long_b256']:,.0f} | "
            f"{r['tokenizer_sst2_b256']:,.0f} | {r['pipeline_sst2_b64']:,.0f} |"
        )
    (out / "SCALING.md").write_text("\n".join(lines) + "\n")
    (out / "scaling.json").write_text(json.dumps(rows, indent=2))
    print("\n".join(lines))
    if args.smoke:
        shutil.rmtree(cache, ignore_errors=True)


if __name__ == "__main__":
    main()
