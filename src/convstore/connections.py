"""Building and checking Redis clients: URLs, the embedded server, cluster detection."""

from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass
from typing import Any, Literal

import redis
import redis.asyncio
import redis.asyncio.cluster
import redis.asyncio.connection
import redis.cluster
from redis.backoff import NoBackoff
from redis.retry import Retry
from redis.utils import HIREDIS_AVAILABLE

from convstore.errors import ConfigurationError
from convstore.validation import optional_seconds

__all__ = [
    "HIREDIS_AVAILABLE",
    "ClientOptions",
    "HiredisPackingConnection",
    "HiredisPackingSSLConnection",
    "HiredisPackingUnixConnection",
    "NoSocketTimeoutWarning",
    "client_from_url",
    "disable_client_retries",
    "embedded_client",
    "inspect_client",
    "library_info",
    "packing_form",
    "raw_reply_client",
    "socket_timeout",
    "use_hiredis_packing",
]

#: The timeouts every client convstore builds gets: never hang forever on a dead server.
DEFAULT_CLIENT_OPTIONS: dict[str, Any] = {"socket_timeout": 5.0, "socket_connect_timeout": 5.0}

_CLUSTER_TYPES = (redis.cluster.RedisCluster, redis.asyncio.cluster.RedisCluster)
_ASYNC_TYPES = (redis.asyncio.Redis, redis.asyncio.cluster.RedisCluster)


class NoSocketTimeoutWarning(UserWarning):
    """The wrapped client has ``socket_timeout=None``: a dead server can block a call forever."""


@dataclass(frozen=True, slots=True)
class ClientOptions:
    """The redis-py connection options convstore passes on (typed, so a typo fails).

    Timeouts are seconds; ``socket_timeout=None`` means "wait forever" and draws a
    :class:`NoSocketTimeoutWarning`. ``ssl_*`` apply to ``rediss://`` URLs.
    """

    socket_timeout: float | None = 5.0
    socket_connect_timeout: float | None = 5.0
    max_connections: int | None = None
    client_name: str | None = None
    health_check_interval: float = 0.0
    ssl_certfile: str | None = None
    ssl_keyfile: str | None = None
    ssl_ca_certs: str | None = None
    ssl_cert_reqs: Literal["none", "optional", "required"] | None = None
    ssl_check_hostname: bool | None = None

    def __post_init__(self) -> None:
        optional_seconds(self.socket_timeout, "socket_timeout")
        optional_seconds(self.socket_connect_timeout, "socket_connect_timeout")

    def redis_kwargs(self, url: str) -> dict[str, Any]:
        """The non-default options as redis-py keyword arguments."""
        kwargs = {k: v for k, v in asdict(self).items() if v is not None}
        kwargs["socket_timeout"] = self.socket_timeout
        kwargs["socket_connect_timeout"] = self.socket_connect_timeout
        if not url.startswith("rediss://"):
            ssl = [k for k in kwargs if k.startswith("ssl_")]
            if ssl:
                raise ConfigurationError(f"{', '.join(ssl)} need a rediss:// URL, got {url!r}")
        return kwargs


def library_info() -> dict[str, Any]:
    """redis-py's own options naming convstore as its upstream library.

    redis-py sends them with ``CLIENT SETINFO`` (Redis/Valkey 7.2+; it ignores the error on
    older servers, where only the client name, sent with ``CLIENT SETNAME``, shows).
    """
    version = _version()
    try:
        from redis.driver_info import DriverInfo  # redis-py >= 7.1
    except ImportError:
        return {"lib_name": f"redis-py(convstore_v{version})"}
    return {"driver_info": DriverInfo().add_upstream_driver("convstore", version)}


def _version() -> str:
    from importlib import metadata

    try:
        return metadata.version("convstore")
    except metadata.PackageNotFoundError:
        return "0"


def _hiredis_pack(self: Any, *args: Any) -> list[bytes]:
    """redis-py's own hiredis packer (``HiredisRespSerializer``, what its blocking client
    uses when hiredis is installed): one C call instead of a Python loop per argument."""
    if _PACKER is None:
        raise ConfigurationError(
            "HiredisPackingConnection needs hiredis: pip install 'convstore[hiredis]'"
        )
    packed: list[bytes] = _PACKER.pack(*args)
    return packed


_PACKER: Any = None
if HIREDIS_AVAILABLE:
    from redis.connection import HiredisRespSerializer

    _PACKER = HiredisRespSerializer()


class HiredisPackingConnection(redis.asyncio.connection.Connection):
    """An asyncio connection that packs commands with hiredis.

    redis-py's asyncio connections pack every argument in Python even when hiredis is
    installed (it only parses replies there), which is a fifth of the client's time per
    async append. ``AsyncConversationStore.from_url`` uses these classes when the
    ``hiredis`` extra is installed; :func:`use_hiredis_packing` sets them on a client of
    your own. Needs hiredis (``pip install 'convstore[hiredis]'``).
    """

    pack_command = _hiredis_pack


class HiredisPackingSSLConnection(redis.asyncio.connection.SSLConnection):
    """:class:`HiredisPackingConnection` for ``rediss://`` URLs."""

    pack_command = _hiredis_pack


class HiredisPackingUnixConnection(redis.asyncio.connection.UnixDomainSocketConnection):
    """:class:`HiredisPackingConnection` for ``unix://`` URLs."""

    pack_command = _hiredis_pack


_STANDARD = (
    (redis.asyncio.connection.SSLConnection, HiredisPackingSSLConnection),
    (redis.asyncio.connection.UnixDomainSocketConnection, HiredisPackingUnixConnection),
    (redis.asyncio.connection.Connection, HiredisPackingConnection),
)
_PACKING = frozenset(packing for _, packing in _STANDARD)
_DERIVED: dict[type[Any], type[Any]] = {}


def packing_form(cls: type[Any]) -> type[Any]:
    """The hiredis-packing form of the asyncio connection class ``cls``: one of the three
    classes above for redis-py's own, else a subclass of ``cls`` (made once) that keeps
    whatever it adds and packs with hiredis."""
    if cls in _PACKING or getattr(cls, "pack_command", None) is _hiredis_pack:
        return cls
    for base, packing in _STANDARD:
        if cls is base:
            return packing
    if cls not in _DERIVED:
        _DERIVED[cls] = type(
            f"HiredisPacking{cls.__name__}", (cls,), {"pack_command": _hiredis_pack}
        )
    return _DERIVED[cls]


def use_hiredis_packing(client: Any) -> Any:
    """Make the new connections of an asyncio ``redis.asyncio.Redis`` pack commands with
    hiredis; returns the client. Call it before the client's first command (connections
    already open keep packing in Python until they are replaced). Needs the ``hiredis``
    extra: :class:`~convstore.errors.ConfigurationError` without it."""
    if not HIREDIS_AVAILABLE:
        raise ConfigurationError(
            "packing commands with hiredis needs the hiredis extra: "
            "pip install 'convstore[hiredis]'"
        )
    pool: Any = getattr(client, "connection_pool", None)
    cls = getattr(pool, "connection_class", None)
    if not isinstance(cls, type) or not issubclass(
        cls, redis.asyncio.connection.AbstractConnection
    ):
        raise ConfigurationError(
            f"use_hiredis_packing takes a redis.asyncio.Redis client, got {type(client).__name__}"
        )
    pool.connection_class = packing_form(cls)
    return client


def client_from_url(
    url: str, *, use_async: bool, cluster: bool = False, options: ClientOptions | None = None
) -> Any:
    """A client for ``redis://``, ``rediss://`` or ``unix://`` URLs (credentials included).

    On standalone servers from 7.2 on it shows in ``CLIENT LIST`` with convstore in its
    library name; ``client_name`` (``CLIENT SETNAME``, every version) is opt-in, because an
    ACL user without ``client|setname`` could not connect at all with one.
    """
    kwargs = {**(options or ClientOptions()).redis_kwargs(url), "decode_responses": False}
    if not cluster:
        kwargs.update(library_info())
    if cluster:
        cluster_cls = (
            redis.asyncio.cluster.RedisCluster if use_async else redis.cluster.RedisCluster
        )
        return cluster_cls.from_url(url, **kwargs)
    client_cls = redis.asyncio.Redis if use_async else redis.Redis
    client = client_cls.from_url(url, **kwargs)
    if use_async and HIREDIS_AVAILABLE:  # the blocking client packs with hiredis already
        use_hiredis_packing(client)  # no connection is open yet
    return client


def disable_client_retries(client: Any) -> None:
    """Set redis-py's own retries to 0: it would re-send whatever failed (a coalesced
    pipeline of appends included); the store's :class:`RetryPolicy` is the only one."""
    setter = getattr(client, "set_retry", None)
    if callable(setter):
        setter(Retry(NoBackoff(), 0))


#: Commands whose replies :func:`raw_reply_client` hands back as Redis sent them.
RAW_REPLY_COMMANDS = ("XRANGE", "XREVRANGE")


def _as_sent(response: Any, **_options: Any) -> Any:
    return response


#: The methods a command passes through in redis-py's clients: a class that overrides any
#: of them sees its commands itself, and gets no second client.
_READ_PATH = ("execute_command", "_execute_command", "parse_response")


def _own_read_path(client: Any, base: type) -> bool:
    return any(getattr(type(client), n, None) is not getattr(base, n, None) for n in _READ_PATH)


def raw_reply_client(client: Any) -> Any | None:
    """A second client on ``client``'s own connection pool that skips redis-py's response
    callback of :data:`RAW_REPLY_COMMANDS` (XRANGE rows stay flat ``[id, [field, value,
    ...]]`` lists: building a dict per row costs a long read a fifth of its time), or None
    where that is not safe: a cluster client, a single-connection client, or a class
    that overrides how a command is sent or parsed (instrumentation that must see every
    call).

    The user's client is not changed: the callbacks are set on the second one, which
    shares the pool, and so the connections, retries and settings.
    """
    reader: redis.Redis | redis.asyncio.Redis
    if isinstance(client, redis.Redis):
        single = client.connection is not None  # the blocking client holds its one
        if single or _own_read_path(client, redis.Redis):
            return None
        reader = redis.Redis(connection_pool=client.connection_pool)
    elif isinstance(client, redis.asyncio.Redis):
        if client.single_connection_client or _own_read_path(client, redis.asyncio.Redis):
            return None
        reader = redis.asyncio.Redis(connection_pool=client.connection_pool)
    else:
        return None
    for command in RAW_REPLY_COMMANDS:
        reader.set_response_callback(command, _as_sent)
    return reader


def embedded_client(*, use_async: bool, server: Any = None) -> Any:
    """An in-process Redis (fakeredis with Lua). Pass one ``fakeredis.FakeServer`` to share data."""
    try:
        import fakeredis
    except ImportError:
        raise ConfigurationError(
            "the embedded store needs the 'embedded' extra: pip install 'convstore[embedded]'"
        ) from None
    server = server if server is not None else fakeredis.FakeServer()
    cls = fakeredis.FakeAsyncRedis if use_async else fakeredis.FakeRedis
    return cls(server=server)


def _connection_kwargs(client: Any) -> dict[str, Any]:
    getter = getattr(client, "get_connection_kwargs", None)
    if callable(getter):
        found = getter()
        return dict(found) if isinstance(found, dict) else {}
    pool = getattr(client, "connection_pool", None)
    return dict(getattr(pool, "connection_kwargs", {}) or {})


def socket_timeout(client: Any) -> float | None:
    """The client's ``socket_timeout`` in seconds (None: it waits forever, or unknown)."""
    value = _connection_kwargs(client).get("socket_timeout")
    return float(value) if isinstance(value, int | float) else None


def inspect_client(client: Any, *, use_async: bool | None = None) -> bool:
    """Reject clients convstore cannot use; return True for a Redis Cluster client.

    ``use_async``: the store's kind; a blocking client in the asyncio store (or the
    reverse) is refused here rather than failing at the first call. A client without
    a socket timeout draws a :class:`NoSocketTimeoutWarning`.
    """
    if not hasattr(client, "execute_command") or not hasattr(client, "register_script"):
        raise ConfigurationError(
            f"expected a redis-py client (redis.Redis, RedisCluster or their asyncio forms), "
            f"got {type(client).__name__}"
        )
    is_async = isinstance(client, _ASYNC_TYPES)
    if use_async is not None and is_async != use_async:
        wanted, other = ("AsyncConversationStore", "ConversationStore")
        if not use_async:
            wanted, other = other, wanted
        raise ConfigurationError(
            f"{type(client).__module__}.{type(client).__name__} is "
            f"{'an asyncio' if is_async else 'a blocking'} client: {wanted} needs "
            f"{'redis.asyncio.Redis' if use_async else 'redis.Redis'} (or its RedisCluster); "
            f"use {other} with this client"
        )
    kwargs = _connection_kwargs(client)
    if kwargs.get("decode_responses"):
        raise ConfigurationError(
            "this client has decode_responses=True; convstore stores msgpack bytes and needs "
            "a client created with decode_responses=False"
        )
    if "socket_timeout" in kwargs and kwargs["socket_timeout"] is None:
        warnings.warn(
            "this Redis client has socket_timeout=None: a server that stops answering blocks "
            "a call forever and the store's retry deadline cannot end it; pass "
            "socket_timeout=5.0 (the from_url default) when creating the client",
            NoSocketTimeoutWarning,
            stacklevel=4,
        )
    return isinstance(client, _CLUSTER_TYPES)
