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
