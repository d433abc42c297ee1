"""Install an artifact into fresh places and run the one smoke program there under the loader's trace: a wheel per
install scheme (schemes), a .conda in a conda prefix (prefix)."""
