"""Multi-process training of a model whose embedding table has sparse gradients.

NCCL has no sparse all-reduce, so the table is kept out of DistributedDataParallel and its gradient is averaged
here with dense collectives only (all-gather of row indices, all-reduce of the union of rows): the same code is
correct on NCCL (GPUs) and gloo (CPUs), and the optimizer keeps SparseAdam's lazy semantics. (DDP's own
sparse all-reduce works on gloo only; dense table gradients would cost a 4 GB all-reduce per step for a 1M x 1000
table and a 3x slower step on CPU.)
"""

from __future__ import annotations

import torch
import torch.distributed as dist
from accelerate import PartialState
from accelerate.utils import parse_flag_from_env
from torch import nn
from torch.nn.parallel import DistributedDataParallel


def process_state() -> PartialState:
    """The accelerate process state, honouring `ACCELERATE_USE_CPU=1` as `Accelerator` does (a bare
    `PartialState()` ignores it, and several CPU processes would then each run alone, unsynchronised)."""
    return PartialState(cpu=parse_flag_from_env("ACCELERATE_USE_CPU"))


def exclude_from_ddp(model: nn.Module, param: torch.Tensor) -> None:
    """Tell DDP (before `accelerator.prepare`) not to all-reduce or broadcast `param`, nor to broadcast the model's
    integer buffers, at wrap time or before every forward: those of the student (the n-gram orders of a
    `pair_overlap` model) are set before training from the tokenizer every process reads, and never change.
    Floating-point buffers (running statistics, if a model ever has them) are left to DDP."""
    name = next(name for name, p in model.named_parameters() if p is param)
    constant = [buffer_name for buffer_name, buffer in model.named_buffers() if not buffer.is_floating_point()]
    DistributedDataParallel._set_params_and_buffers_to_ignore_for_model(model, [name, *constant])


def broadcast_parameter(param: torch.Tensor, src: int = 0) -> None:
    """Copy `param` from process `src` to all processes (DDP does not do it for an excluded parameter)."""
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        dist.broadcast(param.data, src=src)


def average_sparse_gradient(param: torch.Tensor) -> None:
    """Replace `param.grad` with its mean over all processes, as a coalesced sparse tensor over the union of
    the rows any process touched. Every process must call it (a missing gradient counts as zero)."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return
    world = dist.get_world_size()
    grad = param.grad
    if grad is None:
        rows = torch.zeros(0, dtype=torch.long, device=param.device)
        values = param.new_zeros((0, *param.shape[1:]))
    elif grad.is_sparse:
        grad = grad.coalesce()
        rows, values = grad.indices()[0], grad.values()
    else:
        dist.all_reduce(grad)
        grad.div_(world)
        return
    counts = torch.tensor([rows.numel()], device=param.device)
    all_counts = [torch.zeros_like(counts) for _ in range(world)]
    dist.all_gather(all_counts, counts)
    longest = int(torch.stack(all_counts).max())
    padded = torch.full((longest,), -1, dtype=torch.long, device=param.device)
    padded[: rows.numel()] = rows
    gathered = [torch.empty_like(padded) for _ in range(world)]
    dist.all_gather(gathered, padded)
    union = torch.cat(gathered)
    union = torch.unique(union[union >= 0])
    summed = values.new_zeros((union.numel(), *param.shape[1:]))
    summed[torch.searchsorted(union, rows)] = values
    dist.all_reduce(summed)
    summed.div_(world)
    param.grad = torch.sparse_coo_tensor(union.unsqueeze(0), summed, param.shape, is_coalesced=True)
