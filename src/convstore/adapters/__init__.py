"""Adapters: other programs' interfaces as thin layers over the store's plans and scripts."""
