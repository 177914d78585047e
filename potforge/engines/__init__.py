"""Bridges to the simulation engines potforge evaluates and exports to (LAMMPS).

>>> from potforge.engines import lammps_instance
>>> lmp = lammps_instance(cmdargs=["-log", "none", "-screen", "none"])  # doctest: +SKIP
"""

from __future__ import annotations

from potforge.engines.lammps import (
    LammpsCalculator,
    install_mpi_preload,
    lammps_instance,
    new_lammps,
    preload_mpi,
)

__all__ = [
    "LammpsCalculator",
    "install_mpi_preload",
    "lammps_instance",
    "new_lammps",
    "preload_mpi",
]
