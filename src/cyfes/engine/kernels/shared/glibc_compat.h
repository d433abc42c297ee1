/* Keeps cyfes's compiled modules loadable on old glibc (the manylinux2014 floor, glibc 2.17).
 *
 * glibc 2.27/2.29 gave expf, exp and log new symbol versions (same results, no SVID error handling); a module
 * linked on a newer host binds the newest version unless told otherwise. Binding the original x86-64 versions
 * keeps the module loadable on older glibc; linking against the new libm still finds them. */
#ifndef CYFES_GLIBC_COMPAT_H
#define CYFES_GLIBC_COMPAT_H
#if defined(__x86_64__) && defined(__GLIBC__)
__asm__(".symver exp,exp@GLIBC_2.2.5");
__asm__(".symver log,log@GLIBC_2.2.5");
#endif
#endif
