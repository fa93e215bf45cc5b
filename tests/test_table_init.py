"""A student table that starts from the teacher (`kd.embedding_init: teacher`): the teacher's representation of each
n-gram, PCA-reduced to the student's width, computed once and kept in the cache."""

import numpy as np
import pytest
import torch
from conftest import random_texts
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from hf_sparse_distill.distillation import load_recipe
from hf_sparse_distill.distillation.distiller import Distiller
from hf_sparse_distill.distillation.recipe import RecipeError, TeacherConfig
from hf_sparse_distill.distillation.table_init import pca_rows
from hf_sparse_distill.distillation.teacher import Teacher


def test_embed_is_the_mean_of_the_text_tokens_last_hidden_states(tiny_teacher):
    texts = random_texts(20, seed=5) + ["good", "not good at all", ""]  # nothing but special tokens: zeros
    vectors = Teacher(TeacherConfig(model=str(tiny_teacher), batch_size=8)).embed(texts)
    encoder = AutoModelForSequenceClassification.from_pretrained(tiny_teacher).eval().base_model
    tokenizer = AutoTokenizer.from_pretrained(tiny_teacher)
    expected = []
    with torch.inference_mode():
        for text in texts:
            hidden = encoder(**tokenizer(text, return_tensors="pt")).last_hidden_state[0, 1:-1]  # no [CLS], [SEP]
            expected.append(hidden.mean(0).numpy() if len(hidden) else np.zeros(hidden.shape[1], np.float32))
    np.testing.assert_allclose(vectors, np.stack(expected), atol=1e-5)


def test_pca_rows_keep_the_leading_directions_at_the_asked_scale():
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(2000, 6)) * np.array([5.0, 3.0, 1.0, 0.1, 0.1, 0.1]) + 7.0
    rows = pca_rows(vectors, 2, std=0.05)
    assert rows.shape == (2000, 2) and rows.dtype == np.float32
    assert rows.std() == pytest.approx(0.05, rel=1e-4)
    assert abs(np.corrcoef(rows[:, 0], vectors[:, 0])[0, 1]) > 0.99  # the widest direction comes first
    assert abs(np.corrcoef(rows[:, 1], vectors[:, 1])[0, 1]) > 0.99
    wider = pca_rows(vectors, 9, std=0.05)  # past the vectors' 6 dimensions: noise columns at the same scale
    assert wider.shape == (2000, 9) and wider[:, 6:].std() == pytest.approx(0.05, rel=0.05)


def test_a_teacher_table_starts_the_student_and_is_computed_once(tiny_recipe, monkeypatch):
    recipe = load_recipe(tiny_recipe, ["kd.embedding_init=teacher", "student.embedding_init_std=0.02"])
    distiller = Distiller(recipe)
    vocab = distiller.tokenizer().get_vocab()
    calls = []
    embed = Teacher.embed
    monkeypatch.setattr(Teacher, "embed", lambda self, texts: calls.append(len(texts)) or embed(self, texts))
    student = distiller.new_student("teacher")
    table = student.dan.embeddings.weight.detach().numpy()
    assert sum(calls) == len(vocab) - 1  # every n-gram, not the padding token
    assert not table[distiller.tokenizer().pad_token_id].any()
    assert table.std() == pytest.approx(0.02, rel=0.01)
    # rows follow the teacher: the n-grams the teacher sees alike get alike rows
    ngrams = [g for g in vocab if g != "[PAD]"]
    vectors = distiller.teacher.embed(ngrams)
    ids = [vocab[g] for g in ngrams]
    teacher_sim = np.corrcoef(vectors)[0, 1:]
    student_sim = np.corrcoef(table[ids])[0, 1:]
    assert np.corrcoef(teacher_sim, student_sim)[0, 1] > 0.5
    calls.clear()
    again = Distiller(recipe).new_student("teacher")
    assert calls == [] and torch.equal(again.dan.embeddings.weight, student.dan.embeddings.weight)
    random = Distiller(load_recipe(tiny_recipe)).new_student()
    assert not torch.equal(random.dan.embeddings.weight, student.dan.embeddings.weight)
    assert Distiller(recipe).stage_fingerprint("kd") != Distiller(load_recipe(tiny_recipe)).stage_fingerprint("kd")


def test_fine_tuning_cannot_start_from_a_teacher_table(tiny_recipe):
    with pytest.raises(RecipeError, match="finetune.embedding_init must be random"):
        load_recipe(tiny_recipe, ["finetune.embedding_init=teacher"])
    with pytest.raises(RecipeError, match="random or teacher"):
        load_recipe(tiny_recipe, ["kd.embedding_init=glove"])


def test_an_interrupted_table_resumes_from_its_finished_chunks(tiny_recipe, monkeypatch, tmp_path):
    from hf_sparse_distill.distillation import table_init

    monkeypatch.setattr(table_init, "CHUNK", 50)
    recipe = load_recipe(tiny_recipe, ["kd.embedding_init=teacher"])
    vocab_size = len(Distiller(recipe).tokenizer().get_vocab())
    calls = []
    embed = Teacher.embed

    def failing_third_call(self, texts):
        calls.append(len(texts))
        if len(calls) == 3:
            raise KeyboardInterrupt
        return embed(self, texts)

    monkeypatch.setattr(Teacher, "embed", failing_third_call)
    with pytest.raises(KeyboardInterrupt):
        Distiller(recipe).new_student("teacher")
    monkeypatch.setattr(Teacher, "embed", lambda self, texts: calls.append(len(texts)) or embed(self, texts))
    resumed = Distiller(recipe).new_student("teacher").dan.embeddings.weight
    chunks = -(-(vocab_size - 1) // 50)
    assert len(calls) == chunks + 1  # two chunks before the interruption, the failed one again, and the rest
    clean = Distiller(load_recipe(tiny_recipe, ["kd.embedding_init=teacher", f"cache_dir={tmp_path / 'clean'}"]))
    assert torch.allclose(clean.new_student("teacher").dan.embeddings.weight, resumed, atol=1e-6)
