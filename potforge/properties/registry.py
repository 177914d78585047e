"""The registry of quantities of interest (QoIs): names shared by the CLI, configs and benchmarks.

Each :class:`QoI` maps ``(calc, element, **settings)`` to one float in its reporting unit
(Å, eV, GPa, J/m², THz, eV/atom).  ``element`` is a chemical symbol (``"W"``) or the formula
of a 1:1 binary compound (``"CuI"``): compounds (zincblende or rocksalt) have the bulk QoIs
:data:`COMPOUND_QOIS` (a0, Ecoh, B, C11, C12, C44, dHf, dE_zincblende / dE_rocksalt), elements
everything else.  Work is shared through a memoising
:class:`~potforge.properties.suite.PropertySuite` owned by the caller: :func:`run_suite` makes
one per call (shared by its QoIs), and both :func:`run_suite` and :func:`compute_qoi` take one
as ``suite=`` to share work across calls (:func:`suite_for` makes it from the settings).  There
is no module-level cache.
"""

from __future__ import annotations

import difflib
import time
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from potforge.properties.base import (
    COMPOUND_LATTICES,
    EV_A2_TO_J_M2,
    EV_A3_TO_GPA,
    NotApplicableError,
    SettingError,
    UnknownQoIError,
    UnstableWarning,
    check_lattice,
    ground_state,
    is_compound,
    lattice_family,
    warn_at_caller,
)
from potforge.properties.base import blas_threads as limit_blas
from potforge.properties.compounds import check_references
from potforge.properties.elastic import cubic_constants
from potforge.properties.relax import RelaxationHook
from potforge.properties.settings import option_name, validate_settings
from potforge.properties.suite import PropertySuite

ALL = ("bcc", "fcc", "hcp")
CUBIC = ("bcc", "fcc")
BULK = ALL + COMPOUND_LATTICES
"""Lattices of the bulk QoIs every element and compound has."""
CUBIC_CONSTANTS = CUBIC + COMPOUND_LATTICES
"""Lattices whose elastic constants are the cubic averages (:func:`cubic_constants`)."""


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
        ``func(suite, settings) -> float`` in ``unit``: the value from a
        :class:`PropertySuite` and the full, checked settings (:func:`resolve_settings`).
    lattices : tuple of str
        Ground-state lattices where it is defined.
    default : bool
        In the default set of its lattices (:func:`default_qois`); expensive QoIs are computed
        only when asked for by name.
    """

    name: str
    unit: str
    description: str
    func: Callable[[PropertySuite, dict[str, Any]], float]
    lattices: tuple[str, ...] = ALL
    default: bool = True

    def __call__(
        self, calc, element: str, *, suite: PropertySuite | None = None, **settings
    ) -> float:
        """The value for ``element`` under ``calc``, in :attr:`unit`: from ``suite`` (a
        :class:`PropertySuite` of ``calc``, ``element`` and these bulk settings, sharing its
        memoised work) when given, else from a new one."""
        s = resolve_settings(settings)
        check_applicable(self, element, s["structure"])
        suite = _suite_of(calc, element, suite, s)
        if suite.compound:  # its lattice is known now (it may have needed relaxations)
            check_applicable(self, element, suite.lattice)
        return float(self.func(suite, s))


def check_applicable(q: QoI, element: str, lattice: str | None) -> None:
    """Raise :class:`NotApplicableError` when ``q`` is not defined for ``element`` in
    ``lattice`` (None: a compound whose lattice the calculator has yet to decide, where a QoI of
    either compound lattice passes; an element's ASE reference state).

    The message names why: a QoI of elements asked of a compound (with the compound QoIs), a
    compound QoI asked of an element, or the lattices where it is defined."""
    family = lattice_family(element)
    if not set(q.lattices) & set(family):
        if is_compound(element):
            raise NotApplicableError(
                f"{q.name} is not defined for compounds: {element} is a binary compound "
                f"({'/'.join(family)}), for which the suite computes "
                f"{', '.join(COMPOUND_QOIS)}; vacancies, interstitials, surfaces, stacking "
                "faults, phonons and the ideal shear strength are computed for elements only"
            )
        raise NotApplicableError(
            f"{q.name} is a quantity of binary compounds ({'/'.join(COMPOUND_LATTICES)}, e.g. "
            f"CuI), not of the element {element}"
        )
    if lattice is None:
        if is_compound(element):
            return
        lattice = ground_state(element)
    if lattice not in q.lattices:
        raise NotApplicableError(
            f"{q.name} is defined for {'/'.join(q.lattices)} lattices only, not for "
            f"{element} {lattice} (choose the lattice with "
            f"{option_name('structure', q.lattices[0])})"
        )


def resolve_settings(settings: dict[str, Any]) -> dict[str, Any]:
    """Defaults merged with ``settings``, each checked (:func:`~potforge.properties.settings.
    validate_settings`: an unknown key or a bad value is one sentence)."""
    return validate_settings(settings)


def suite_for(
    calc, element: str, *, hook: RelaxationHook | None = None, **settings
) -> PropertySuite:
    """A new :class:`PropertySuite` of ``calc`` and ``element`` with the bulk settings
    (``structure``, ``fmax``, ``steps``) of ``settings`` (checked; the others are ignored).

    Keep it and pass it as ``suite=`` to :func:`run_suite` or :func:`compute_qoi` to share its
    memoised work between calls; a calculator whose parameters change in place needs a new
    suite.  ``hook`` stands in for its relaxations
    (:data:`~potforge.properties.relax.RelaxationHook`).
    """
    s = resolve_settings(settings)
    return PropertySuite(
        calc, element, structure=s["structure"], fmax=s["fmax"], steps=s["steps"], hook=hook
    )


def _suite_of(calc, element: str, suite: PropertySuite | None, s: dict[str, Any]) -> PropertySuite:
    """``suite`` after checking it is the suite of ``calc``, ``element`` and the bulk settings
    ``s``; a new one when None."""
    if suite is None:
        return suite_for(calc, element, **s)
    if suite.calc is not calc or suite.element != element:
        raise SettingError(
            f"the suite given is that of {suite.element} under {type(suite.calc).__name__} "
            f"object {id(suite.calc):#x}, not of {element} under this calculator "
            f"({type(calc).__name__} object {id(calc):#x})"
        )
    differ = [
        f"{k}={getattr(suite, k)!r} (settings: {s[k]!r})"
        for k in ("structure", "fmax", "steps")
        if getattr(suite, k) != s[k]
    ]
    if differ:
        raise SettingError(f"the suite given has other bulk settings: {', '.join(differ)}")
    return suite


def _elastic(index: int) -> Callable[..., float]:
    def func(suite, s):
        c = suite.elastic_tensor(s["strain"], s["check_stability"])
        if suite.lattice in CUBIC_CONSTANTS:
            return cubic_constants(c)[index] * EV_A3_TO_GPA
        ij = {0: (0, 0), 1: (0, 1), 2: (3, 3), 3: (0, 2), 4: (2, 2)}[index]
        return c[ij] * EV_A3_TO_GPA

    return func


def _sia(kind: str) -> Callable[..., float]:
    def func(suite, s):
        return suite.interstitial_formation_energy(kind, s["sia_size"])

    return func


def _surface(miller: str) -> Callable[..., float]:
    def func(suite, s):
        return suite.surface_energy(miller, s["slab_thickness"], s["vacuum"]) * EV_A2_TO_J_M2

    return func


def _usf(plane: str) -> Callable[..., float]:
    def func(suite, s):
        return (
            suite.unstable_fault_energy(plane, s["gsf_points"], s["gsf_thickness"]) * EV_A2_TO_J_M2
        )

    return func


def _isf(suite, s):
    _, energies = suite.gsf_curve("111", s["gsf_points"], s["gsf_thickness"])
    return float(energies[-1]) * EV_A2_TO_J_M2


def _nu(point: str) -> Callable[..., float]:
    def func(suite, s):
        return float(suite.phonons(s["phonon_supercell"], s["check_stability"]).at(point)[-1])

    return func


def _phase(phase: str) -> Callable[..., float]:
    def func(suite, s):
        return suite.phase_energy(phase)

    return func


def _a0(suite, s):
    return suite.lattice_constant()


def _coa(suite, s):
    if suite.lattice != "hcp":
        raise NotApplicableError(f"c/a is an hcp quantity; {suite.element} is {suite.lattice}")
    return suite.ground().c_over_a


def _ecoh(suite, s):
    return suite.cohesive_energy()


def _bmod(suite, s):
    return suite.bulk_modulus(s["ev_span"]) * EV_A3_TO_GPA


def _tau_ideal(plane: str) -> Callable[..., float]:
    def func(suite, s):
        return suite.ideal_shear_strength(plane, s["shear_step"], s["shear_max"]) * EV_A3_TO_GPA

    return func


def _evac(suite, s):
    return suite.vacancy_formation_energy(s["vacancy_size"])


def _dhf(suite, s):
    return suite.formation_energy(s["references"])


_ENTRIES = [
    QoI("a0", "Å", "equilibrium lattice constant (cubic edge; basal a for hcp)", _a0, BULK),
    QoI("c_over_a", "", "equilibrium c/a (hcp)", _coa, ("hcp",)),
    QoI(
        "Ecoh",
        "eV",
        "cohesive energy E_atom − E_bulk per atom (compound: mean of its atoms)",
        _ecoh,
        BULK,
    ),
    QoI("B", "GPa", "bulk modulus, Birch–Murnaghan fit of the E–V curve", _bmod, BULK),
    QoI("C11", "GPa", "elastic constant C11 (relaxed ions, ±0.5% strain)", _elastic(0), BULK),
    QoI("C12", "GPa", "elastic constant C12 (relaxed ions, ±0.5% strain)", _elastic(1), BULK),
    QoI("C44", "GPa", "elastic constant C44 (relaxed ions, ±0.5% strain)", _elastic(2), BULK),
    QoI(
        "dHf",
        "eV/atom",
        "formation energy per atom of a compound AB from its elements' reference states",
        _dhf,
        COMPOUND_LATTICES,
    ),
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
    QoI("dE_A15", "eV/atom", "A15 energy relative to the ground state", _phase("A15"), ALL),
    QoI(
        "dE_zincblende",
        "eV/atom",
        "zincblende energy relative to the (rocksalt) ground state of a compound",
        _phase("zincblende"),
        ("rocksalt",),
    ),
    QoI(
        "dE_rocksalt",
        "eV/atom",
        "rocksalt energy relative to the (zincblende) ground state of a compound",
        _phase("rocksalt"),
        ("zincblende",),
    ),
    QoI(
        "tau_ideal_110",
        "GPa",
        "relaxed ideal shear strength <111>{110} (not in the default set)",
        _tau_ideal("110"),
        ("bcc",),
        default=False,
    ),
]

REGISTRY: dict[str, QoI] = {q.name: q for q in _ENTRIES}
"""All quantities of interest by name."""

COMPOUND_QOIS = tuple(q.name for q in _ENTRIES if set(q.lattices) & set(COMPOUND_LATTICES))
"""The QoIs of binary compounds, in registry order."""


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


def default_qois(lattice: str | None) -> list[str]:
    """Every default QoI defined for a ground-state ``lattice``, in registry order (the
    expensive ones, ``default=False`` such as ``tau_ideal_110``, only when named).

    ``None`` is a compound whose lattice is not chosen yet: the QoIs defined for both
    zincblende and rocksalt (not ``dE_zincblende`` / ``dE_rocksalt``, which depend on it)."""
    if lattice is None:
        return [
            q.name
            for q in _ENTRIES
            if q.default and all(p in q.lattices for p in COMPOUND_LATTICES)
        ]
    return [q.name for q in _ENTRIES if lattice in q.lattices and q.default]


def compute_qoi(
    name: str, calc, element: str, *, suite: PropertySuite | None = None, **settings
) -> float:
    """Value of QoI ``name`` for ``element`` under ``calc``, in the QoI's unit.

    ``suite``: a :class:`PropertySuite` of ``calc``, ``element`` and these bulk settings
    (:func:`suite_for`) whose memoised work is shared (default: a new one, for this value
    alone)."""
    return get_qoi(name)(calc, element, suite=suite, **settings)


def check_request(
    element: str, qois: Iterable[str] | None, settings: dict[str, Any]
) -> tuple[list[str], dict[str, Any]]:
    """Check a request before any work: every setting (:mod:`~potforge.properties.settings`),
    the element (a symbol or an AB formula) and its ``structure`` and ``references``, every QoI
    name (unknown ones name the closest) and that each QoI is defined for the ground-state
    lattice (:func:`check_applicable`; a compound's lattice, when not given, is decided by the
    calculator later: a QoI of one compound lattice only is checked then).  Returns the QoI
    names and the full settings.  The default names are :func:`default_qois` of the lattice;
    for a compound, ``dHf`` only when both elements' reference states are known (ASE's
    reference data or ``references``).

    Raises
    ------
    SettingError, UnknownQoIError, ElementError, NotApplicableError
    """
    s = resolve_settings(settings)
    entries = [get_qoi(n) for n in qois] if qois is not None else None
    check_lattice(element, s["structure"])
    check_references(element, s["references"])
    compound = is_compound(element)
    lattice = s["structure"] or (None if compound else ground_state(element))
    if entries is None:
        names = default_qois(lattice)
        if compound and "dHf" in names:
            try:
                check_references(element, s["references"], resolve=True)
            except NotApplicableError:
                names.remove("dHf")  # named explicitly, it raises (below)
        return names, s
    for q in entries:
        check_applicable(q, element, lattice)
    if compound and any(q.name == "dHf" for q in entries):
        check_references(element, s["references"], resolve=True)
    return [q.name for q in entries], s


def run_suite(
    calc,
    element: str,
    qois: Iterable[str] | None = None,
    *,
    progress: bool | None = None,
    desc: str | None = None,
    suite: PropertySuite | None = None,
    hook: RelaxationHook | None = None,
    blas_threads: int | None = 1,
    **settings,
) -> dict[str, dict[str, Any]]:
    """Compute a set of QoIs, sharing work, with a progress bar.

    Parameters
    ----------
    calc : ase.calculators.calculator.Calculator
    element : str
        A chemical symbol (``"W"``) or the formula of a 1:1 binary compound (``"CuI"``).
    qois : iterable of str, optional
        Names (default: :func:`default_qois` of the element's ground-state lattice;
        :func:`check_request`).
    progress : bool or None
        A bar over the QoIs (:mod:`potforge.progress`): always (True), never (False), or on a
        terminal only, with a start and a done line in a log (None).
    desc : str, optional
        Name of the bar (default ``"<element> properties"``).
    suite : PropertySuite, optional
        The suite of ``calc``, ``element`` and these bulk settings (:func:`suite_for`) to
        compute with, sharing its memoised work with the caller's other calls (default: a new
        one, shared by this call's QoIs only).
    hook : RelaxationHook, optional
        Stands in for every relaxation of the new suite
        (:data:`~potforge.properties.relax.RelaxationHook`; e.g. a
        :class:`~potforge.qoi.implicit.RelaxationRecord`); with ``suite``, give it to the suite.
    blas_threads : int or None
        BLAS threads during the call (:func:`~potforge.properties.base.serial_blas`: 1);
        None leaves the thread pools as they are (a caller that limits them already).
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

    names, s = check_request(element, qois, settings)
    if hook is not None:
        if suite is not None:
            raise SettingError(
                "give the relaxation hook to the suite (PropertySuite(..., "
                "hook=...)), not to run_suite beside suite="
            )
        suite = suite_for(calc, element, hook=hook, **s)
    suite = _suite_of(calc, element, suite, s)
    entries = [get_qoi(n) for n in names]
    out: dict[str, dict[str, Any]] = {}
    with (
        limit_blas(blas_threads),
        Progress(
            len(entries), desc or f"{element} properties", "QoI", progress if entries else False
        ) as bar,
    ):
        for q in entries:
            bar.set_postfix_str(q.name)
            out[q.name] = _one(q, calc, element, suite, settings)
            bar.update()
    return out


def _one(
    q: QoI, calc, element: str, suite: PropertySuite, settings: dict[str, Any]
) -> dict[str, Any]:
    """:func:`run_suite`'s entry of one QoI from ``suite`` (its warnings re-issued at the
    caller's line)."""
    t0 = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", UnstableWarning)
        value = q(calc, element, suite=suite, **settings)
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
