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
    """Entries by name, listed in registration order, or by ``order(name, entry)`` (a sort
    key; ties keep registration order) when given."""

    def __init__(self, kind: str, order: Callable[[str, Any], Any] | None = None):
        self.kind = kind
        self.order = order
        self._entries: dict[str, Any] = {}
        self._descriptions: dict[str, str] = {}
        self._listeners: list[Callable[[str, Any], None]] = []

    def register(self, name: str, obj: Any = None, *, description: str) -> Callable | Any:
        """Register ``obj`` under ``name``; usable as ``@REG.register(name, description=...)``."""

        def add(o):
            if name in self._entries:
                raise KeyError(f"{self.kind} '{name}' is registered twice")
            self._entries[name] = o
            self._descriptions[name] = description
            for listener in self._listeners:
                listener(name, o)
            return o

        return add if obj is None else add(obj)

    def subscribe(self, listener: Callable[[str, Any], None]) -> None:
        """Call ``listener(name, entry)`` after each later registration."""
        self._listeners.append(listener)

    def get(self, name: str) -> Any:
        try:
            return self._entries[name]
        except KeyError:
            raise UsageError(
                f"unknown {self.kind} '{name}'; choose from: {', '.join(self.names())}"
            ) from None

    def names(self, pattern: str = "*") -> list[str]:
        return [n for n in self if fnmatch.fnmatch(n, pattern)]

    def description(self, name: str) -> str:
        self.get(name)
        return self._descriptions[name]

    def __contains__(self, name: str) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        if self.order is None:
            return iter(self._entries)
        return iter(sorted(self._entries, key=lambda n: self.order(n, self._entries[n])))

    def __len__(self) -> int:
        return len(self._entries)
