"""Name -> object registries, in the spirit of timm's ``register_model`` and mmengine's Registry.

Each entry is registered where it is defined, with a one-line description, so adding a
dataset, backbone, loss or method never edits a central list.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable, Iterator
from typing import Any

from dcbench.core.errors import UsageError


class Registry:
    def __init__(self, kind: str):
        self.kind = kind
        self._entries: dict[str, Any] = {}
        self._descriptions: dict[str, str] = {}

    def register(self, name: str, obj: Any = None, *, description: str) -> Callable | Any:
        """Register ``obj`` under ``name``; usable as ``@REG.register(name, description=...)``."""

        def add(o):
            if name in self._entries:
                raise KeyError(f"{self.kind} '{name}' is registered twice")
            self._entries[name] = o
            self._descriptions[name] = description
            return o

        return add if obj is None else add(obj)

    def get(self, name: str) -> Any:
        try:
            return self._entries[name]
        except KeyError:
            raise UsageError(
                f"unknown {self.kind} '{name}'; choose from: {', '.join(self.names())}"
            ) from None

    def names(self, pattern: str = "*") -> list[str]:
        return [n for n in self._entries if fnmatch.fnmatch(n, pattern)]

    def description(self, name: str) -> str:
        self.get(name)
        return self._descriptions[name]

    def __contains__(self, name: str) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)
