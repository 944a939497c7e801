"""What the sync and async repositories share: their base class and the message and
moment types their methods take (``repositories.py``, ``async_repositories.py``)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from convstore.models import AgentCommunicationMessage
from convstore.plans import StoreConfig

__all__ = ["Message", "Moment", "Repository"]

#: A message to append: the spec's model, or a ContextEngine dict.
Message = AgentCommunicationMessage | Mapping[str, Any]
#: A point in time: a datetime, an ISO 8601 string, or None (no bound).
Moment = datetime | str | None


class Repository:
    """A driver and the store's configuration: each method of a repository builds a plan
    (``plans``) and hands it to the driver."""

    def __init__(self, driver: Any, config: StoreConfig) -> None:
        self._driver = driver
        self._config = config
