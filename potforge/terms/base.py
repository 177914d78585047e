"""What every term of a linear potential provides.

A *linear* term contributes ``E = θ · D(X)`` to the energy: it gives the design rows ``D`` for the
total energy, each force component and each virial component of one structure (:class:`Rows`).
A *fixed* term (e.g. ZBL) has no parameters: it gives energy, forces and virial values that are
subtracted from the labels before fitting and added back at prediction.
Every term also writes itself as LAMMPS ``pair_style``/``pair_coeff`` lines (:class:`LammpsPart`).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from ase import Atoms

from potforge.params import Constraint

MAX_CUTOFF = 20.0
"""Largest cutoff a term takes, Å: beyond it neighbour lists explode (``rcut=1e6`` is a typo
that would otherwise run for hours)."""


@dataclass
class Rows:
    """Design rows of one structure for one term (or a sum of terms, column-concatenated).

    Attributes
    ----------
    energy : ndarray, shape (P,)
        d(total energy)/dθ, eV per unit θ.
    forces : ndarray, shape (N, 3, P)
        d(force)/dθ, eV/Å per unit θ (forces are ``forces @ θ``).
    virial : ndarray, shape (6, P)
        d(virial W)/dθ in ASE Voigt order, eV; stress is ``-W / V``.
    """

    energy: np.ndarray
    forces: np.ndarray
    virial: np.ndarray

    @staticmethod
    def concat(parts: Sequence[Rows], n_atoms: int) -> Rows:
        """Column-wise concatenation of several terms' rows."""
        if not parts:
            return Rows(np.zeros(0), np.zeros((n_atoms, 3, 0)), np.zeros((6, 0)))
        return Rows(
            np.concatenate([p.energy for p in parts]),
            np.concatenate([p.forces for p in parts], axis=-1),
            np.concatenate([p.virial for p in parts], axis=-1),
        )


@dataclass
class Values:
    """Energy (eV), forces (N, 3) eV/Å and virial (6,) eV of a fixed term on one structure."""

    energy: float
    forces: np.ndarray
    virial: np.ndarray

    def __add__(self, other: Values) -> Values:
        """The sum of two fixed contributions on the same structure."""
        return Values(
            self.energy + other.energy, self.forces + other.forces, self.virial + other.virial
        )


@dataclass
class LammpsPart:
    """A term's share of a LAMMPS input.

    Attributes
    ----------
    style : str
        ``pair_style`` arguments of this sub-style, e.g. ``"snap"`` or ``"zbl 4.0 4.8"``.
    coeffs : list of str
        ``pair_coeff`` arguments *without* the sub-style name,
        e.g. ``["* * W.snapcoeff W.snapparam W"]``.
    files : dict of str to str
        File name → contents to write beside the input.
    """

    style: str
    coeffs: list[str]
    files: dict[str, str] = field(default_factory=dict)


class Term(ABC):
    """Base class of all terms.  Hyperparameters are plain constructor keywords (as in sklearn)."""

    kind: ClassVar[str] = ""
    """Short name used in model specs and saved files (``snap``, ``pair``, ``zbl``, ...)."""

    fixed: ClassVar[bool] = False
    """True for a parameter-free reference term."""

    radial: ClassVar[bool] = False
    """True for terms built from a full neighbour list (``rows(atoms, nl)`` accepts one)."""

    parameters: ClassVar[dict[str, Constraint]] = {}
    """The constructor keywords and what each accepts (model specs may set only these)."""

    @classmethod
    def check_param(cls, name: str, value: Any) -> Any:
        """``value`` converted, or a :class:`~potforge.errors.ModelError` naming term and key."""
        return cls.parameters[name].check(f"{cls.kind} {name}", value)

    def __init__(self) -> None:
        self.elements: list[str] = []

    # --- configuration -------------------------------------------------------------------------
    def setup(self, elements: Sequence[str]) -> None:
        """Bind the term to the model's elements (LAMMPS type order)."""
        self.elements = list(elements)

    def prepare(self, structures: Sequence[Atoms]) -> None:  # noqa: B027 - optional hook
        """Data-dependent set-up before the first design (e.g. a density range); default: none."""

    @property
    @abstractmethod
    def cutoff(self) -> float:
        """Largest interaction distance, Å."""

    def get_params(self) -> dict[str, Any]:
        """Constructor keywords (JSON-serialisable) that rebuild this term."""
        return {}

    def state(self) -> dict[str, Any]:
        """Data-dependent state set by :meth:`prepare` (saved with the model)."""
        return {}

    def set_state(self, state: dict[str, Any]) -> None:  # noqa: B027 - optional hook
        """Restore what :meth:`state` returned."""

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({args})"

    # --- evaluation ----------------------------------------------------------------------------
    @property
    def n_params(self) -> int:
        """Number of this term's fitted parameters."""
        return len(self.param_names)

    @property
    def param_names(self) -> list[str]:
        """One readable name per column."""
        return []

    def rows(self, atoms: Atoms) -> Rows:
        """Design rows of a linear term on one structure."""
        raise NotImplementedError(f"{self.kind} is a fixed term; use values()")

    def values(self, atoms: Atoms) -> Values:
        """Energy, forces and virial of a fixed term on one structure."""
        raise NotImplementedError(f"{self.kind} is a linear term; use rows()")

    # --- export --------------------------------------------------------------------------------
    @abstractmethod
    def lammps(self, coef: np.ndarray, prefix: str, offsets: dict[str, float] | None) -> LammpsPart:
        """LAMMPS sub-style for parameters ``coef`` (P,).

        ``offsets`` are per-element constant energies (eV) this term should absorb, or None.
        """

    absorbs_offsets: ClassVar[bool] = False
    """Whether :meth:`lammps` can carry per-element constant energies."""


def check_element_keys(name: str, mapping: dict[str, Any]) -> None:
    """Raise :class:`~potforge.errors.ModelError` when a per-element setting's key is no element.

    Parameters
    ----------
    name : str
        The setting, e.g. ``"snap radii"``.
    mapping : dict
        Element symbol → value.
    """
    from ase.data import chemical_symbols

    from potforge.errors import ModelError

    for key in mapping:
        if key not in chemical_symbols[1:]:
            raise ModelError(f"{name} has key {key!r}, which is not an element symbol (e.g. 'Mo')")


def write_files(directory: str | Path, files: dict[str, str]) -> None:
    """Write ``files`` (name → text) into ``directory``."""
    directory = Path(directory)
    for name, text in files.items():
        (directory / name).write_text(text)
