"""Precision targets on material properties: ``targets.toml``, their Fisher information at a
model's parameters, and what to say when a pool cannot meet them.

A targets file::

    # the oracle's label precision: one value for every selector
    [precision]
    energy = 0.001     # eV/atom
    force = 0.05       # eV/Å
    stress = 0.1       # GPa

    # QoI = tolerance: absolute (QoI units) or a percentage of the value
    [targets]
    a0 = "0.5%"
    C44 = "5%"
    Evac = 0.05
    gamma_surf_110 = { tolerance = "5%" }

    # optional: correlations between targets, "A,B" = ρ
    [correlation]
    "C11,C12" = 0.5

    # optional: expensive QoIs reported, not targeted (indirect information matching)
    [indirect]
    tau_ideal_110 = "10%"

    # optional: property settings (potforge properties --help), the labelling-cost model and
    # what "met" means (joint: every combination of QoIs; each: every QoI alone)
    [settings]
    fmax = 1e-4
    cost = "n2"
    criterion = "joint"
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from potforge.errors import DataError
from potforge.information.fisher import (
    LabelPrecision,
    predicted_covariance,
    qoi_fisher,
    target_covariance,
)
from potforge.information.matching import COST_MODELS
from potforge.params import unknown_name
from potforge.properties.registry import REGISTRY, get_qoi, resolve_settings

SECTIONS = ("precision", "targets", "correlation", "indirect", "settings")
CRITERIA = ("joint", "each")
"""What "met" means: ``joint`` — every combination of the QoIs within its tolerance
(``F ⪰ JᵀΣ⁻¹J``, the method as published); ``each`` — every QoI within its own tolerance
(one rank-one inequality per QoI: cheaper, the same stopping rule as the usual selectors)."""
PRECISION_KEYS = ("energy", "force", "stress")

INFORMED_BY = {
    "a0": "bulk cells at several volumes",
    "c_over_a": "strained hcp cells",
    "Ecoh": "the isolated atom and the bulk crystal",
    "B": "bulk cells at several volumes",
    "C": "strained and sheared bulk cells",
    "Evac": "vacancy cells",
    "Esia": "self-interstitial cells",
    "gamma_surf": "slabs of that surface",
    "usf": "stacking-fault cells of that plane",
    "isf": "stacking-fault cells of that plane",
    "nu": "phonon supercells with displaced atoms",
    "dE": "cells of that phase",
    "tau": "sheared bulk cells up to large strain",
}
"""The kind of structure that informs each QoI family (named in an infeasibility message)."""


def informed_by(name: str) -> str:
    """The kind of structure that carries a QoI's information (its own structures)."""
    for prefix in sorted(INFORMED_BY, key=len, reverse=True):
        if name == prefix or name.startswith(prefix):
            return INFORMED_BY[prefix]
    return "the structures the property is computed on"


@dataclass(frozen=True)
class Target:
    """One QoI and its tolerance (one standard deviation).

    Attributes
    ----------
    name : str
        A registry QoI (``potforge properties --list``).
    tolerance : float
        Absolute (QoI units) or, with ``relative``, a fraction of the value.
    relative : bool
    """

    name: str
    tolerance: float
    relative: bool = False

    def absolute(self, value: float) -> float:
        """The tolerance in QoI units at ``value``."""
        return self.tolerance * abs(value) if self.relative else self.tolerance

    def describe(self) -> str:
        """``"5%"`` or ``"0.05 eV"``."""
        if self.relative:
            return f"{100 * self.tolerance:g}%"
        return f"{self.tolerance:g} {get_qoi(self.name).unit}".strip()


@dataclass(frozen=True)
class Targets:
    """Everything a ``targets.toml`` states.

    Attributes
    ----------
    targets : tuple of Target
    precision : LabelPrecision
    correlation : ndarray, shape (Q, Q), or None
    indirect : tuple of Target
        Reported, not targeted.
    settings : dict
        Property settings (validated).
    cost : str
        Labelling-cost model (:data:`~potforge.information.matching.COST_MODELS`).
    """

    targets: tuple[Target, ...]
    precision: LabelPrecision = field(default_factory=LabelPrecision)
    correlation: np.ndarray | None = None
    indirect: tuple[Target, ...] = ()
    settings: dict[str, Any] = field(default_factory=dict)
    cost: str = "unit"
    criterion: str = "joint"

    @property
    def names(self) -> list[str]:
        """Targeted QoI names, in order."""
        return [t.name for t in self.targets]

    def covariance(self, values: Sequence[float] | np.ndarray) -> np.ndarray:
        """Σ_target (Q, Q) at the QoI values (relative tolerances scale with them)."""
        return target_covariance(
            np.asarray(values, dtype=float),
            [t.tolerance for t in self.targets],
            [t.relative for t in self.targets],
            self.correlation,
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form (loop settings)."""
        return {
            "targets": {t.name: t.describe() for t in self.targets},
            "precision": {k: getattr(self.precision, k) for k in PRECISION_KEYS},
            "correlation": None if self.correlation is None else self.correlation.tolist(),
            "indirect": {t.name: t.describe() for t in self.indirect},
            "settings": self.settings,
            "cost": self.cost,
            "criterion": self.criterion,
        }


def parse_tolerance(value: Any, where: str) -> tuple[float, bool]:
    """``"5%"`` → (0.05, True); ``0.05`` → (0.05, False); anything else one sentence."""
    if isinstance(value, Mapping):
        extra = set(value) - {"tolerance"}
        if extra:
            raise DataError(unknown_name(sorted(extra)[0], ["tolerance"], f"key in {where}"))
        if "tolerance" not in value:
            raise DataError(f'{where} needs a tolerance, e.g. tolerance = "5%"')
        value = value["tolerance"]
    rel = isinstance(value, str) and value.strip().endswith("%")
    text = value.strip().rstrip("%") if isinstance(value, str) else value
    try:
        tol = float(text)
        if isinstance(text, bool):
            raise TypeError
    except (TypeError, ValueError):
        raise DataError(
            f"{where} = {value!r} is not a tolerance: give a positive number (QoI units) or a "
            'percentage such as "5%"'
        ) from None
    if not np.isfinite(tol) or tol <= 0:
        raise DataError(f"{where} = {value!r}: a tolerance must be positive")
    return (tol / 100.0, True) if rel else (tol, False)


def _qoi_name(name: str, where: str) -> str:
    if name in REGISTRY:
        return name
    close = [n for n in REGISTRY if n.lower() == name.lower()]
    close = close or difflib.get_close_matches(name, REGISTRY, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    raise DataError(
        f"{where}: unknown quantity of interest {name!r}{hint}; valid: {', '.join(REGISTRY)}"
    )


def targets_from_dict(doc: Mapping[str, Any], source: str = "targets") -> Targets:
    """Build :class:`Targets` from a parsed document (unknown keys: the closest valid one)."""
    for key in doc:
        if key not in SECTIONS:
            raise DataError(f"{source}: " + unknown_name(key, SECTIONS, "section"))
    tables = {}
    for key in SECTIONS:
        table = doc.get(key, {})
        if not isinstance(table, Mapping):
            raise DataError(f"{source}: [{key}] must be a table of key = value lines")
        tables[key] = table
    prec = dict(tables["precision"])
    for key in prec:
        if key not in PRECISION_KEYS:
            raise DataError(f"{source}: " + unknown_name(key, PRECISION_KEYS, "[precision] key"))
    try:
        precision = LabelPrecision(**prec)
    except DataError as exc:
        raise DataError(f"{source}: [precision] {exc}") from None
    if not tables["targets"]:
        raise DataError(f'{source}: [targets] is empty: name at least one QoI, e.g. a0 = "0.5%"')

    def read(section: str) -> tuple[Target, ...]:
        out = []
        for name, value in tables[section].items():
            where = f"{source}: [{section}] {name}"
            out.append(Target(_qoi_name(str(name), where), *parse_tolerance(value, where)))
        return tuple(out)

    targets, indirect = read("targets"), read("indirect")
    names = [t.name for t in targets]
    both = set(names) & {t.name for t in indirect}
    if both:
        raise DataError(f"{source}: {sorted(both)[0]} is both targeted and indirect; keep one")
    correlation = None
    if tables["correlation"]:
        correlation = np.eye(len(names))
        for pair, rho in tables["correlation"].items():
            parts = [p.strip() for p in str(pair).split(",")]
            if len(parts) != 2 or any(p not in names for p in parts) or parts[0] == parts[1]:
                raise DataError(
                    f"{source}: [correlation] key {pair!r} must be two different targeted QoIs "
                    f'"A,B" from: {", ".join(names)}'
                )
            if not isinstance(rho, int | float) or not -1 < rho < 1:
                raise DataError(f"{source}: [correlation] {pair} = {rho!r} must lie in (−1, 1)")
            i, j = names.index(parts[0]), names.index(parts[1])
            correlation[i, j] = correlation[j, i] = float(rho)
        if np.linalg.eigvalsh(correlation).min() <= 0:
            raise DataError(f"{source}: [correlation] is not positive definite")
    settings = dict(tables["settings"])
    cost = settings.pop("cost", "unit")
    criterion = settings.pop("criterion", "joint")
    if criterion not in CRITERIA:
        raise DataError(
            f"{source}: [settings] " + unknown_name(str(criterion), CRITERIA, "criterion")
        )
    if cost not in COST_MODELS:
        raise DataError(
            f"{source}: [settings] " + unknown_name(str(cost), COST_MODELS, "cost model")
        )
    try:
        settings = {k: v for k, v in resolve_settings(settings).items() if k in settings}
    except Exception as exc:  # property settings name the key and what is allowed
        raise DataError(f"{source}: [settings] {exc}") from None
    if criterion == "each" and correlation is not None:
        raise DataError(
            f'{source}: criterion = "each" meets each QoI alone and cannot honour '
            '[correlation]; use criterion = "joint" or drop the correlations'
        )
    return Targets(targets, precision, correlation, indirect, settings, str(cost), criterion)


def load_targets(path: str | Path) -> Targets:
    """Read a ``targets.toml`` (or ``.yaml``); one sentence naming the file on any problem."""
    import tomllib

    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise DataError(f"cannot read targets file {path}: {exc.strerror}") from None
    try:
        if path.suffix.lower() in (".yaml", ".yml"):
            import yaml

            doc = yaml.safe_load(text) or {}
        else:
            doc = tomllib.loads(text)
    except Exception as exc:
        raise DataError(f"{path} is not valid {path.suffix.lstrip('.') or 'TOML'}: {exc}") from None
    if not isinstance(doc, Mapping):
        raise DataError(f"{path} must hold tables such as [targets]")
    return targets_from_dict(doc, str(path))


@dataclass
class TargetInformation:
    """Targets evaluated at one θ: values, dQ/dθ, Σ_target and I_QoI.

    Attributes
    ----------
    names : list of str
    values : ndarray, shape (Q,)
    jacobian : ndarray, shape (Q, P)
    covariance : ndarray, shape (Q, Q)
    fisher : ndarray, shape (P, P)
    indirect : dict
        ``{name: {"value", "gradient" (P,), "tolerance"}}`` of the indirect QoIs.
    """

    names: list[str]
    values: np.ndarray
    jacobian: np.ndarray
    covariance: np.ndarray
    fisher: np.ndarray
    indirect: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def tolerance(self) -> np.ndarray:
        """Absolute tolerance per QoI, shape (Q,)."""
        return np.sqrt(np.diag(self.covariance))

    def target(self, criterion: str = "joint") -> np.ndarray:
        """The matching program's target: ``JᵀΣ⁻¹J`` (P, P) for ``"joint"``, or one rank-one
        target per QoI (Q, P, P) for ``"each"`` (:data:`CRITERIA`)."""
        from potforge.information.matching import each_qoi

        return self.fisher if criterion == "joint" else each_qoi(self.jacobian, self.tolerance)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form (a loop stage's output)."""
        return {
            "names": self.names,
            "values": self.values.tolist(),
            "jacobian": self.jacobian.tolist(),
            "covariance": self.covariance.tolist(),
            "indirect": {
                k: {
                    "value": v["value"],
                    "gradient": np.asarray(v["gradient"]).tolist(),
                    "tolerance": v["tolerance"],
                }
                for k, v in self.indirect.items()
            },
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> TargetInformation:
        """Inverse of :meth:`to_dict`."""
        J = np.asarray(d["jacobian"], dtype=float)
        S = np.asarray(d["covariance"], dtype=float)
        ind = {k: {**v, "gradient": np.asarray(v["gradient"])} for k, v in d["indirect"].items()}
        return cls(list(d["names"]), np.asarray(d["values"]), J, S, qoi_fisher(J, S), ind)


def target_information(model, element: str, targets: Targets, progress: bool | None = False):
    """Values and exact dQ/dθ of the targets at ``model``'s θ, and their Fisher information.

    Parameters
    ----------
    model : LinearPotential
        Fitted.
    element : str
    targets : Targets
    progress : bool or None

    Returns
    -------
    TargetInformation
    """
    from potforge.qoi.sensitivity import Sensitivity

    sens = Sensitivity(model, element, **targets.settings)
    names = targets.names + [t.name for t in targets.indirect]
    grads = sens.gradients(names, progress=progress)
    values = np.array([grads[n]["value"] for n in targets.names])
    J = np.array([grads[n]["gradient"] for n in targets.names])
    S = targets.covariance(values)
    indirect = {
        t.name: {
            "value": float(grads[t.name]["value"]),
            "gradient": np.asarray(grads[t.name]["gradient"]),
            "tolerance": t.absolute(float(grads[t.name]["value"])),
        }
        for t in targets.indirect
    }
    return TargetInformation(targets.names, values, J, S, qoi_fisher(J, S), indirect)


def explain_shortfall(available: np.ndarray, info: TargetInformation) -> str:
    """One sentence: which targets the available information cannot meet, by how much, and
    which kind of structure would inform them."""
    sigma = np.sqrt(np.diag(predicted_covariance(available, info.jacobian)))
    tol = info.tolerance
    parts = []
    for name, s, t in zip(info.names, sigma, tol, strict=True):
        if not s <= t * (1 + 1e-6):
            unit = get_qoi(name).unit
            how = (
                "no information at all"
                if np.isinf(s)
                else f"σ {s:.3g} {unit} > {t:.3g} {unit} ({s / t:.2g}×)"
            )
            parts.append(f"{name} ({how}; add {informed_by(name)})")
    if not parts:  # each alone is met, but not all together (correlated directions)
        M = np.linalg.solve(info.covariance, predicted_covariance(available, info.jacobian))
        lam, V = np.linalg.eig(M)
        k = int(np.argmax(lam.real))
        load = np.abs(V[:, k].real)
        main = [info.names[i] for i in np.argsort(-load)[:2]]
        parts.append(
            f"the combination of {' and '.join(main)} (predicted variance {lam.real[k]:.3g}× "
            "the target's in that direction)"
        )
    return (
        "the candidate pool cannot meet the targets even with every candidate labelled: "
        + "; ".join(parts)
    )
