"""Files in and out: numbers in text, sample tables of every engine's format, HILLS and OPES state files, grids in
and out, pictures, and the one output writer (output.py) that every command writes through.

    formats.py        the one place the rest of cyfes imports file functions from
    numbers.py        numbers and pi expressions in options and headers
    format_names.py   the format names and defaults the parsers show (no numpy, for a light --help)
    tables.py         sample tables (PLUMED COLVAR, text, CSV, gzip, .npy), parsed by table_parse.h (_tableparse)
    input_formats.py  which reader a file needs; colvars.py, xvg.py: Colvars and GROMACS readers
    text_rows.py      rows of numbers for those readers
    hills.py          PLUMED HILLS in, sum_hills grids out; opes.py: OPES state files
    writers.py        surfaces out (PLUMED grid, dat, csv, cube, npz); program_grids.py: Colvars .pmf, OpenDX
    output.py         staging, refusal rules and the all-or-nothing commit of a run's outputs
    cluster.py        files read on a Dask cluster's workers
    plot.py           pictures of a surface; plot_answers.py: of basins, minima and paths
"""
