"""Size limits: one value object per store, checked before a byte is sent.

The write side refuses what is too large with :class:`ValidationError` naming the field
and the limit; the read side decodes with the same numbers (a stored record may be up
to ``max_record_bytes``), so whatever a store accepted it can read back.
"""

from __future__ import annotations

from dataclasses import dataclass

from convstore.errors import ValidationError
from convstore.validation import positive_int

__all__ = ["DEFAULT_LIMITS", "HARD_MAX_BYTES", "MIB", "Limits"]

MIB = 1024 * 1024
#: Redis refuses any single argument over ``proto-max-bulk-len`` (512 MiB by default).
HARD_MAX_BYTES = 512 * MIB


@dataclass(frozen=True, slots=True)
class Limits:
    """Largest values a store writes (and therefore reads), in bytes or messages.

    ``max_content_bytes``: one message's content, UTF-8. ``max_metadata_bytes``: one
    metadata dict (a message's, a session's or a participant's), msgpack-encoded.
    ``max_record_bytes``: one stored record (a history entry with its message id, a
    session record, an adapter checkpoint); also the largest record reads accept.
    ``max_batch_messages`` and ``max_batch_bytes``: one ``append_many`` call.
    """

    max_content_bytes: int = 8 * MIB
    max_metadata_bytes: int = 1 * MIB
    max_record_bytes: int = 16 * MIB
    max_batch_messages: int = 10_000
    max_batch_bytes: int = 64 * MIB

    def __post_init__(self) -> None:
        for name in self.__dataclass_fields__:
            positive_int(getattr(self, name), name)
        for name in ("max_content_bytes", "max_metadata_bytes"):
            if getattr(self, name) > self.max_record_bytes:
                raise _inconsistent(name, "max_record_bytes", self.max_record_bytes)
        if self.max_record_bytes > self.max_batch_bytes:
            raise _inconsistent("max_record_bytes", "max_batch_bytes", self.max_batch_bytes)
        if self.max_batch_bytes > HARD_MAX_BYTES:
            raise _inconsistent("max_batch_bytes", "Redis' proto-max-bulk-len", HARD_MAX_BYTES)


def _inconsistent(name: str, other: str, value: int) -> ValidationError:
    return ValidationError(f"{name} cannot exceed {other} ({value})", field=name)


DEFAULT_LIMITS = Limits()
