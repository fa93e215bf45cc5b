"""Tail averaging of a student's weights: the mean of the weights at the last evaluations of a stage (checkpoint
averaging, Vaswani et al. 2017; SWA, Izmailov et al. 2018). The mean is kept in place (one copy of the weights, no
sum of several), saved in each resumable checkpoint as safetensors, and swapped into the model (references
exchanged: nothing is copied for float32 weights) to be evaluated as one more candidate at the end of the stage."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

AVERAGE_FILE = "weight_average.safetensors"


class WeightAverage:
    """The running mean of a model's parameters at `steps`.

    Args:
        steps: The steps whose weights are averaged.
    """

    def __init__(self, steps: list[int]):
        self.steps = sorted(steps)
        self.count = 0
        self.mean: dict[str, torch.Tensor] = {}

    def add(self, model: torch.nn.Module, step: int) -> None:
        """Fold the model's weights into the mean if `step` is one of the averaged steps."""
        if step not in self.steps:
            return
        self.count += 1
        with torch.no_grad():
            for name, param in model.named_parameters():
                if name not in self.mean:
                    self.mean[name] = param.detach().to(torch.float32, copy=True)
                else:
                    self.mean[name].mul_(1 - 1 / self.count).add_(param.detach().float(), alpha=1 / self.count)

    def save(self, folder: Path) -> None:
        """Write the mean so far into `folder` (a checkpoint being written); nothing before the first step."""
        if self.count:
            save_file(self.mean, str(folder / AVERAGE_FILE), metadata={"count": str(self.count)})

    def load(self, folder: Path, device: torch.device | str = "cpu") -> None:
        """Read the mean a checkpoint holds (none: nothing averaged yet) onto the weights' `device`."""
        path = folder / AVERAGE_FILE
        if not path.exists():
            self.mean, self.count = {}, 0
            return
        with safe_open(str(path), "pt") as f:
            self.count = int(f.metadata()["count"])
        self.mean = load_file(str(path), device=str(device))

    @contextmanager
    def swapped_into(self, model: torch.nn.Module) -> Iterator[None]:
        """The model holds the mean inside the block, its own weights again after it."""
        params = dict(model.named_parameters())
        if set(params) != set(self.mean):
            raise RuntimeError("the weight average does not have the model's parameters")
        originals = {name: param.data for name, param in params.items()}
        for name, param in params.items():
            param.data = self.mean[name].to(param.device, param.dtype)
        try:
            yield
        finally:
            for name, param in params.items():
                param.data = originals[name]
