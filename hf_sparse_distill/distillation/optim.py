"""The paper's hybrid optimizer as one `torch.optim.Optimizer`, and its learning-rate schedule.

The embedding table gets SparseAdam's lazy update (moments and weights change only for rows that received a
gradient), optionally with decoupled weight decay and a cap on the L2 norm of those rows only; the dense head gets
AdamW. Being a single optimizer, it works with one
`accelerate` wrapper, one scheduler, one gradient scaler and `save_state` / `load_state`.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.optim.lr_scheduler import LambdaLR


class MixedSparseAdamW(torch.optim.AdamW):
    """AdamW for parameter groups with `sparse=False`; SparseAdam (as `torch.optim.SparseAdam`) for `sparse=True`.

    A sparse group's gradient may be sparse (the usual case) or dense (e.g. max pooling, which has no sparse
    gradient); a dense gradient is restricted to its non-zero rows, so the update stays lazy either way. A sparse
    group's `weight_decay` (default 0) shrinks the rows it updates by `lr * weight_decay` before the update (AdamW's
    decoupled decay, applied when a row is touched: rows that never occur are left alone), and its `max_norm`
    (default None) scales each updated row whose L2 norm exceeds it back to that norm.
    """

    def __init__(self, params, lr: float = 1e-3, betas=(0.9, 0.999), eps: float = 1e-8, weight_decay: float = 0.01):
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay)
        for group in self.param_groups:
            group.setdefault("sparse", False)
            group.setdefault("max_norm", None)

    @torch.no_grad()
    def step(self, closure=None):
        """One update: SparseAdam on the rows that got a gradient (sparse groups), AdamW on the rest."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        stashed = []
        for group in self.param_groups:
            if not group["sparse"]:
                continue
            for param in group["params"]:
                if param.grad is not None:
                    self._sparse_adam(param, group)
                    stashed.append((param, param.grad))
                    param.grad = None  # AdamW skips parameters without gradient
        try:
            super().step()
        finally:
            for param, grad in stashed:
                param.grad = grad
        return loss

    def _sparse_adam(self, param: torch.Tensor, group: dict) -> None:
        grad = param.grad
        if grad.is_sparse:
            grad = grad.coalesce()
            rows, values = grad.indices()[0], grad.values()
        else:
            rows = grad.abs().sum(dim=tuple(range(1, grad.dim()))).nonzero().squeeze(1)
            values = grad[rows]
        state = self.state[param]
        if not state:
            state["step"] = torch.tensor(0.0)
            state["exp_avg"] = torch.zeros_like(param, memory_format=torch.preserve_format)
            state["exp_avg_sq"] = torch.zeros_like(param, memory_format=torch.preserve_format)
        state["step"] += 1
        step = state["step"].item()
        beta1, beta2 = group["betas"]
        exp_avg = state["exp_avg"].index_select(0, rows).mul_(beta1).add_(values, alpha=1 - beta1)
        exp_avg_sq = state["exp_avg_sq"].index_select(0, rows).mul_(beta2).addcmul_(values, values, value=1 - beta2)
        state["exp_avg"].index_copy_(0, rows, exp_avg)
        state["exp_avg_sq"].index_copy_(0, rows, exp_avg_sq)
        step_size = group["lr"] * math.sqrt(1 - beta2**step) / (1 - beta1**step)
        if group["weight_decay"]:
            param.index_copy_(0, rows, param.index_select(0, rows).mul_(1 - group["lr"] * group["weight_decay"]))
        param.index_add_(0, rows, exp_avg.div_(exp_avg_sq.sqrt_().add_(group["eps"])), alpha=-step_size)
        max_norm = group.get("max_norm")  # (absent from the optimizer state of checkpoints made before it existed)
        if max_norm is not None:
            updated = param.index_select(0, rows)
            norms = updated.norm(dim=tuple(range(1, updated.dim())), keepdim=True)
            param.index_copy_(0, rows, updated.mul_((max_norm / norms.clamp(min=1e-12)).clamp(max=1.0)))


def param_groups(
    model: nn.Module,
    weight_decay: float,
    embedding_lr: float | None = None,
    embedding_weight_decay: float = 0.0,
    embedding_max_norm: float | None = None,
) -> list[dict]:
    """Three groups: the embedding table (sparse; its own learning rate if `embedding_lr` is given, its own decay
    and row-norm cap of the rows it updates), dense weights (decay) and biases (no decay)."""
    table = model.get_input_embeddings().weight
    decay, no_decay = [], []
    for param in model.parameters():
        if param is table or not param.requires_grad:
            continue
        (no_decay if param.dim() < 2 else decay).append(param)
    return [
        {
            "params": [table],
            "sparse": True,
            "weight_decay": embedding_weight_decay,
            "max_norm": embedding_max_norm,
            **({"lr": embedding_lr} if embedding_lr else {}),
        },
        {"params": decay, "sparse": False, "weight_decay": weight_decay},
        {"params": no_decay, "sparse": False, "weight_decay": 0.0},
    ]


def linear_warmup_decay(optimizer: torch.optim.Optimizer, total_steps: int, warmup_ratio: float) -> LambdaLR:
    """Linear warm-up over `warmup_ratio` of the steps, then linear decay to 0 (fairseq `polynomial_decay`)."""
    warmup = int(round(total_steps * warmup_ratio))

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return max(0.0, (total_steps - step) / max(1, total_steps - warmup))

    return LambdaLR(optimizer, factor)
