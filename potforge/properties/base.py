"""Shared vocabulary of the property suite: errors, unit conversions, element checks.

Everything inside :mod:`potforge.properties` works in ASE units (eV, Å, eV/Å³); the conversions
here are applied only where a quantity of interest (QoI) is reported.
"""

from __future__ import annotations

import os
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
"""Ground-state lattices the suite knows how to build."""


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


def ground_state(element: str) -> str:
    """Lattice of ``element``'s ground state in ASE's reference data (bcc, fcc or hcp).

    Raises
    ------
    ElementError
        For an unknown symbol.
    NotApplicableError
        For an element whose ground state is none of bcc, fcc, hcp.
    """
    if element not in atomic_numbers:
        raise ElementError(f"'{element}' is not a chemical element symbol")
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
    """Raise :class:`ElementError` when ``calc`` cannot describe ``element``.

    A calculator that lists its elements (``calc.elements``) is checked against the list; any
    other is asked for the energy of a small dimer, and its failure becomes one sentence.
    """
    if element not in atomic_numbers:
        raise ElementError(f"'{element}' is not a chemical element symbol")
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
