"""The ContextEngine adapter's import path since 0.1: see :mod:`convstore.adapters.contextengine`."""

from convstore.adapters.contextengine import *  # noqa: F403 - this module re-exports that one
from convstore.adapters.contextengine import __all__ as __all__
