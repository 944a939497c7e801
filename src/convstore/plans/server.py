"""Which server is on the other end and what it can do: one plan, run once at first use.

``HELLO`` (Redis >= 6, Valkey, fakeredis) names the server and its version. ``INFO`` then
says whether the append-only file is on (``aof_enabled`` of ``INFO persistence``, not
``CONFIG GET``, which managed services often block) and whether cluster mode is on.
Valkey reports ``redis_version:7.2.4`` for compatibility: its own name and version come
from ``server_name`` and ``valkey_version``. fakeredis answers ``HELLO`` as ``fakeredis``
(its package version) but has no ``INFO``: it is described without asking for one.
Replies are read whether redis-py parsed them (RESP3 maps, INFO dicts) or not (RESP2
pair lists, raw INFO text); anything else raises :class:`UnexpectedReply`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from convstore.errors import UnexpectedReply
from convstore.plans.config import StoreConfig
from convstore.plans.steps import Call, Plan

__all__ = ["ServerInfo", "parse_hello", "parse_info", "parse_version", "server_info"]

FAKEREDIS = "fakeredis"
_VERSION = re.compile(r"^(\d+)\.(\d+)(?:\.(\d+))?")


@dataclass(frozen=True, slots=True)
class ServerInfo:
    """The server's identity and the capabilities convstore can use.

    ``name`` is ``"redis"``, ``"valkey"``, ``"fakeredis"`` or whatever the server calls
    itself; ``version`` is the server's own version (fakeredis: the package's version).
    """

    name: str
    version: tuple[int, int, int]
    mode: str
    cluster: bool
    aof_enabled: bool
    waitaof: bool
    client_setinfo: bool
    hash_field_expiry: bool

    @property
    def emulated(self) -> bool:
        """True for fakeredis: an in-process emulation, not a server."""
        return self.name == FAKEREDIS

    @property
    def version_string(self) -> str:
        return ".".join(map(str, self.version))


def _text(value: Any, what: str) -> str:
    if isinstance(value, bytes):
        try:
            return value.decode()
        except UnicodeDecodeError:
            raise UnexpectedReply(f"{what} is not UTF-8: {value[:80]!r}") from None
    if isinstance(value, str):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    raise UnexpectedReply(f"{what} should be text, got {type(value).__name__}: {value!r:.80}")


def parse_version(value: Any, what: str = "the server version") -> tuple[int, int, int]:
    """``"7.0.15"`` -> ``(7, 0, 15)``; a suffix such as ``-rc1`` is ignored."""
    text = _text(value, what)
    found = _VERSION.match(text.strip())
    if found is None:
        raise UnexpectedReply(f"{what} is not a version number: {text!r:.80}")
    major, minor, patch = found.groups()
    return int(major), int(minor), int(patch or 0)


def parse_hello(reply: Any) -> dict[str, Any]:
    """A ``HELLO`` reply (RESP3 map or RESP2 flat list) as a dict with text keys."""
    if isinstance(reply, Mapping):
        items = list(reply.items())
    elif isinstance(reply, list | tuple) and len(reply) % 2 == 0:
        items = list(zip(reply[::2], reply[1::2], strict=True))
    else:
        raise UnexpectedReply(
            f"HELLO replied with an unreadable {type(reply).__name__}: {reply!r:.80}"
        )
    found = {_text(key, "a HELLO field name"): value for key, value in items}
    for field in ("server", "version"):
        if field not in found:
            raise UnexpectedReply(f"HELLO reply has no {field!r} field: {sorted(found)}")
    _text(found["server"], "HELLO server")
    parse_version(found["version"], "HELLO version")  # garbage is refused before INFO is asked
    return found


def parse_info(reply: Any) -> dict[str, Any]:
    """An ``INFO`` reply (raw text, or the dict redis-py makes of it) as a dict."""
    if isinstance(reply, Mapping):
        return {_text(key, "an INFO field name"): value for key, value in reply.items()}
    text = _text(reply, "the INFO reply")
    fields: dict[str, Any] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        key, colon, value = line.partition(":")
        if not colon or not key:
            raise UnexpectedReply(f"INFO line {number} is not 'field:value': {line!r:.80}")
        fields[key] = value
    return fields


def _flag(fields: Mapping[str, Any], name: str) -> bool:
    """An INFO 0/1 field (redis-py hands back ints, raw text has strings); absent is False."""
    value = fields.get(name, 0)
    if isinstance(value, bytes | str):
        value = _text(value, f"INFO {name}").strip()
    if value in (0, "0"):
        return False
    if value in (1, "1"):
        return True
    raise UnexpectedReply(f"INFO {name} should be 0 or 1, got {value!r:.80}")


def describe(hello: Mapping[str, Any], info: Mapping[str, Any] | None) -> ServerInfo:
    """Capabilities from the parsed replies (``info`` is None for fakeredis, which has none)."""
    name = _text(hello["server"], "HELLO server").strip().lower()
    version = parse_version(hello["version"], "HELLO version")
    mode = _text(hello.get("mode", "standalone"), "HELLO mode").strip().lower()
    if info is not None:
        if "server_name" in info:  # Valkey 7.2.5+ (its HELLO said "redis" before 8.0)
            name = _text(info["server_name"], "INFO server_name").strip().lower()
        if "valkey_version" in info:
            version = parse_version(info["valkey_version"], "INFO valkey_version")
    if name == FAKEREDIS:
        return ServerInfo(name, version, mode, False, False, False, True, False)
    assert info is not None, "a real server is described from its INFO"
    cluster = mode == "cluster" or _flag(info, "cluster_enabled")
    since_7_2 = version >= (7, 2, 0)
    field_expiry = version >= ((9, 0, 0) if name == "valkey" else (7, 4, 0))
    aof = _flag(info, "aof_enabled")
    return ServerInfo(name, version, mode, cluster, aof, since_7_2, since_7_2, field_expiry)


def server_info(config: StoreConfig) -> Plan[ServerInfo]:
    """Ask the server who it is (HELLO, then INFO unless it is fakeredis)."""
    hello = parse_hello((yield Call(("HELLO",), any_node=True)))
    if _text(hello["server"], "HELLO server").strip().lower() == FAKEREDIS:
        return describe(hello, None)
    return describe(hello, parse_info((yield Call(("INFO",), any_node=True))))
