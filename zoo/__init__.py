"""zenfx's zoo, behind ``zoo:NAME`` specs: search seeds, model families, Zen-NAS's released ZenNets
(and its block language, :mod:`zenfx.zoo.zennas`), networks zenfx's own search found, and the
NAS-Bench-201 / NATS-Bench-SSS benchmark networks. ``zenfx zoo`` lists the entries."""

from .registry import KINDS, ZooEntry, get_entry, list_entries

__all__ = ["KINDS", "ZooEntry", "get_entry", "list_entries"]
