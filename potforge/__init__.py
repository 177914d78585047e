"""potforge: bespoke, linear-in-parameter interatomic potentials with honest uncertainties."""

from __future__ import annotations

__version__ = "0.1.0"

from potforge.errors import (  # noqa: E402
    DataError,
    EngineError,
    ModelError,
    NotFittedError,
    OracleError,
    PotforgeError,
)

__all__ = [
    "DataError",
    "EngineError",
    "ModelError",
    "NotFittedError",
    "OracleError",
    "PotforgeError",
    "__version__",
]
