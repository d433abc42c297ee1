"""Energy units and the Boltzmann constant."""
from __future__ import annotations

from ._errors import InputError

#: Boltzmann constant per energy unit, per kelvin (CODATA 2018 k_B * N_A).
BOLTZMANN = {
    "kJ/mol": 0.0083144626181532,
    "kcal/mol": 0.0019872042586408316,
}


def kT(temperature: float, units: str) -> float:
    """Thermal energy k_B*T in `units`."""
    if not isinstance(units, str) or units not in BOLTZMANN:
        raise InputError(f"units: unknown energy unit {units!r}; use one of {', '.join(BOLTZMANN)}")
    try:
        t = float(temperature)
    except (TypeError, ValueError, OverflowError):
        raise InputError(f"temperature: expected a number of kelvin, got {temperature!r}") from None
    if isinstance(temperature, bool) or not (t > 0 and t < float("inf")):
        raise InputError(f"temperature: must be a positive finite number of kelvin, got {temperature!r}")
    return BOLTZMANN[units] * t
