"""The conda side: write and read .conda archives (archive, meta, info), declare their dependencies (depends), check
their linking (linking), index channels (channel), variants, TEST FIXTURES, one package (package), the release."""
