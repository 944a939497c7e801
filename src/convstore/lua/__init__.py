"""Lua scripts: every write is one script, so one round trip and atomic.

Modules: ``core`` (:class:`Script`, the prelude, the layout version and the common
arguments every session script takes), ``sessions``, ``messages``, ``contextengine``,
and the scripts of the features built on them: ``inbox``, ``transfer``, ``edits``,
``checkpoints`` (LangGraph), ``adk``.
"""

from convstore.lua.contextengine import CE_COMPACT, CE_PUT, CE_UPDATE
from convstore.lua.core import INDEX_RESOLUTION_US, LAYOUT_VERSION, PRELUDE, Script, script
from convstore.lua.messages import APPEND, CLEAR, COUNT, DELETE_MESSAGE
from convstore.lua.sessions import DELETE, LIST, SAVE, SET_RETENTION, SUGGEST, TOUCH

__all__ = [
    "APPEND",
    "CE_COMPACT",
    "CE_PUT",
    "CE_UPDATE",
    "CLEAR",
    "COUNT",
    "DELETE",
    "DELETE_MESSAGE",
    "INDEX_RESOLUTION_US",
    "LAYOUT_VERSION",
    "LIST",
    "PRELUDE",
    "SAVE",
    "SET_RETENTION",
    "SUGGEST",
    "TOUCH",
    "Script",
    "script",
]
