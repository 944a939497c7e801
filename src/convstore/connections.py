"""Building and checking Redis clients: URLs, the embedded server, cluster detection."""

from __future__ import annotations

from typing import Any

import redis
import redis.asyncio
import redis.asyncio.cluster
import redis.cluster

from convstore.errors import ConfigurationError

__all__ = ["client_from_url", "embedded_client", "inspect_client"]

#: Applied unless the caller passes its own: never hang forever on a dead server.
DEFAULT_CLIENT_OPTIONS: dict[str, Any] = {"socket_timeout": 5.0, "socket_connect_timeout": 5.0}

_CLUSTER_TYPES = (redis.cluster.RedisCluster, redis.asyncio.cluster.RedisCluster)


def client_from_url(url: str, *, use_async: bool, cluster: bool = False, **options: Any) -> Any:
    """A client for ``redis://``, ``rediss://`` or ``unix://`` URLs (credentials included)."""
    if options.get("decode_responses"):
        raise ConfigurationError("convstore stores msgpack bytes: decode_responses must be False")
    options = {**DEFAULT_CLIENT_OPTIONS, **options, "decode_responses": False}
    if cluster:
        cluster_cls = (
            redis.asyncio.cluster.RedisCluster if use_async else redis.cluster.RedisCluster
        )
        return cluster_cls.from_url(url, **options)
    client_cls = redis.asyncio.Redis if use_async else redis.Redis
    return client_cls.from_url(url, **options)


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


def inspect_client(client: Any) -> bool:
    """Reject clients convstore cannot use; return True for a Redis Cluster client."""
    if not hasattr(client, "execute_command") or not hasattr(client, "register_script"):
        raise ConfigurationError(
            f"expected a redis-py client (redis.Redis, RedisCluster or their asyncio forms), "
            f"got {type(client).__name__}"
        )
    if _connection_kwargs(client).get("decode_responses"):
        raise ConfigurationError(
            "this client has decode_responses=True; convstore stores msgpack bytes and needs "
            "a client created with decode_responses=False"
        )
    return isinstance(client, _CLUSTER_TYPES)
