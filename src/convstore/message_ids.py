"""The stored form of message ids: the stream field name and the idempotency-hash key."""

from __future__ import annotations

import re

from convstore.errors import CodecError

__all__ = ["decode_message_id", "encode_message_id"]

_CANONICAL_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def encode_message_id(message_id: str) -> bytes:
    """The stored form of a message id (stream field name and idempotency-hash key).

    A canonical lowercase uuid becomes ``b"\\x00"`` + its 16 bytes (17 instead of 36:
    it is stored twice per message); any other id is ``b"t"`` + its UTF-8 text. The
    first byte tells the two apart, so the encoding is injective.
    """
    if len(message_id) == 36 and _CANONICAL_UUID.fullmatch(message_id):
        return b"\x00" + bytes.fromhex(message_id.replace("-", ""))
    try:
        return b"t" + message_id.encode("utf-8")
    except UnicodeEncodeError:
        raise CodecError("message_id is not valid Unicode text", path="message_id") from None


def decode_message_id(stored: bytes) -> str:
    """Inverse of :func:`encode_message_id`."""
    if len(stored) == 17 and stored[0] == 0:
        h = stored.hex()  # "00" + 32 hex digits (no copy of the 16 bytes first)
        return f"{h[2:10]}-{h[10:14]}-{h[14:18]}-{h[18:22]}-{h[22:]}"
    if stored[:1] == b"t":
        try:
            return stored[1:].decode("utf-8")
        except UnicodeDecodeError:
            pass
    raise CodecError(f"not a stored message id: {stored[:40]!r}")
