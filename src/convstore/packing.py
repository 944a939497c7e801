"""msgpack's low level for :mod:`convstore.codec`: what can be stored, packing within the
limits, and unpacking hostile bytes into plain Python values (only :class:`CodecError`).

Values msgpack hands back (``raw=False``, ``strict_map_key=True``, only the Timestamp
extension) are already of the storable types (str, bytes, int within 64 bits, float, bool,
None, aware datetime, list, dict) except for two things: map keys may be bytes, and nesting
may reach msgpack's own limit (1,024 levels, deep enough to break ``repr`` or ``deepcopy``).
:func:`certainly_plain` rules both out from the raw bytes, so readers walk a decoded value
(:func:`check_storable`) only when it cannot.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

import msgpack

from convstore.errors import CodecError
from convstore.limits import DEFAULT_LIMITS, Limits
from convstore.models import to_utc
from convstore.validation import within_limit

__all__ = [
    "CONTAINER_HEADS",
    "MAX_DEPTH",
    "MAX_PAYLOAD_BYTES",
    "NOT_HEADS",
    "certainly_plain",
    "check_storable",
    "check_text_size",
    "pack_sized",
    "packb",
    "reject_extension",
    "unpack_value",
]

MAX_PAYLOAD_BYTES = DEFAULT_LIMITS.max_record_bytes
MAX_DEPTH = 64
_INT_MIN, _INT_MAX = -(2**63), 2**64 - 1
_SCALARS = (str, bool, float, bytes, type(None))
_PLAIN_SCALARS = frozenset((str, bool, float, bytes, type(None), datetime))

#: First bytes of msgpack container headers (fixmap, fixarray, array 16/32, map 16/32) and
#: of bin headers (bin 8/16/32, the only way bytes, and so a bytes map key, is encoded).
CONTAINER_HEADS = bytes([*range(0x80, 0xA0), *range(0xDC, 0xE0)])
_BIN_HEADS = bytes(range(0xC4, 0xC7))
NOT_HEADS = bytes(set(range(256)) - set(CONTAINER_HEADS) - set(_BIN_HEADS))


def certainly_plain(data: bytes, budget: int = MAX_DEPTH) -> bool:
    """True when ``data`` can hold no bytes value and fewer than ``budget`` containers.

    Every container and every bin value starts with a header byte from a few known values,
    so a payload with no bin header byte and under ``budget`` possible container headers
    (string bytes may look like headers: that only makes this answer False more often)
    decodes to a value with only str keys, nested less than ``budget`` deep. One C-level
    pass over the bytes, instead of a Python walk over the decoded value. The readers'
    per-row loop (``plans/reading.py``) inlines the same two steps.
    """
    heads = data.translate(None, NOT_HEADS)
    return len(heads) < budget and not heads.translate(None, CONTAINER_HEADS)


def _plain(value: object, depth: int) -> bool:
    """Fast, path-free form of :func:`check_storable` for exact built-in types (the hot path:
    every message written, and every read the byte scan cannot clear)."""
    kind = type(value)
    if kind in _PLAIN_SCALARS:
        return True
    if kind is int:
        return _INT_MIN <= value <= _INT_MAX  # type: ignore[operator]
    if depth >= MAX_DEPTH:
        return False
    if kind is dict:
        for key in value:  # type: ignore[attr-defined]
            if type(key) is not str:
                return False
        return _all_plain(value.values(), depth + 1)  # type: ignore[attr-defined]
    if kind is list or kind is tuple:
        return _all_plain(value, depth + 1)  # type: ignore[arg-type]
    return False


def _all_plain(items: Iterable[object], depth: int) -> bool:
    """:func:`_plain` of every item; scalars are checked here, without a call each."""
    for item in items:
        kind = type(item)
        if kind in _PLAIN_SCALARS:
            continue
        if kind is int:
            if not _INT_MIN <= item <= _INT_MAX:  # type: ignore[operator]
                return False
        elif not _plain(item, depth):
            return False
    return True


def check_storable(value: object, path: str = "metadata", depth: int = 0) -> None:
    """Raise :class:`CodecError` naming the first path msgpack could not carry faithfully."""
    if _plain(value, depth):
        return
    _check_path(value, path, depth)


def _check_path(value: object, path: str, depth: int) -> None:
    """The slow walk that builds key paths; only reached for subclasses and bad values."""
    if isinstance(value, _SCALARS) or isinstance(value, datetime):
        return
    if isinstance(value, int):
        if not _INT_MIN <= value <= _INT_MAX:
            raise CodecError(f"{path}: integer {value} does not fit in 64 bits", path=path)
        return
    if depth >= MAX_DEPTH:
        raise CodecError(f"{path}: nested deeper than {MAX_DEPTH} levels", path=path)
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise CodecError(
                    f"{path}: keys must be str, got {type(key).__name__} key {key!r}", path=path
                )
            _check_path(item, f"{path}.{key}", depth + 1)
        return
    if isinstance(value, list | tuple):
        for index, item in enumerate(value):
            _check_path(item, f"{path}[{index}]", depth + 1)
        return
    raise CodecError(
        f"{path}: {type(value).__name__} values cannot be stored "
        "(use str, int, float, bool, None, bytes, datetime, list, tuple or dict)",
        path=path,
    )


def _default(value: object) -> object:
    if isinstance(value, datetime):  # msgpack only hands us naive ones
        return to_utc(value)
    raise TypeError(f"cannot pack {type(value).__name__}")


#: One msgpack Packer per thread: building one per call costs more than packing a message.
#: Per thread, because a Packer's buffer is not safe to share (``_default`` runs Python code
#: mid-pack); it resets itself after every call, failed or not.
_PACKERS = threading.local()


def packb(
    payload: Mapping[str, Any] | list[Any],
    *,
    max_bytes: int | None = MAX_PAYLOAD_BYTES,
    field: str = "record",
) -> bytes:
    """Pack a prepared payload; values must already have passed :func:`check_storable`.

    A result over ``max_bytes`` (the store's ``max_record_bytes``; None = unchecked)
    raises :class:`ValidationError` naming ``field``: the readers would refuse it.
    """
    try:
        pack = _PACKERS.pack
    except AttributeError:
        pack = _PACKERS.pack = msgpack.Packer(
            use_bin_type=True, datetime=True, default=_default
        ).pack
    try:
        packed: bytes = pack(payload)
    except (TypeError, ValueError, OverflowError) as exc:
        check_storable(payload, "payload")  # names the path when it can
        raise CodecError(f"payload cannot be encoded: {exc}") from exc
    if max_bytes is not None:
        within_limit(len(packed), max_bytes, field, "max_record_bytes")
    return packed


def pack_sized(
    payload: Mapping[str, Any] | list[Any],
    limits: Limits,
    metadata: Iterable[tuple[Mapping[str, Any], str]],
    field: str = "record",
) -> bytes:
    """Pack, then refuse an oversize metadata dict (by its own name) or record.

    Each metadata dict is measured only when the whole record could be over its limit.
    """
    packed = packb(payload, max_bytes=None)
    if len(packed) > limits.max_metadata_bytes:
        for meta, name in metadata:
            size = len(packb(meta, max_bytes=None))
            within_limit(size, limits.max_metadata_bytes, name, "max_metadata_bytes")
    within_limit(len(packed), limits.max_record_bytes, field, "max_record_bytes")
    return packed


def check_text_size(text: str, limit: int, field: str, limit_name: str) -> None:
    """A str whose UTF-8 form fits ``limit``; encodes only when the length cannot tell."""
    if len(text) > limit:  # refused without copying it: every character is at least a byte
        within_limit(
            len(text), limit, field, limit_name, unit="characters (at least as many bytes)"
        )
    if len(text) * 4 > limit:
        within_limit(len(text.encode("utf-8", "surrogatepass")), limit, field, limit_name)


def reject_extension(code: int, data: bytes) -> object:
    """msgpack's ``ext_hook`` for readers: only the Timestamp extension is accepted."""
    raise CodecError(f"unknown msgpack extension type {code}")


def unpack_value(data: bytes, max_bytes: int = MAX_PAYLOAD_BYTES) -> Any:
    """The msgpack value in ``data`` (a Timestamp comes back as an aware datetime, other
    extensions are refused); the only exception it raises is :class:`CodecError`.

    ``max_bytes`` is the store's ``max_record_bytes``: the same number the writers obey.
    Types are as the module docstring says: bytes keys and deep nesting are still possible.
    """
    if not isinstance(data, bytes | bytearray | memoryview):
        raise CodecError(f"expected bytes, got {type(data).__name__}")
    if len(data) > max_bytes:
        raise CodecError(
            f"payload of {len(data)} bytes exceeds max_record_bytes={max_bytes} "
            "(written by a store with larger limits?)"
        )
    try:
        return msgpack.unpackb(
            data,
            raw=False,
            timestamp=3,
            strict_map_key=True,
            ext_hook=reject_extension,
            use_list=True,
        )
    except CodecError:
        raise
    except Exception as exc:  # msgpack raises many types on hostile input
        raise CodecError(f"not a valid msgpack payload: {type(exc).__name__}: {exc}") from exc
