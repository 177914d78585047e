"""Structures, labels, readers and the campaign store."""

from potforge.data.readers import read_many, read_structures, write_extxyz
from potforge.data.structures import attach_labels, labels, structure_hash

__all__ = [
    "attach_labels",
    "labels",
    "read_many",
    "read_structures",
    "structure_hash",
    "write_extxyz",
]
