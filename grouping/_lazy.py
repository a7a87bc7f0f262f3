"""Lazy package exports (PEP 562): a package names what it re-exports and the submodule each comes
from; the submodule is imported when the name is first read. So ``from grouping.training import
TrainingConfig`` (a pydantic model) does not load torch, and a process that only validates requests
or solves (the API) never pays for it."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping
from typing import Any


def lazy_exports(
    package: str, exports: Mapping[str, str]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """The ``__getattr__`` and ``__dir__`` of ``package``: reading ``name`` imports
    ``{package}.{exports[name]}``, takes ``name`` from it and caches it in the package."""

    def __getattr__(name: str) -> Any:
        if name not in exports:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(f"{package}.{exports[name]}"), name)
        setattr(sys.modules[package], name, value)
        return value

    def __dir__() -> list[str]:
        return sorted({*vars(sys.modules[package]), *exports})

    return __getattr__, __dir__
