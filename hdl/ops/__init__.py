"""The operators in hardware, each built from the primitives and one golden configuration object."""
