"""ELF files: what they are (model), where the loader finds their libraries (loader), the RPATH they need (rpath),
the one module that writes them (patchelf), and the oldest glibc they load on (glibc)."""
