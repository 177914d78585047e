"""Layer 5, where model × properties × uq meet: exact QoI sensitivities dQ/dθ
(:mod:`~potforge.qoi.sensitivity`), implicit differentiation of relaxed structures
(:mod:`~potforge.qoi.implicit`) and the propagation of a posterior to material properties
(:mod:`~potforge.qoi.propagation`).
"""

from potforge.qoi.propagation import property_uncertainty
from potforge.qoi.sensitivity import Sensitivity

__all__ = ["Sensitivity", "property_uncertainty"]
