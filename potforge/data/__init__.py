"""Structures, labels, readers and the campaign store."""

from potforge.data.readers import (
    STRESS_ORDERS,
    StressOrder,
    detect_stress_order,
    parse_stress_order,
    read_many,
    read_structures,
    stress_orders,
    write_extxyz,
)
from potforge.data.structures import attach_labels, labels, structure_hash

_LAZY = {  # ase.db costs half a second to import: loaded on first use
    "CANDIDATE_STATUSES": "potforge.data.store",
    "Selection": "potforge.data.store",
    "Store": "potforge.data.store",
    "label_key": "potforge.data.store",
    "Checkpoint": "potforge.data.checkpoint",
    "LoopState": "potforge.data.checkpoint",
    "Stage": "potforge.data.checkpoint",
}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'potforge.data' has no attribute {name!r}")


__all__ = [
    "CANDIDATE_STATUSES",
    "STRESS_ORDERS",
    "Checkpoint",
    "LoopState",
    "Selection",
    "Stage",
    "Store",
    "StressOrder",
    "attach_labels",
    "detect_stress_order",
    "label_key",
    "labels",
    "parse_stress_order",
    "read_many",
    "read_structures",
    "stress_orders",
    "structure_hash",
    "write_extxyz",
]
