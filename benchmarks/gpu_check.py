"""Multi-process check of the distillation steps: vocabulary, teacher labelling, a table started from the teacher
and training run once in one process and once in N processes under `accelerate launch`; the N-process run must give
the same tokenizer, the same teacher logits and the same student weights (identical on every rank; trained on teacher
logits and, with `--alpha` below 1, on gold labels of half the rows, so both loss terms' weighting between processes
is checked), and the script prints labelling and training throughput per process.

On GPUs it exercises the NCCL path of the sparse table's gradient sync (`distillation/distributed.py`); on CPUs it
runs the same code on gloo (`ACCELERATE_USE_CPU=1`, set here when no GPU is visible).

    python benchmarks/gpu_check.py --processes 2 --out /tmp/gpu_check          # CPU: about 1 minute on 2 cores
    python benchmarks/gpu_check.py --processes 8 --texts 400000 --vocab-size 1000000 --embed-dim 1000 \\
        --batch-size 2048 --out /tmp/gpu_check                                   # 8 GPUs, the paper's table

Texts are drawn from a Zipf word distribution (realistic n-gram counts, no data needed); the teacher is a
random-weight BERT of MiniLM-L6's shape unless `--teacher` names a real one (its speed does not depend on its
weights). Writes `gpu_check.json` to `--out` and exits with status 1 if a result differs beyond the tolerances.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ONE, MANY = "one", "many"


def synthetic_texts(count: int, seed: int = 0, words: int = 30_000) -> list[str]:
    """`count` texts of 8-40 words drawn from a Zipf distribution over `words` words (the same for every process)."""
    rng = np.random.default_rng(seed)
    lengths = rng.integers(8, 41, size=count)
    ranks = np.minimum(rng.zipf(1.15, size=int(lengths.sum())), words)
    tokens = np.char.add("w", ranks.astype(str))
    ends = np.cumsum(lengths)
    return [" ".join(tokens[end - n : end]) for n, end in zip(lengths, ends)]


def random_teacher(folder: Path, texts: list[str], seed: int = 0) -> Path:
    """A random-weight BERT classifier of MiniLM-L6's shape (6 layers, 384 wide) with a word-level WordPiece
    vocabulary of the texts' words, saved with `save_pretrained`."""
    import torch
    from transformers import BertConfig, BertForSequenceClassification, BertTokenizer

    folder.mkdir(parents=True, exist_ok=True)
    words = sorted({w for t in texts[:20_000] for w in t.split()})
    (folder / "vocab.txt").write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *words]) + "\n")
    tokenizer = BertTokenizer(str(folder / "vocab.txt"), model_max_length=128)
    torch.manual_seed(seed)
    config = BertConfig(
        vocab_size=len(words) + 5, hidden_size=384, num_hidden_layers=6, num_attention_heads=12,
        intermediate_size=1536, max_position_embeddings=512, id2label={0: "negative", 1: "positive"},
        label2id={"negative": 0, "positive": 1},
    )  # fmt: skip
    BertForSequenceClassification(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def worker(args: argparse.Namespace) -> None:
    """One process of a run: vocabulary, labelling, training; writes this rank's weights and timings."""
    import torch
    from safetensors.numpy import save_file as save_numpy
    from safetensors.torch import save_file

    from hf_sparse_distill import SparseDANConfig, SparseDANForSequenceClassification, SparseDANTokenizer
    from hf_sparse_distill.distillation.data import TextSet, build_kd_corpus, dedup_key
    from hf_sparse_distill.distillation.distributed import process_state
    from hf_sparse_distill.distillation.encoding import encode_texts
    from hf_sparse_distill.distillation.recipe import StageConfig, TeacherConfig, VocabConfig
    from hf_sparse_distill.distillation.table_init import start_from_teacher
    from hf_sparse_distill.distillation.teacher import Teacher
    from hf_sparse_distill.distillation.train import EvalData, StageData, StageTrainer
    from hf_sparse_distill.distillation.vocab import build_tokenizer

    state = process_state()
    if state.num_processes != int(os.environ.get("WORLD_SIZE", 1)):
        raise SystemExit("the processes are not synchronised (on CPUs, launch with ACCELERATE_USE_CPU=1)")
    out = Path(args.out)
    timings: dict[str, float] = {}
    # the corpus as the distiller keeps it: an Arrow file on disk (built by the main process, read by all)
    with state.main_process_first():
        corpus = build_kd_corpus(
            TextSet([], []), [TextSet(synthetic_texts(args.texts, args.seed))], [], dedup_key(VocabConfig()),
            folder=out / "corpus", identity=f"{args.texts}-{args.seed}",
        )  # fmt: skip
    texts = corpus.texts

    start = time.perf_counter()
    vocab = VocabConfig(size=args.vocab_size, ngram_range=[1, 2], num_workers=1)
    chunk_size = max(100, args.texts // 8)  # several chunks: the processes share them out
    identity = {"texts": args.texts, "seed": args.seed}
    build_tokenizer(texts, vocab, 256, out / "tokenizer", identity, state, chunk_size=chunk_size)
    tokenizer = SparseDANTokenizer.from_pretrained(out / "tokenizer")
    timings["vocab_s"] = time.perf_counter() - start

    teacher = Teacher(TeacherConfig(model=args.teacher, max_length=128, batch_size=64, dtype="float32",
                                    chunk_size=max(64, args.texts // 16)), state)  # fmt: skip
    start = time.perf_counter()
    logits = teacher.label(texts, out / "cache", show_progress=state.is_main_process, out=out / "logits.npy")
    timings["label_s"] = time.perf_counter() - start

    encoded = encode_texts(tokenizer, texts, show_progress=False, folder=out / "encoded", identity="ids", state=state)
    # training targets that do not depend on the labelling run, so that both checks stand on their own; gold labels
    # on a random half of the rows (as a KD corpus holds the labeled train split among unlabeled text), so that
    # each process's share of a batch's labelled rows differs and the gold term's weighting is checked too
    rng = np.random.default_rng(args.seed)
    targets = rng.normal(size=logits.shape).astype(np.float32)
    gold = targets.argmax(-1)
    labels = np.where(rng.random(len(gold)) < 0.5, gold, -1)
    config = SparseDANConfig(
        vocab_size=tokenizer.vocab_size, embed_dim=args.embed_dim, hidden_dims=[args.embed_dim],
        id2label={0: "negative", 1: "positive"}, label2id={"negative": 0, "positive": 1},
        pad_token_id=tokenizer.pad_token_id, feature_dropout=0.0, classifier_dropout=0.0, embedding_init_std=0.01,
    )  # fmt: skip
    torch.manual_seed(args.seed)
    model = SparseDANForSequenceClassification(config)
    start = time.perf_counter()  # the table starts from the teacher (`kd.embedding_init: teacher`), shared out too
    start_from_teacher(model, teacher, tokenizer, out / "cache", state)
    timings["table_s"] = time.perf_counter() - start
    stage = StageConfig(epochs=args.epochs, batch_size=args.batch_size, learning_rate=1e-3,
                        embedding_learning_rate=1e-2, eval_steps=None, alpha=args.alpha)  # fmt: skip
    held = slice(0, min(1000, len(texts)))
    selection = EvalData(encode_texts(tokenizer, texts[held], show_progress=False), gold[held], targets[held])
    trainer = StageTrainer(model, tokenizer, StageData(encoded, targets, labels), selection, stage, out / "stage")
    start = time.perf_counter()
    summary = trainer.train(resume=False)
    timings["train_s"] = time.perf_counter() - start
    timings["train_steps"] = summary.total_steps

    rank = f"rank{state.process_index}"
    weights = {name: p.detach().float().cpu().contiguous() for name, p in model.named_parameters()}
    save_file(weights, str(out / f"{rank}.safetensors"))
    if state.is_main_process:
        save_numpy({"logits": np.asarray(logits)}, str(out / "logits.safetensors"))
    (out / f"{rank}.json").write_text(json.dumps({**timings, "device": str(state.device)}))
    state.wait_for_everyone()


def launch(args: argparse.Namespace, processes: int, out: Path) -> subprocess.CompletedProcess:
    """Run the worker in `processes` processes (plain python for one, `accelerate launch --multi_gpu` for more)."""
    import torch

    out.mkdir(parents=True, exist_ok=True)
    options = [
        "--worker", "--out", str(out), "--teacher", args.teacher, "--texts", str(args.texts),
        "--vocab-size", str(args.vocab_size), "--embed-dim", str(args.embed_dim), "--epochs", str(args.epochs),
        "--batch-size", str(args.batch_size), "--seed", str(args.seed), "--alpha", str(args.alpha),
    ]  # fmt: skip
    env = dict(os.environ)
    if not torch.cuda.is_available():
        env.update(ACCELERATE_USE_CPU="1", OMP_NUM_THREADS=str(max(1, (os.cpu_count() or 1) // processes)))
    command = [sys.executable, __file__, *options]
    if processes > 1:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        command = [
            sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", str(processes),
            "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
            "--main_process_port", str(port), __file__, *options,
        ]  # fmt: skip
    print(f"{processes} process(es): {' '.join(command)}", file=sys.stderr, flush=True)
    return subprocess.run(command, env=env, capture_output=True, text=True)


def compare(args: argparse.Namespace, out: Path) -> dict:
    """Compare the two runs and gather the throughput of each."""
    from safetensors.numpy import load_file

    one, many = out / ONE, out / MANY
    weights = {r: load_file(str(many / f"rank{r}.safetensors")) for r in range(args.processes)}
    reference = load_file(str(one / "rank0.safetensors"))
    ranks_identical = all(
        np.array_equal(weights[r][name], weights[0][name]) for r in weights for name in reference
    )  # fmt: skip
    weight_diff = max(float(np.abs(weights[0][name] - reference[name]).max()) for name in reference)
    logit_diff = float(
        np.abs(
            load_file(str(many / "logits.safetensors"))["logits"] - load_file(str(one / "logits.safetensors"))["logits"]
        ).max()
    )
    same_vocab = (one / "tokenizer" / "ngram_vocab.json").read_bytes() == (
        many / "tokenizer" / "ngram_vocab.json"
    ).read_bytes()
    runs = {}
    for name, folder, processes in ((ONE, one, 1), (MANY, many, args.processes)):
        timing = json.loads((folder / "rank0.json").read_text())
        texts_per_process = args.texts / processes
        examples = timing["train_steps"] * args.batch_size / processes
        runs[name] = {
            "processes": processes, "device": timing["device"], "vocab_s": round(timing["vocab_s"], 2),
            "label_s": round(timing["label_s"], 2), "train_s": round(timing["train_s"], 2),
            "label_texts_per_s_per_process": round(texts_per_process / timing["label_s"], 1),
            "train_examples_per_s_per_process": round(examples / timing["train_s"], 1),
        }  # fmt: skip
    ok = same_vocab and ranks_identical and weight_diff <= args.weight_atol and logit_diff <= args.logit_atol
    return {
        "texts": args.texts, "vocab_size": args.vocab_size, "embed_dim": args.embed_dim, "batch_size": args.batch_size,
        "processes": args.processes, "alpha": args.alpha, "same_vocabulary": same_vocab, "ranks_identical": ranks_identical,
        "max_weight_diff": weight_diff, "weight_atol": args.weight_atol, "max_logit_diff": logit_diff,
        "logit_atol": args.logit_atol, "runs": runs, "ok": ok,
    }  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--out", required=True)
    parser.add_argument("--teacher", help="teacher folder or Hub id (default: a random MiniLM-L6-shaped BERT)")
    parser.add_argument("--texts", type=int, default=4000)
    parser.add_argument("--vocab-size", type=int, default=50_000)
    parser.add_argument("--embed-dim", type=int, default=64)
    parser.add_argument("--epochs", type=float, default=2.0)
    parser.add_argument("--batch-size", type=int, default=256, help="global batch (over all processes)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--alpha", type=float, default=0.5, help="weight of KD against the gold labels of half the rows"
    )
    parser.add_argument("--weight-atol", type=float, default=1e-5, help="1 vs N processes, largest weight difference")
    parser.add_argument("--logit-atol", type=float, default=1e-4, help="1 vs N processes, largest logit difference")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args)
        return 0
    if args.processes < 2 or args.batch_size % args.processes:
        parser.error("--processes must be at least 2 and divide --batch-size")
    out = Path(args.out)
    if args.teacher is None:
        args.teacher = str(random_teacher(out / "teacher", synthetic_texts(args.texts, args.seed)))
    for processes, folder in ((1, ONE), (args.processes, MANY)):
        shutil.rmtree(out / folder, ignore_errors=True)  # nothing of an earlier run may pass for this one's
        result = launch(args, processes, out / folder)
        done = all((out / folder / f"rank{r}.json").exists() for r in range(processes))
        if not done:  # gloo may abort at exit after the work is written: judge by the outputs
            sys.stderr.write(result.stdout[-3000:] + result.stderr[-5000:])
            print(f"the {processes}-process run failed (exit status {result.returncode})", file=sys.stderr)
            return 1
    report = compare(args, out)
    (out / "gpu_check.json").write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))
    if not report["ok"]:
        print("MISMATCH between 1 and N processes (see gpu_check.json)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
