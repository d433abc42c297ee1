"""Finding what a release builds with: CUDA compilers (cuda), the OpenMP runtime wheels vendor (openmp), CPython
interpreters (pythons)."""
