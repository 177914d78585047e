"""Every property setting declared once: its default, type, allowed range and meaning.

The type and range are :mod:`potforge.params` constraints (the declarations the model and the
command line share, as scikit-learn's parameter constraints).  Each :class:`Setting` checks a
value given from Python (:meth:`Setting.check`) or parses and checks the text of ``potforge
properties --set KEY=VALUE`` (:meth:`Setting.parse`); a bad value is one
:class:`~potforge.properties.base.SettingError` sentence naming the setting, the value and what
is allowed, and an unknown key names the closest valid one.  :func:`validate_settings` is what
:func:`~potforge.properties.registry.run_suite`,
:class:`~potforge.qoi.sensitivity.Sensitivity` and
:func:`~potforge.qoi.propagation.property_uncertainty` call before any work.

The same sentences name Python keywords (``n_candidates``) from Python and command-line flags
(``--candidates``) under the CLI: :func:`option_name` reads the vocabulary that
:func:`cli_vocabulary` sets.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from potforge.errors import ModelError
from potforge.params import Boolean, Constraint, Integer, MappingOf, Options, Real
from potforge.properties.base import (
    LATTICES,
    REFERENCE_LATTICES,
    SettingError,
    UnknownSettingError,
)
from potforge.properties.relax import FMAX, STEPS


@dataclass(frozen=True)
class Setting:
    """One property setting (or propagation option): a :mod:`potforge.params` constraint with
    a default and a meaning.

    Attributes
    ----------
    name : str
    default : object
    constraint : potforge.params.Constraint
        Type and allowed range.
    doc : str
        Meaning (and unit), for ``potforge properties --list``.
    option : str, optional
        Not a property setting but a keyword of its own (``n_candidates``): messages name it by
        :func:`option_name` (``--candidates`` under the CLI), not as ``property setting NAME``.
    """

    name: str
    default: Any
    constraint: Constraint
    doc: str
    option: str | None = None

    def allowed(self) -> str:
        """What is allowed, as a phrase ("an integer ≥ 2", "a number > 0 and ≤ 1", ...)."""
        return self.constraint.describe()

    def check(self, value: Any, text: str | None = None) -> Any:
        """``value`` (numbers as int or float) if allowed, else one :class:`SettingError`
        sentence naming the setting, the value (``text``: as the user typed it) and what is
        allowed."""
        label = option_name(self.option) if self.option else f"{option_name('setting')} {self.name}"
        try:
            return self.constraint.check(label, value)
        except ModelError as exc:
            message = str(exc)
            if text is not None:
                message = message.replace(f"got {value!r}", f"got {text!r}", 1)
            raise SettingError(message) from None

    def parse(self, text: str) -> Any:
        """The checked value of command-line text (``--set NAME=TEXT``)."""
        try:
            value = self.constraint.parse(text.strip())
        except ValueError:  # not a number: the check names the text
            value = text
        return self.check(value, text)


@dataclass(frozen=True)
class ReferenceStates(MappingOf):
    """Element symbol → reference state (one of
    :data:`~potforge.properties.base.REFERENCE_LATTICES`), or None; on the command line
    ``SYMBOL:STATE`` pairs separated by commas (``I:dimer,Cu:fcc``)."""

    values: Constraint = Options(values=REFERENCE_LATTICES)
    allow_none: bool = True

    def describe(self) -> str:
        """``a mapping of element symbols to one of ...`` (on the command line ``EL:STATE,...``)."""
        return (
            f"a mapping of element symbols to {self.values.describe()} "
            "(on the command line EL:STATE,...) or none"
        )

    def parse(self, text: str) -> Any:
        """``"I:dimer,Cu:fcc"`` → ``{"I": "dimer", "Cu": "fcc"}`` (``none``: None); a pair
        without its colon is left as text for the check to name."""
        if text.strip().lower() in ("none", ""):
            return None
        out: dict[str, str] = {}
        for item in text.split(","):
            key, sep, value = item.partition(":")
            if not sep or not key.strip():
                return text
            out[key.strip()] = value.strip()
        return out


SETTINGS: dict[str, Setting] = {
    s.name: s
    for s in (
        Setting(
            "structure",
            None,
            Options(values=LATTICES, allow_none=True),
            "ground-state lattice (default: an element's ASE reference state; the lower in "
            "energy of zincblende and rocksalt for a compound AB)",
        ),
        Setting(
            "fmax", FMAX, Real(low=0, high=1, low_open=True), "force tolerance of relaxations, eV/Å"
        ),
        Setting("steps", STEPS, Integer(low=1), "maximum optimiser steps"),
        Setting("strain", 0.005, Real(low=0, high=0.1, low_open=True), "elastic strain amplitude"),
        Setting(
            "ev_span",
            0.05,
            Real(low=0, high=0.3, low_open=True),
            "relative volume range ± of the E–V curve",
        ),
        Setting(
            "vacancy_size", 3, Integer(low=2), "vacancy supercell, conventional cells per edge"
        ),
        Setting(
            "sia_size",
            3,
            Integer(low=2),
            "self-interstitial supercell, conventional cells per edge",
        ),
        Setting(
            "slab_thickness", 12.0, Real(low=0, low_open=True), "minimum surface slab thickness, Å"
        ),
        Setting("vacuum", 15.0, Real(low=0, low_open=True), "vacuum gap of slabs, Å"),
        Setting("gsf_points", 11, Integer(low=3), "shifts per generalized stacking-fault curve"),
        Setting("gsf_thickness", 20.0, Real(low=0, low_open=True), "minimum GSF slab thickness, Å"),
        Setting(
            "phonon_supercell", 4, Integer(low=1), "phonon supercell, conventional cells per edge"
        ),
        Setting(
            "shear_step",
            0.02,
            Real(low=0, high=0.1, low_open=True),
            "engineering shear step of the ideal-shear scan (tau_ideal_110)",
        ),
        Setting(
            "shear_max",
            0.3,
            Real(low=0, high=1, low_open=True),
            "largest engineering shear of the ideal-shear scan (tau_ideal_110)",
        ),
        Setting(
            "references",
            None,
            ReferenceStates(),
            "reference state of each element of a compound's formation energy dHf, e.g. "
            "I:dimer (default: ASE's reference state of the element)",
        ),
        Setting(
            "check_stability",
            False,
            Boolean(),
            "raise on Born or phonon instability instead of warning",
        ),
    )
}
"""Every setting a QoI accepts, by name."""


def setting(name: str) -> Setting:
    """The declared setting ``name``; an unknown name is an :class:`UnknownSettingError`
    naming the closest valid one."""
    try:
        return SETTINGS[name]
    except KeyError:
        close = difflib.get_close_matches(str(name), SETTINGS, n=1, cutoff=0.5)
        hint = f" (did you mean {close[0]}?)" if close else ""
        raise UnknownSettingError(
            f"unknown property setting {name!r}{hint}; valid: {', '.join(SETTINGS)}"
        ) from None


def validate_settings(settings: Mapping[str, Any]) -> dict[str, Any]:
    """Every setting's value: the defaults updated with ``settings``, each checked.

    Raises
    ------
    UnknownSettingError
        A key that is not a setting (the message names the closest valid one).
    SettingError
        A value of the wrong type or outside its range (the message names the setting, the
        value and what is allowed), or a ``shear_max`` below two ``shear_step``.
    """
    out = {name: s.default for name, s in SETTINGS.items()}
    for name, value in settings.items():
        out[name] = setting(name).check(value)
    if out["shear_max"] < 2 * out["shear_step"]:
        raise SettingError(
            f"{option_name('setting')} shear_max must be at least 2 × shear_step "
            f"({2 * out['shear_step']:g}), got {out['shear_max']!r}"
        )
    return out


def parse_cli_settings(items: list[str]) -> dict[str, Any]:
    """``["vacancy_size=4", "fmax=1e-4"]`` (``--set`` texts) → ``{"vacancy_size": 4, "fmax":
    0.0001}``, each value parsed by its setting's type and checked."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, text = item.partition("=")
        if not sep or not key.strip():
            raise SettingError(f"--set expects KEY=VALUE (e.g. --set vacancy_size=4), got {item!r}")
        out[key.strip()] = setting(key.strip()).parse(text)
    return out


# --- the vocabulary of messages: Python keywords or CLI flags -------------------------------
PYTHON_NAMES: dict[str, str] = {
    "setting": "property setting",
    "n_candidates": "n_candidates",
    "n_samples": "n_samples",
    "method": "method",
    "structure": "structure",
}
"""How messages name an option from Python."""

CLI_NAMES: dict[str, str] = {
    "setting": "--set",
    "n_candidates": "--candidates",
    "n_samples": "--samples",
    "method": "--uq",
    "structure": "--structure",
}
"""How messages name the same options under ``potforge properties``."""

_VOCABULARY: ContextVar[Mapping[str, str]] = ContextVar("potforge_vocabulary", default=PYTHON_NAMES)


def option_name(key: str, value: Any = None) -> str:
    """How option ``key`` (with ``value``, when given) is spelled in the current vocabulary:
    ``n_candidates`` / ``method='resample'`` from Python, ``--candidates`` / ``--uq resample``
    under the CLI (:func:`cli_vocabulary`)."""
    names = _VOCABULARY.get()
    name = names.get(key, key)
    if value is None:
        return name
    return f"{name} {value}" if names is CLI_NAMES else f"{name}={value!r}"


@contextmanager
def cli_vocabulary() -> Iterator[None]:
    """Messages raised or warned inside name command-line flags (:data:`CLI_NAMES`)."""
    token = _VOCABULARY.set(CLI_NAMES)
    try:
        yield
    finally:
        _VOCABULARY.reset(token)
