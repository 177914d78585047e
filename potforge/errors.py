"""The potforge exception tree: every user-facing failure is one clear sentence."""

from __future__ import annotations


class PotforgeError(Exception):
    """Base class of every error potforge raises on purpose."""


class DataError(PotforgeError, ValueError):
    """A structure, label or file is missing, malformed or unphysical."""


class ModelError(PotforgeError, ValueError):
    """A model specification or term setting is invalid for the data it meets."""


class NotFittedError(PotforgeError, RuntimeError):
    """A model was used before ``fit`` (or ``load``) gave it parameters."""


class EngineError(PotforgeError, RuntimeError):
    """LAMMPS (or another engine) rejected a command or failed to run."""


class OracleError(PotforgeError, RuntimeError):
    """A reference calculator could not be built or failed on a structure."""


def check_is_fitted(
    obj: object, attributes: str | tuple[str, ...] = "coef_", hint: str = "call fit() first"
) -> None:
    """Raise :class:`NotFittedError` unless ``obj`` has every one of ``attributes`` (fitted
    state, as scikit-learn's ``check_is_fitted``); ``hint`` says how to get it."""
    names = (attributes,) if isinstance(attributes, str) else attributes
    if not all(hasattr(obj, n) for n in names):
        raise NotFittedError(f"this {type(obj).__name__} is not fitted yet: {hint}")
