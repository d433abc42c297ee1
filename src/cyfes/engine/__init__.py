"""The engine: arrays in, arrays out. Validation of the arrays, the direct, truncated, binned and streamed sums,
the hills sums' kernels, the backends (the only loader of the compiled modules _cpu, _gpu and _hills) and the
result type. It reads and writes no file, prints nothing and imports no other room of cyfes.

    fes.py            cyfes.fes: the reweighted KDE surface (blocks, errors, chunks, Dask partial sums)
    result.py         FESResult, the engine's one output type
    inputs.py         every check of fes()'s arguments, before any work
    backends.py       which devices this build and machine can run; the compiled modules
    driver.py         the NVIDIA driver, asked through libcuda before the CUDA runtime loads
    nvml.py           the GPUs as NVIDIA's management library lists them (cyfes info, without starting CUDA)
    truncated.py      the truncated sum (cells and tiles); gpu_truncated.py its GPU side
    binned.py         method="binned": linear binning + FFT convolution
    streamed.py       samples in chunks, merged exactly
    stats.py          log-sum-exp and Kish's effective sample size (the package's one copy of each)
    kernels/          the C kernels of _cpu and _hills; kernels/shared/ the headers cuda/ includes too
"""
