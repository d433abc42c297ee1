"""The defaults of the OPES scripts FES_from_Reweighting.py and FES_from_State.py that reweight.py and state.py
reproduce, as plain data (no numpy): `cyfes reweight --help` and `cyfes state --help` show them without loading
the estimates."""
from __future__ import annotations

#: The scripts' Boltzmann constant for --temp (kJ/mol/K).
KB_KJMOL = 0.0083144621
#: The scripts' number format (--fmt).
DEFAULT_FMT = "% 12.6f"
#: FES_from_Reweighting.py's output file (--outfile).
REWEIGHT_OUTFILE = "fes-rew.dat"
#: FES_from_State.py's output file (--outfile).
STATE_OUTFILE = "fes.dat"
