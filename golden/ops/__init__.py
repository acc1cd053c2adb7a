"""The operators, each a composition of the primitives with one configuration object."""
