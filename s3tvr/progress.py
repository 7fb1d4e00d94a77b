"""Progress of long work (dub stages, dataset preparation, training), reported by the CLI."""

from __future__ import annotations

from typing import Callable


class Progress:
    """Stage progress; silent by default. The CLI draws rich bars."""

    def stage(self, name: str, total: int) -> Callable[..., None]:
        """Start stage ``name`` of ``total`` units; returns the function that advances it by one."""
        return lambda *_: None
