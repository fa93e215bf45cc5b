"""The composite optimizer equals the paper's pair SparseAdam (table) + AdamW (head); schedule shape; losses."""

import copy

import pytest
import torch
from conftest import make_model

from hf_sparse_distill.distillation.losses import distillation_loss, mixed_loss
from hf_sparse_distill.distillation.optim import MixedSparseAdamW, linear_warmup_decay, param_groups


def run_steps(model, tokenizer, optimizers, steps=5):
    texts = ["the movie is good", "bad film", "I love this movie", "awful acting and boring plot"]
    for step in range(steps):
        enc = tokenizer.encode_bags(texts[step % 2 :])
        labels = torch.tensor([1, 0, 1, 0])[step % 2 :]
        model.zero_grad(set_to_none=True)
        model(**enc, labels=labels).loss.backward()
        for optimizer in optimizers:
            optimizer.step()


def test_matches_torch_sparse_adam_plus_adamw(tokenizer):
    reference = make_model(tokenizer, feature_dropout=0.0, classifier_dropout=0.0)
    reference.train()
    ours = copy.deepcopy(reference)
    for model in (reference, ours):
        model.get_input_embeddings().sparse = True
    table = reference.get_input_embeddings().weight
    dense = [p for p in reference.parameters() if p is not table]
    run_steps(
        reference,
        tokenizer,
        [
            torch.optim.SparseAdam([table], lr=1e-2, betas=(0.9, 0.98), eps=1e-6),
            torch.optim.AdamW(dense, lr=1e-2, betas=(0.9, 0.98), eps=1e-6, weight_decay=0.01),
        ],
    )
    groups = param_groups(ours, weight_decay=0.01)
    for group in groups[1:]:
        group["weight_decay"] = 0.01  # torch's AdamW above decays biases too
    run_steps(ours, tokenizer, [MixedSparseAdamW(groups, lr=1e-2, betas=(0.9, 0.98), eps=1e-6)])
    for (name, a), b in zip(reference.named_parameters(), ours.parameters()):
        torch.testing.assert_close(a, b, msg=name)
    untouched = set(range(table.shape[0])) - set(
        tokenizer.encode_bags(["the movie is good bad film I love this movie awful acting and boring plot"])[
            "input_ids"
        ].tolist()
    )
    rows = torch.tensor(sorted(untouched))
    torch.testing.assert_close(ours.get_input_embeddings().weight[rows], table[rows])  # lazy: unused rows never move


def test_dense_table_gradient_is_updated_lazily(tokenizer):
    model = make_model(tokenizer, pooling="max", feature_dropout=0.0)
    model.train()
    before = model.get_input_embeddings().weight.detach().clone()
    optimizer = MixedSparseAdamW(param_groups(model, 0.01, embedding_lr=0.1), lr=1e-3)
    enc = tokenizer.encode_bags(["good movie"])
    model(**enc, labels=torch.tensor([1])).loss.backward()
    assert not model.get_input_embeddings().weight.grad.is_sparse
    optimizer.step()
    changed = (model.get_input_embeddings().weight != before).any(dim=1).nonzero().squeeze(1)
    assert set(changed.tolist()) <= set(enc["input_ids"].tolist()) and changed.numel() > 0
    assert optimizer.param_groups[0]["lr"] == 0.1 and optimizer.param_groups[1]["lr"] == 1e-3


def test_state_dict_round_trip(tokenizer):
    model = make_model(tokenizer)
    model.get_input_embeddings().sparse = True
    optimizer = MixedSparseAdamW(param_groups(model, 0.01), lr=1e-3)
    run_steps(model, tokenizer, [optimizer], steps=2)
    restored = MixedSparseAdamW(param_groups(model, 0.01), lr=1e-3)
    restored.load_state_dict(optimizer.state_dict())
    table = model.get_input_embeddings().weight
    torch.testing.assert_close(restored.state[table]["exp_avg"], optimizer.state[table]["exp_avg"])
    assert restored.param_groups[0]["sparse"] is True
    older = optimizer.state_dict()
    del older["param_groups"][0]["max_norm"]  # as saved before the norm cap existed
    restored.load_state_dict(older)
    run_steps(model, tokenizer, [restored], steps=1)


def test_linear_warmup_then_decay():
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    scheduler = linear_warmup_decay(optimizer, total_steps=100, warmup_ratio=0.1)
    rates = []
    for _ in range(100):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    assert rates[0] == pytest.approx(0.1) and rates[9] == pytest.approx(1.0)
    assert rates[10] == pytest.approx(1.0) and rates[55] == pytest.approx(0.5) and rates[99] == pytest.approx(1 / 90)
    assert rates == sorted(rates[:10]) + sorted(rates[10:], reverse=True)


def test_distillation_loss_is_kl_and_zero_at_the_teacher():
    teacher = torch.tensor([[2.0, -1.0], [0.5, 0.3]])
    assert distillation_loss(teacher.clone(), teacher).item() == pytest.approx(0.0, abs=1e-7)
    student = torch.tensor([[0.0, 0.0], [1.0, -1.0]])
    p = teacher.softmax(-1)
    expected = (p * (p.log() - student.log_softmax(-1))).sum(-1).mean()
    assert distillation_loss(student, teacher).item() == pytest.approx(expected.item(), rel=1e-6)
    t = 3.0
    pt = (teacher / t).softmax(-1)
    expected_t = (pt * (pt.log() - (student / t).log_softmax(-1))).sum(-1).mean() * t * t
    assert distillation_loss(student, teacher, temperature=t).item() == pytest.approx(expected_t.item(), rel=1e-6)
    multi = distillation_loss(teacher.clone(), teacher, problem_type="multi_label_classification")
    assert multi.item() == pytest.approx(0.0, abs=1e-6)


def test_mixed_loss_ignores_unlabeled_rows():
    student = torch.tensor([[1.0, 0.0], [0.0, 1.0], [2.0, 0.0]])
    teacher = torch.tensor([[0.0, 1.0], [0.0, 1.0], [1.0, 0.0]])
    labels = torch.tensor([1, -1, 0])
    ce = torch.nn.functional.cross_entropy(student[[0, 2]], labels[[0, 2]])
    kd = distillation_loss(student, teacher)
    assert mixed_loss(student, teacher, labels, alpha=0.3).item() == pytest.approx(
        (0.3 * kd + 0.7 * ce).item(), rel=1e-6
    )
    assert mixed_loss(student, None, torch.tensor([-1, -1, -1]), alpha=0.0).item() == 0.0
    with pytest.raises(ValueError, match="teacher"):
        mixed_loss(student, None, labels, alpha=0.5)


def test_table_decay_and_norm_cap_touch_only_the_updated_rows(tokenizer):
    """`embedding_weight_decay` shrinks the rows a step updates by lr x decay before the update (AdamW's decoupled
    decay) and `embedding_max_norm` scales the updated rows down to that norm; rows no text touched never change."""
    base = make_model(tokenizer, feature_dropout=0.0, classifier_dropout=0.0)  # table rows of norm about 4
    base.get_input_embeddings().sparse = True
    start = base.get_input_embeddings().weight.detach().clone()
    enc = tokenizer.encode_bags(["the movie is good", "bad film"])
    touched = torch.tensor(sorted(set(enc["input_ids"].tolist())))
    untouched = torch.tensor(sorted(set(range(len(start))) - set(touched.tolist())))

    def one_step(**table_options):
        model = copy.deepcopy(base)
        optimizer = MixedSparseAdamW(param_groups(model, 0.01, embedding_lr=0.1, **table_options), lr=1e-3)
        model(**enc, labels=torch.tensor([1, 0])).loss.backward()
        optimizer.step()
        return model.get_input_embeddings().weight.detach()

    plain, decayed = one_step(), one_step(embedding_weight_decay=0.5)
    torch.testing.assert_close(decayed[touched] - plain[touched], -0.1 * 0.5 * start[touched])
    torch.testing.assert_close(decayed[untouched], start[untouched])

    capped = one_step(embedding_max_norm=0.5)
    assert (capped[touched].norm(dim=1) <= 0.5 + 1e-5).all() and (plain[touched].norm(dim=1) > 0.5).all()
    torch.testing.assert_close(capped[touched] / capped[touched].norm(dim=1, keepdim=True),
                               plain[touched] / plain[touched].norm(dim=1, keepdim=True))  # fmt: skip
    torch.testing.assert_close(capped[untouched], start[untouched])
