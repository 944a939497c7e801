"""Field lists of the models, derived from their dataclass definitions.

The three models' ``to_dict``/``from_dict``, the codec and the plans all need "which
fields", "which are required", "which go into routing metadata". They read them from
here, computed with :func:`dataclasses.fields`, so adding a field to a model is one edit.
"""

from __future__ import annotations

import copy
import dataclasses
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

__all__ = ["ModelFields", "model_fields", "plain", "present"]


@dataclass(frozen=True, slots=True)
class ModelFields:
    """The spec fields of one model (keyword-only extras such as ``revision`` excluded)."""

    names: tuple[str, ...]  # in definition order: the keys of to_dict()
    required: tuple[str, ...]  # no default and not Optional: from_dict cannot do without them
    defaulted: frozenset[str]  # have a default: left out of from_dict when absent or None
    datetimes: tuple[str, ...]  # fields holding a datetime (ISO strings in to_dict)


def _optional(hint: Any) -> bool:
    origin = typing.get_origin(hint)
    return (origin is typing.Union or origin is types.UnionType) and type(None) in typing.get_args(
        hint
    )


def model_fields(cls: type) -> ModelFields:
    """:class:`ModelFields` of a dataclass, from its fields and resolved type hints."""
    hints = typing.get_type_hints(cls)
    spec = [f for f in dataclasses.fields(cls) if not f.kw_only]
    defaulted = frozenset(
        f.name
        for f in spec
        if f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING
    )
    required = tuple(
        f.name for f in spec if f.name not in defaulted and not _optional(hints[f.name])
    )
    datetimes = tuple(f.name for f in spec if hints[f.name] is datetime)
    return ModelFields(tuple(f.name for f in spec), required, defaulted, datetimes)


def plain(value: Any) -> Any:
    """A field value as ``to_dict`` gives it: enums as str, datetimes ISO, deep copies."""
    if isinstance(value, StrEnum):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    to_dict = getattr(value, "to_dict", None)
    if callable(to_dict):
        return to_dict()
    return copy.deepcopy(value)


def present(data: Mapping[str, Any], fields: ModelFields) -> dict[str, Any]:
    """Constructor arguments from a dict: a missing or None defaulted field is left out
    (its default applies), a missing optional one is None; values are deep copies."""
    return {
        name: copy.deepcopy(data.get(name))
        for name in fields.names
        if name not in fields.defaulted or data.get(name) is not None
    }
