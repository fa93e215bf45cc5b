"""Optional extras (`pip install "hf-sparse-distill[distill]"`, `[hub]`): a clear error when one is missing."""

from __future__ import annotations

from importlib.util import find_spec


class MissingExtraError(ImportError):
    """A part of the package was used whose optional dependencies are not installed."""


def require_extra(extra: str, modules: tuple[str, ...], purpose: str) -> None:
    """Raise `MissingExtraError` naming the extra to install if any of `modules` cannot be imported."""
    missing = [name for name in modules if find_spec(name) is None]
    if missing:
        raise MissingExtraError(
            f"{purpose} needs {', '.join(missing)}: install them with pip install 'hf-sparse-distill[{extra}]'"
        )
