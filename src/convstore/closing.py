"""``close``/``aclose`` and the ``with`` block of a blocking owner of connections, from its
one ``close`` (the blocking store and the blocking inbox and follower iterators)."""

from __future__ import annotations

from types import TracebackType
from typing import Self

__all__ = ["Closeable"]


class Closeable:
    """Subclasses define ``close``; ``aclose`` and the context manager follow from it."""

    def close(self) -> None:
        raise NotImplementedError

    async def aclose(self) -> None:
        """The same as :meth:`close`, awaitable, so sync and async owners share ``close``/``aclose``."""
        self.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
