#!/bin/sh
# How the PLUMED files here were made (PLUMED built from plumed/plumed2, see README.md):
python3 make_inputs.py          # traj.dat, a TEST FIXTURE
plumed driver --noatoms --plumed plumed.dat --kt 2.494339
