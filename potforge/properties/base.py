"""Shared vocabulary of the property suite: errors, unit conversions, element checks.

The ``element`` of the suite is a chemical symbol (``"W"``) or the formula of a 1:1 binary
compound (``"CuI"``, ``"SiC"``: :func:`species`); compounds take the cubic lattices
:data:`COMPOUND_LATTICES`, elements :data:`GROUND_STATES`.

Everything inside :mod:`potforge.properties` works in ASE units (eV, Å, eV/Å³); the conversions
here are applied only where a quantity of interest (QoI) is reported.
"""

from __future__ import annotations

import os
import re
import sys
import warnings
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from types import FrameType

import numpy as np
from ase import Atoms, units
from ase.data import atomic_numbers, reference_states

from potforge.errors import PotforgeError

EV_A3_TO_GPA = 1.0 / units.GPa
"""eV/Å³ → GPa (≈ 160.2)."""

EV_A2_TO_J_M2 = units._e * 1e20
"""eV/Å² → J/m² (≈ 16.02)."""

GROUND_STATES = ("bcc", "fcc", "hcp")
"""Ground-state lattices of an element the suite knows how to build."""

COMPOUND_LATTICES = ("zincblende", "rocksalt")
"""Lattices of a 1:1 binary compound AB: zincblende (B3, A at 0 and B at ¼¼¼ of the fcc cell)
and rocksalt (B1, B at ½00); the first is preferred when their energies tie."""

LATTICES = GROUND_STATES + COMPOUND_LATTICES
"""Every lattice the ``structure`` setting accepts."""

REFERENCE_LATTICES = ("bcc", "fcc", "hcp", "diamond", "dimer")
"""Reference states of the elements of a compound's formation energy (the ``references``
setting; :mod:`~potforge.properties.compounds`)."""


class PropertyError(PotforgeError):
    """Base class of failures of the property suite."""


class RelaxationError(PropertyError, RuntimeError):
    """A structural relaxation did not reach its force (or stress) tolerance."""


class InstabilityError(PropertyError, RuntimeError):
    """A structure is mechanically (Born) or dynamically (phonon) unstable."""


class UnknownQoIError(PropertyError, KeyError):
    """A quantity of interest, or one of its settings, has a name the registry does not know."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class SettingError(PropertyError, ValueError):
    """A property setting (or a propagation option) has a value of the wrong type or outside
    its allowed range (:mod:`potforge.properties.settings`)."""


class UnknownSettingError(UnknownQoIError, SettingError):
    """A property setting has a name that is not declared."""


class ElementError(PropertyError, ValueError):
    """The calculator cannot describe the requested element."""


class NotApplicableError(PropertyError, ValueError):
    """A quantity is not defined for this element's ground-state lattice."""


class UnstableWarning(UserWarning):
    """Emitted when a structure is unstable but the caller asked not to raise."""


def species(element: str) -> tuple[str, ...]:
    """The chemical symbols of ``element``: ``("W",)`` for a symbol, ``("Cu", "I")`` for the
    formula of a 1:1 binary compound AB, in the order written (A first).

    Raises
    ------
    ElementError
        For a text that is neither a chemical symbol nor an AB formula of two symbols (one
        sentence naming it).
    """
    if not isinstance(element, str):
        raise ElementError(
            f"the element must be a chemical symbol or an AB formula, got {element!r}"
        )
    if element in atomic_numbers:
        return (element,)
    symbols = re.findall(r"[A-Z][a-z]?|.", element)
    if len(symbols) == 2 and all(sym in atomic_numbers for sym in symbols):
        if symbols[0] == symbols[1]:
            raise ElementError(
                f"'{element}' names one element twice; give the element symbol ({symbols[0]})"
            )
        return tuple(symbols)
    raise ElementError(
        f"'{element}' is neither a chemical element symbol (e.g. W) nor the formula of a 1:1 "
        "binary compound of two symbols (e.g. CuI, NaCl, SiC); other stoichiometries are not "
        "supported"
    )


def is_compound(element: str) -> bool:
    """``element`` is the formula of a binary compound AB (:func:`species`; checked)."""
    return len(species(element)) == 2


def lattice_family(element: str) -> tuple[str, ...]:
    """The lattices ``element`` may take: :data:`COMPOUND_LATTICES` for a compound,
    :data:`GROUND_STATES` for an element (checked by :func:`species`)."""
    return COMPOUND_LATTICES if is_compound(element) else GROUND_STATES


def check_lattice(element: str, structure: str | None) -> None:
    """Raise :class:`NotApplicableError` when ``structure`` (the ``structure`` setting; None:
    the default) is not a lattice of ``element``'s kind (a compound lattice for an element, or
    an elemental one for a compound)."""
    family = lattice_family(element)
    if structure is None or structure in family:
        return
    kind = "a compound" if is_compound(element) else "an element"
    raise NotApplicableError(
        f"{element} is {kind}: its lattice is one of {', '.join(family)}, not {structure}"
    )


def ground_state(element: str) -> str:
    """Lattice of ``element``'s ground state in ASE's reference data (bcc, fcc or hcp).

    Raises
    ------
    ElementError
        For an unknown symbol, or a compound (whose lattice is found by comparing energies:
        :attr:`~potforge.properties.suite.PropertySuite.lattice`).
    NotApplicableError
        For an element whose ground state is none of bcc, fcc, hcp.
    """
    if is_compound(element):
        raise ElementError(
            f"{element} is a compound: its ground-state lattice is not in ASE's reference data; "
            f"the suite takes the lower in energy of {' and '.join(COMPOUND_LATTICES)} under "
            "the calculator (PropertySuite.lattice), or the structure setting"
        )
    ref = reference_states[atomic_numbers[element]] or {}
    sym = ref.get("symmetry")
    if sym not in GROUND_STATES:
        raise NotApplicableError(
            f"{element}'s ground state in ASE's reference data is '{sym}', not one of "
            f"{', '.join(GROUND_STATES)}; pass structure='bcc', 'fcc' or 'hcp' explicitly"
        )
    return sym


def calculator_elements(calc) -> list[str] | None:
    """Elements a calculator declares (``calc.elements``), or None when it declares none."""
    els = getattr(calc, "elements", None)
    if els is None:
        return None
    try:
        return [str(e) for e in els]
    except TypeError:
        return None


def check_element(calc, element: str) -> None:
    """Raise :class:`ElementError` when ``calc`` cannot describe ``element`` (each species of
    a compound, :func:`species`).

    A calculator that lists its elements (``calc.elements``) is checked against the list; any
    other is asked for the energy of a small dimer, and its failure becomes one sentence.
    """
    for symbol in species(element):
        _check_symbol(calc, symbol)


def _check_symbol(calc, element: str) -> None:
    """:func:`check_element` of one chemical symbol."""
    known = calculator_elements(calc)
    name = type(calc).__name__
    if known is not None:
        if element not in known:
            raise ElementError(
                f"the calculator ({name}) does not describe {element}; it knows "
                f"{', '.join(known) or 'no elements'}"
            )
        return
    probe = Atoms(element * 2, positions=[[0, 0, 0], [2.5, 0, 0]], cell=[12.0] * 3, pbc=True)
    probe.calc = calc
    try:
        e = probe.get_potential_energy()
    except Exception as exc:  # any calculator failure: one sentence, cause kept
        raise ElementError(
            f"the calculator ({name}) cannot evaluate {element}: {type(exc).__name__}: {exc}"
        ) from exc
    if not np.isfinite(e):
        raise ElementError(f"the calculator ({name}) returns a non-finite energy for {element}")


def warn_unstable(message: str) -> None:
    """Warn (never silently pass) about an instability the caller chose not to raise on,
    attributed to the caller's line (:func:`warn_at_caller`)."""
    warn_at_caller(message, UnstableWarning)


_PACKAGE = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep


def warn_at_caller(message: str | Warning, category: type[Warning] = UserWarning) -> None:
    """:func:`warnings.warn`, attributed to the first frame outside potforge: the user's line
    that called into the package, however deep inside it the warning arose."""
    frame: FrameType | None = sys._getframe(1)
    level = 2
    while frame is not None and frame.f_code.co_filename.startswith(_PACKAGE):
        frame, level = frame.f_back, level + 1
    warnings.warn(message, category, stacklevel=level)


@contextmanager
def blas_threads(limit: int | None) -> Iterator[None]:
    """BLAS thread pools limited to ``limit`` threads inside (``None``: left as they are, for a
    caller that already limits them)."""
    if limit is None:
        yield
        return
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=limit, user_api="blas"):
        yield


def serial_blas() -> AbstractContextManager[None]:
    """BLAS on one thread inside: property work is many small matrices (3×3 cell maps, BFGS
    Hessians of ≤ a few hundred coordinates), where OpenBLAS's threads only add overhead — on a
    loaded 2-core machine they made ``potforge properties`` 2–3× slower (user time doubled by
    spinning threads).  Work that runs inside one (e.g. the many
    :func:`~potforge.properties.registry.run_suite` calls of property uncertainty) passes
    ``blas_threads=None`` instead of limiting again."""
    return blas_threads(1)


def progress_bar(iterable, *, desc: str, unit: str, progress: bool | None):
    """Iterate with a named progress display (:mod:`potforge.progress`): a bar when
    ``progress`` is True, or when it is None and stderr is a terminal (one start and one done
    line in a log otherwise); nothing when False or when there is nothing to do."""
    from potforge.progress import track

    items = list(iterable)
    return track(items, desc, unit, progress if items else False)
