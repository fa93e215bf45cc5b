"""Trains a tiny student with `StageTrainer` and saves this process's final weights; run by
test_distributed.py once with one process and once under `accelerate launch` with two."""

import os
import sys
from pathlib import Path

import numpy as np
from safetensors.torch import save_file

sys.path.insert(0, str(Path(__file__).parent))
from conftest import CORPUS, make_model, random_texts  # noqa: E402

from hf_sparse_distill import SparseDANTokenizer  # noqa: E402
from hf_sparse_distill.distillation.distributed import process_state  # noqa: E402
from hf_sparse_distill.distillation.encoding import encode_texts  # noqa: E402
from hf_sparse_distill.distillation.recipe import StageConfig  # noqa: E402
from hf_sparse_distill.distillation.train import EvalData, StageData, StageTrainer  # noqa: E402


def main(out_dir: str) -> None:
    state = process_state()
    texts = CORPUS + random_texts(150, seed=5)
    tokenizer = SparseDANTokenizer.from_ngrams(sorted({w.lower() for t in texts for w in t.split() if len(w) > 1}))
    encoded = encode_texts(tokenizer, texts, show_progress=False)
    rng = np.random.default_rng(0)
    teacher_logits = rng.normal(size=(len(texts), 2)).astype(np.float32)
    labels = (teacher_logits[:, 1] > teacher_logits[:, 0]).astype(np.int64)
    model = make_model(tokenizer, feature_dropout=0.0, classifier_dropout=0.0)
    stage = StageConfig(
        epochs=2, batch_size=16, learning_rate=1e-2, embedding_learning_rate=5e-2, eval_steps=5, alpha=0.5
    )
    trainer = StageTrainer(
        model,
        tokenizer,
        StageData(encoded, teacher_logits, labels),
        EvalData(encoded, labels, teacher_logits),
        stage,
        Path(out_dir) / "stage",
    )
    summary = trainer.train(resume=False)
    assert state.num_processes == int(os.environ.get("WORLD_SIZE", 1)), "processes are not synchronised"
    weights = {name: p.detach().clone().contiguous() for name, p in model.named_parameters()}
    save_file(weights, str(Path(out_dir) / f"rank{state.process_index}_of{state.num_processes}.safetensors"))
    if state.is_main_process:
        (Path(out_dir) / "best_accuracy.txt").write_text(str(summary.best_score))


if __name__ == "__main__":
    main(sys.argv[1])
