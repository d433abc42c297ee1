"""The programs of the field that cyfes reproduces, as functions: PLUMED's sum_hills (sum_hills.py, also
`cyfes.hills`), metadynamics reweighting from HILLS (metad_reweight.py), OPES' FES_from_Reweighting.py
(reweight.py) and FES_from_State.py (state.py), the state PLUMED rebuilds from an OPES KERNELS file (kernels.py),
umbrella windows by MBAR (umbrella.py) and CyFES 4.5's command line (cyfes45.py); metad_flags.py and
opes_defaults.py hold what the parsers of those commands need, with no numpy. They build on the engine, io and
analysis; they print nothing."""
