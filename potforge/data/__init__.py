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

__all__ = [
    "STRESS_ORDERS",
    "StressOrder",
    "attach_labels",
    "detect_stress_order",
    "labels",
    "parse_stress_order",
    "read_many",
    "read_structures",
    "stress_orders",
    "structure_hash",
    "write_extxyz",
]
