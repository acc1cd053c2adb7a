"""The choices of a configuration as string-valued enums that accept their strings.

``Rounding("nearest") is Rounding.NEAREST``, and a member is a ``str`` equal to its value, hashes
like it and serialises to it, so JSON files, conversion plans and stable hashes read and write the
plain strings as before.  :meth:`Choice.parse` turns a user's string into a member with an error that
names the owner, the parameter, the value and what is allowed.
"""

from __future__ import annotations

import enum

__all__ = ["Choice", "Rounding", "DivArch", "NormMethod", "GeluForm", "ExpMethod", "Normalizer", "NormUnits"]


class Choice(str, enum.Enum):
    """Base of the string-valued choices."""

    def __str__(self):
        return self.value

    __format__ = str.__format__
    __hash__ = str.__hash__

    @classmethod
    def values(cls) -> tuple:
        return tuple(m.value for m in cls)

    @classmethod
    def parse(cls, value, owner: str, name: str, *, quote: bool = True):
        """``value`` (a member or its string) as a member; ValueError naming everything otherwise
        (the allowed values listed quoted, or plain with ``quote=False``)."""
        try:
            return cls(value)
        except ValueError:
            show = repr if quote else str
            raise ValueError(f"{owner}: {name}={getattr(value, 'value', value)!r} is not allowed; "
                             "allowed: " + ", ".join(show(v) for v in cls.values())) from None


class Rounding(Choice):
    """How a quotient (and the exact reference on the output grid) is rounded."""

    NEAREST = "nearest"  # half up: a bias current of half a threshold
    FLOOR = "floor"


class DivArch(Choice):
    """The realisation of the Division Neuron Group (bit-identical results)."""

    BINARY = "binary"            # q_width neurons, one pipeline stage each (II 1)
    THERMOMETER = "thermometer"  # 2**q_width - 1 comparators in one step (II 1)
    TEMPORAL = "temporal"        # one IF neuron stepped until it stops firing (iterative)


class NormMethod(Choice):
    """How PolarNorm computes the l2 norm."""

    CORDIC = "cordic"  # the paper's CORDIC vectoring tree
    EXACT = "exact"    # integer squares, sum and square root


class GeluForm(Choice):
    """Which GELU a GELU operator computes (each exact to its own definition)."""

    ERF = "erf"          # 0.5 x (1 + erf(x / sqrt 2)): transformers' "gelu", BERT's
    TANH = "tanh"        # 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))): "gelu_new", "gelu_pytorch_tanh"
    SIGMOID = "sigmoid"  # x sigmoid(1.702 x): "quick_gelu"


class ExpMethod(Choice):
    """How PWL-Exp evaluates ``e**z`` (both: one table read, one multiply-add, a shift)."""

    UNIFORM = "uniform"  # the paper's K chords over [-H, H]
    RANGE = "range"      # 2**(z log2 e): the integer part as a shift, the fraction by K chords of 2**r on [0, 1)


class Normalizer(Choice):
    """How Softmax finds the reference its exponentials are taken against, and their sum."""

    ROW_MAX = "row_max"  # the row's maximum first (a pass of its own), then e and S (three passes)
    ONLINE = "online"    # a running maximum and sum as the row arrives, the sum rescaled by shifts


class NormUnits(Choice):
    """How the CORDIC PolarNorm's merges are spread over CORDIC units (hardware only: the tree and
    its results are the same)."""

    SHARED = "shared"        # one pipelined unit serves every level (area of one unit)
    PER_LEVEL = "per_level"  # a unit per level, each pair issued the cycle it forms (less latency)
    SPLIT = "split"          # the leaf level's own unit and one shared by the others (full rate at any length)

