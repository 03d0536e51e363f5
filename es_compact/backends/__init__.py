"""Rollout backends behind one interface: serial (here), multiprocessing and Ray."""

from es_compact.backends.base import Backend, make_backend

__all__ = ["Backend", "make_backend"]
