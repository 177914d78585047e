"""The registry of quantities of interest (QoIs): names shared by the CLI, configs and benchmarks.

Each :class:`QoI` maps ``(calc, element, **settings)`` to one float in its reporting unit
(Å, eV, GPa, J/m², THz, eV/atom).  Work is shared through one memoising
:class:`~potforge.properties.suite.PropertySuite` per (calculator, element, bulk settings).
"""

from __future__ import annotations

import difflib
import time
import warnings
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from potforge.properties.base import (
    EV_A2_TO_J_M2,
    EV_A3_TO_GPA,
    NotApplicableError,
    UnknownQoIError,
    UnstableWarning,
    ground_state,
    serial_blas,
    warn_at_caller,
)
from potforge.properties.elastic import cubic_constants
from potforge.properties.settings import option_name, validate_settings
from potforge.properties.suite import PropertySuite

ALL = ("bcc", "fcc", "hcp")
CUBIC = ("bcc", "fcc")


@dataclass(frozen=True)
class QoI:
    """One quantity of interest.

    Attributes
    ----------
    name : str
    unit : str
        Reporting unit.
    description : str
    func : callable
        ``func(calc, element, **settings) -> float`` in ``unit``.
    lattices : tuple of str
        Ground-state lattices where it is defined.
    """

    name: str
    unit: str
    description: str
    func: Callable[..., float]
    lattices: tuple[str, ...] = ALL

    def __call__(self, calc, element: str, **settings) -> float:
        return float(self.func(calc, element, **settings))


MAX_SUITES = 8
"""Suites kept for sharing (least recently used dropped first): enough for model + reference."""

_SUITES: OrderedDict[tuple, PropertySuite] = OrderedDict()


def resolve_settings(settings: dict[str, Any]) -> dict[str, Any]:
    """Defaults merged with ``settings``, each checked (:func:`~potforge.properties.settings.
    validate_settings`: an unknown key or a bad value is one sentence)."""
    return validate_settings(settings)


def suite_for(calc, element: str, **settings) -> PropertySuite:
    """The shared :class:`PropertySuite` of ``calc`` and ``element`` for these bulk settings.

    Suites are kept (with their memoised results) for the :data:`MAX_SUITES` most recently used
    (calculator, element, settings); a calculator whose parameters change in place needs a new
    :class:`PropertySuite` (or a new calculator object).
    """
    s = resolve_settings(settings)
    key = (element, s["structure"], s["fmax"], s["steps"])
    key = (id(calc), *key)
    suite = _SUITES.get(key)
    if suite is None or suite.calc is not calc:  # id reused by a new calculator
        suite = PropertySuite(
            calc, element, structure=s["structure"], fmax=s["fmax"], steps=s["steps"]
        )
    _SUITES[key] = suite
    _SUITES.move_to_end(key)
    while len(_SUITES) > MAX_SUITES:
        _SUITES.popitem(last=False)
    return suite


def _suite(calc, element, settings) -> tuple[PropertySuite, dict[str, Any]]:
    s = resolve_settings(settings)
    return suite_for(calc, element, structure=s["structure"], fmax=s["fmax"], steps=s["steps"]), s


def _elastic(index: int) -> Callable[..., float]:
    def func(calc, element, **settings):
        suite, s = _suite(calc, element, settings)
        c = suite.elastic_tensor(s["strain"], s["check_stability"])
        if suite.lattice in CUBIC:
            return cubic_constants(c)[index] * EV_A3_TO_GPA
        ij = {0: (0, 0), 1: (0, 1), 2: (3, 3), 3: (0, 2), 4: (2, 2)}[index]
        return c[ij] * EV_A3_TO_GPA

    return func


def _sia(kind: str) -> Callable[..., float]:
    def func(calc, element, **settings):
        suite, s = _suite(calc, element, settings)
        return suite.interstitial_formation_energy(kind, s["sia_size"])

    return func


def _surface(miller: str) -> Callable[..., float]:
    def func(calc, element, **settings):
        suite, s = _suite(calc, element, settings)
        return suite.surface_energy(miller, s["slab_thickness"], s["vacuum"]) * EV_A2_TO_J_M2

    return func


def _usf(plane: str) -> Callable[..., float]:
    def func(calc, element, **settings):
        suite, s = _suite(calc, element, settings)
        return (
            suite.unstable_fault_energy(plane, s["gsf_points"], s["gsf_thickness"]) * EV_A2_TO_J_M2
        )

    return func


def _isf(calc, element, **settings):
    suite, s = _suite(calc, element, settings)
    _, energies = suite.gsf_curve("111", s["gsf_points"], s["gsf_thickness"])
    return float(energies[-1]) * EV_A2_TO_J_M2


def _nu(point: str) -> Callable[..., float]:
    def func(calc, element, **settings):
        suite, s = _suite(calc, element, settings)
        return float(suite.phonons(s["phonon_supercell"], s["check_stability"]).at(point)[-1])

    return func


def _phase(phase: str) -> Callable[..., float]:
    def func(calc, element, **settings):
        suite, _ = _suite(calc, element, settings)
        return suite.phase_energy(phase)

    return func


def _a0(calc, element, **settings):
    return _suite(calc, element, settings)[0].lattice_constant()


def _coa(calc, element, **settings):
    suite = _suite(calc, element, settings)[0]
    if suite.lattice != "hcp":
        raise NotApplicableError(f"c/a is an hcp quantity; {element} is {suite.lattice}")
    return suite.ground().c_over_a


def _ecoh(calc, element, **settings):
    return _suite(calc, element, settings)[0].cohesive_energy()


def _bmod(calc, element, **settings):
    suite, s = _suite(calc, element, settings)
    return suite.bulk_modulus(s["ev_span"]) * EV_A3_TO_GPA


def _evac(calc, element, **settings):
    suite, s = _suite(calc, element, settings)
    return suite.vacancy_formation_energy(s["vacancy_size"])


_ENTRIES = [
    QoI("a0", "Å", "equilibrium lattice constant (cubic edge; basal a for hcp)", _a0),
    QoI("c_over_a", "", "equilibrium c/a (hcp)", _coa, ("hcp",)),
    QoI("Ecoh", "eV", "cohesive energy E_atom − E_bulk per atom", _ecoh),
    QoI("B", "GPa", "bulk modulus, Birch–Murnaghan fit of the E–V curve", _bmod),
    QoI("C11", "GPa", "elastic constant C11 (relaxed ions, ±0.5% strain)", _elastic(0)),
    QoI("C12", "GPa", "elastic constant C12 (relaxed ions, ±0.5% strain)", _elastic(1)),
    QoI("C44", "GPa", "elastic constant C44 (relaxed ions, ±0.5% strain)", _elastic(2)),
    QoI("C13", "GPa", "elastic constant C13 (hcp)", _elastic(3), ("hcp",)),
    QoI("C33", "GPa", "elastic constant C33 (hcp)", _elastic(4), ("hcp",)),
    QoI("Evac", "eV", "relaxed vacancy formation energy", _evac),
    QoI("Esia_110", "eV", "<110> dumbbell self-interstitial formation energy", _sia("110"), CUBIC),
    QoI("Esia_111", "eV", "<111> dumbbell self-interstitial formation energy", _sia("111"), CUBIC),
    QoI("Esia_100", "eV", "<100> dumbbell self-interstitial formation energy", _sia("100"), CUBIC),
    QoI("Esia_oct", "eV", "octahedral self-interstitial formation energy", _sia("oct"), CUBIC),
    QoI("Esia_tet", "eV", "tetrahedral self-interstitial formation energy", _sia("tet"), CUBIC),
    QoI("gamma_surf_100", "J/m²", "relaxed (100) surface energy", _surface("100"), CUBIC),
    QoI("gamma_surf_110", "J/m²", "relaxed (110) surface energy", _surface("110"), CUBIC),
    QoI("gamma_surf_111", "J/m²", "relaxed (111) surface energy", _surface("111"), CUBIC),
    QoI("gamma_surf_211", "J/m²", "relaxed (211) surface energy", _surface("211"), CUBIC),
    QoI("usf_110", "J/m²", "unstable stacking-fault energy {110}<111>", _usf("110"), ("bcc",)),
    QoI("usf_112", "J/m²", "unstable stacking-fault energy {112}<111>", _usf("112"), ("bcc",)),
    QoI("usf_111", "J/m²", "unstable stacking-fault energy {111}<112>", _usf("111"), ("fcc",)),
    QoI("isf_111", "J/m²", "intrinsic stacking-fault energy {111}", _isf, ("fcc",)),
    QoI("nu_H", "THz", "highest phonon frequency at H", _nu("H"), ("bcc",)),
    QoI("nu_N", "THz", "highest phonon frequency at N", _nu("N"), ("bcc",)),
    QoI("nu_P", "THz", "highest phonon frequency at P", _nu("P"), ("bcc",)),
    QoI("nu_X", "THz", "highest phonon frequency at X", _nu("X"), ("fcc",)),
    QoI("nu_L", "THz", "highest phonon frequency at L", _nu("L"), ("fcc",)),
    QoI(
        "dE_bcc",
        "eV/atom",
        "bcc energy relative to the ground state",
        _phase("bcc"),
        ("fcc", "hcp"),
    ),
    QoI(
        "dE_fcc",
        "eV/atom",
        "fcc energy relative to the ground state",
        _phase("fcc"),
        ("bcc", "hcp"),
    ),
    QoI(
        "dE_hcp",
        "eV/atom",
        "hcp energy relative to the ground state",
        _phase("hcp"),
        ("bcc", "fcc"),
    ),
    QoI("dE_A15", "eV/atom", "A15 energy relative to the ground state", _phase("A15")),
]

REGISTRY: dict[str, QoI] = {q.name: q for q in _ENTRIES}
"""All quantities of interest by name."""


def get_qoi(name: str) -> QoI:
    """The registry entry ``name``; an unknown name lists close matches and every valid name."""
    try:
        return REGISTRY[name]
    except KeyError:
        close = [n for n in REGISTRY if n.lower() == str(name).lower()]  # evac → Evac
        close = close or difflib.get_close_matches(str(name), REGISTRY, n=3)
        hint = f" (did you mean {', '.join(close)}?)" if close else ""
        raise UnknownQoIError(
            f"unknown quantity of interest '{name}'{hint}; valid: {', '.join(REGISTRY)}"
        ) from None


def default_qois(lattice: str) -> list[str]:
    """Every QoI defined for a ground-state ``lattice``, in registry order."""
    return [q.name for q in _ENTRIES if lattice in q.lattices]


def compute_qoi(name: str, calc, element: str, **settings) -> float:
    """Value of QoI ``name`` for ``element`` under ``calc``, in the QoI's unit."""
    return get_qoi(name)(calc, element, **settings)


def check_request(element: str, qois: Iterable[str] | None, settings: dict[str, Any]
                  ) -> tuple[list[str], dict[str, Any]]:
    """Check a request before any work: every setting (:mod:`~potforge.properties.settings`),
    every QoI name (unknown ones name the closest) and that each QoI is defined for the
    ground-state lattice.  Returns the QoI names (default: all of that lattice) and the full
    settings.

    Raises
    ------
    SettingError, UnknownQoIError, ElementError, NotApplicableError
    """
    s = resolve_settings(settings)
    entries = [get_qoi(n) for n in qois] if qois is not None else None
    lattice = s["structure"] or ground_state(element)
    if entries is None:
        return default_qois(lattice), s
    for q in entries:
        if lattice not in q.lattices:
            raise NotApplicableError(
                f"{q.name} is defined for {'/'.join(q.lattices)} lattices only, not for "
                f"{element} {lattice} (choose the lattice with "
                f"{option_name('structure', q.lattices[0])})"
            )
    return [q.name for q in entries], s


def run_suite(
    calc,
    element: str,
    qois: Iterable[str] | None = None,
    *,
    progress: bool | None = None,
    desc: str | None = None,
    **settings,
) -> dict[str, dict[str, Any]]:
    """Compute a set of QoIs, sharing work, with a progress bar.

    Parameters
    ----------
    calc : ase.calculators.calculator.Calculator
    element : str
    qois : iterable of str, optional
        Names (default: all defined for the element's ground-state lattice).
    progress : bool or None
        A bar over the QoIs (:mod:`potforge.progress`): always (True), never (False), or on a
        terminal only, with a start and a done line in a log (None).
    desc : str, optional
        Name of the bar (default ``"<element> properties"``).
    **settings
        See :data:`~potforge.properties.settings.SETTINGS`; checked, with the QoI names and
        their lattices, before any work (:func:`check_request`).

    Returns
    -------
    dict
        ``{name: {"value": float, "unit": str, "seconds": float}}`` in request order; an entry
        whose structure was found unstable (with ``check_stability=False``) also carries
        ``"stable": False`` and ``"warning"``.  ``seconds`` is the wall time of that QoI alone;
        shared work (the bulk relaxation, the elastic tensor, phonons) is charged to the first
        QoI that needs it.

    Warns
    -----
    UnstableWarning
        Attributed to the caller's line.
    """
    from potforge.progress import Progress

    names, _ = check_request(element, qois, settings)
    entries = [get_qoi(n) for n in names]
    out: dict[str, dict[str, Any]] = {}
    with serial_blas(), Progress(len(entries), desc or f"{element} properties", "QoI",
                                 progress if entries else False) as bar:
        for q in entries:
            bar.set_postfix_str(q.name)
            out[q.name] = _one(q, calc, element, settings)
            bar.update()
    return out


def _one(q: QoI, calc, element: str, settings: dict[str, Any]) -> dict[str, Any]:
    """:func:`run_suite`'s entry of one QoI (its warnings re-issued at the caller's line)."""
    t0 = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", UnstableWarning)
        value = q(calc, element, **settings)
    entry: dict[str, Any] = {
        "value": value,
        "unit": q.unit,
        "seconds": time.perf_counter() - t0,
    }
    unstable = [w for w in caught if issubclass(w.category, UnstableWarning)]
    if unstable:
        entry["stable"] = False
        entry["warning"] = str(unstable[0].message)
    for w in caught:
        warn_at_caller(w.message, w.category)
    return entry
