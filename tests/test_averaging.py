"""Tail averaging of the student's weights: the average is the mean of the weights at the last evaluations, it is
scored on the selection split and kept only if it beats every checkpoint, and the trained weights are left as
they were."""

import shutil

import numpy as np
import torch
from conftest import make_model, random_texts
from safetensors.torch import load_file

from hf_sparse_distill.distillation.averaging import WeightAverage
from hf_sparse_distill.distillation.encoding import encode_texts
from hf_sparse_distill.distillation.evaluate import classification_metrics, predict_logits
from hf_sparse_distill.distillation.recipe import StageConfig
from hf_sparse_distill.distillation.train import EvalData, Schedule, StageData, StageSummary, StageTrainer


def test_evaluation_steps_end_at_the_last_step():
    assert Schedule(10, 10, 5, 5).evaluation_steps == [5, 10]
    assert Schedule(10, 11, 5, 5).evaluation_steps == [5, 10, 11]
    assert Schedule(10, 3, 5, 5).evaluation_steps == [3]


def stage_trainer(tokenizer, stage_dir, **settings) -> StageTrainer:
    """A stage of 18 steps (96 texts, batch 16, 3 epochs) evaluated every 4 steps and at step 18."""
    texts = random_texts(96, seed=3)
    encoded = encode_texts(tokenizer, texts, show_progress=False)
    logits = np.random.default_rng(3).normal(size=(len(texts), 2)).astype(np.float32)
    labels = logits.argmax(1)
    stage = StageConfig(epochs=3, batch_size=16, learning_rate=1e-2, eval_steps=4, **settings)
    data, selection = StageData(encoded, logits, labels), EvalData(encoded, labels, logits)
    return StageTrainer(make_model(tokenizer), tokenizer, data, selection, stage, stage_dir)


def test_the_average_is_the_mean_of_the_weights_at_the_last_evaluations(tokenizer, tmp_path, monkeypatch):
    snapshots, add = {}, WeightAverage.add

    def recording_add(self, model, step):
        snapshots[step] = {name: p.detach().clone() for name, p in model.named_parameters()}
        add(self, model, step)

    monkeypatch.setattr(WeightAverage, "add", recording_add)
    trainer = stage_trainer(tokenizer, tmp_path, average_last_evaluations=3)
    model, selection = trainer.model, trainer.selection
    summary = trainer.train()

    assert sorted(snapshots) == trainer.schedule.evaluation_steps == [4, 8, 12, 16, 18]
    averaged = trainer.average.steps
    assert averaged == [12, 16, 18]
    for name, param in model.named_parameters():
        expected = torch.stack([snapshots[step][name] for step in averaged]).mean(0)
        torch.testing.assert_close(trainer.average.mean[name], expected)
        assert torch.equal(param, snapshots[18][name])  # the trained weights are back after scoring the average

    scored = make_model(tokenizer)
    scored.load_state_dict(trainer.average.mean)
    logits = predict_logits(scored, selection.encoded)
    metrics = classification_metrics(logits, selection.labels, scored.config.id2label, selection.teacher_logits)
    assert summary.average.accuracy == metrics.accuracy and summary.average.step == 18
    assert len(summary.history) == len(snapshots)  # the average is not a checkpoint of the history
    best = load_file(str(tmp_path / "best" / "model.safetensors"))
    kept = trainer.average.mean if summary.best_is_average else snapshots[summary.best_step]
    assert summary.best_is_average == (summary.average.score > max(m.score for m in summary.history))
    for name in best:
        torch.testing.assert_close(best[name], kept[name])


def test_an_average_that_beats_every_checkpoint_is_kept(tokenizer, tmp_path, monkeypatch):
    scored = StageTrainer._selection_metrics

    def average_scores_best(self, model):  # the average scores 1.0, every checkpoint less
        metrics = scored(self, model)
        mean = self.average.mean
        averaged = any(name in mean and p.data_ptr() == mean[name].data_ptr() for name, p in model.named_parameters())
        metrics.accuracy = 1.0 if averaged else min(metrics.accuracy, 0.9)
        return metrics

    monkeypatch.setattr(StageTrainer, "_selection_metrics", average_scores_best)
    trainer = stage_trainer(tokenizer, tmp_path, average_last_evaluations=2)
    summary = trainer.train()
    assert summary.best_is_average and summary.best_metrics is summary.average
    assert summary.average.averaged_steps == [16, 18] and summary.best_step == 18
    best = load_file(str(tmp_path / "best" / "model.safetensors"))
    for name, value in trainer.average.mean.items():
        assert torch.equal(best[name], value), name
    assert StageSummary.load(tmp_path / "trainer_state.json") == summary


def test_a_resumed_stage_averages_the_same_weights(tokenizer, tmp_path):
    settings = dict(average_last_evaluations=3, save_steps=2, save_total_limit=100, keep_checkpoints=True)
    reference = stage_trainer(tokenizer, tmp_path / "reference", **settings)
    reference.train()
    # interrupted after step 14 (averaging began at step 12): only the checkpoints up to it are there
    shutil.copytree(tmp_path / "reference" / "checkpoints", tmp_path / "resumed" / "checkpoints")
    shutil.rmtree(tmp_path / "resumed" / "checkpoints" / "step_16")
    resumed = stage_trainer(tokenizer, tmp_path / "resumed", **settings)
    resumed.train()
    assert resumed.average.count == reference.average.count == 3
    for name, value in reference.average.mean.items():
        assert torch.equal(resumed.average.mean[name], value), name


def test_the_average_survives_a_checkpoint(tokenizer, tmp_path):
    model = make_model(tokenizer)
    average = WeightAverage([2, 4])
    average.add(model, 1)  # not an averaged step
    assert average.count == 0
    average.save(tmp_path)
    assert not list(tmp_path.iterdir())
    average.add(model, 2)
    average.save(tmp_path)
    restored = WeightAverage([2, 4])
    restored.load(tmp_path)
    assert restored.count == 1
    for name, value in average.mean.items():
        assert torch.equal(restored.mean[name], value)
