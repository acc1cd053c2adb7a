"""A small extra operator (ReLU) defined outside the package, as a user would add one: one golden
file, one hdl file and one registry entry (``tests/test_extra_operator.py``)."""
