"""Row timing models: when a row operator's first output of each row appears, sink always ready.

Every row operator's ``first_outputs(cfg, lengths, last_in)`` applies its ``timing(cfg)`` model, and
the testbench checks it cycle by cycle (``verif/runner.py``): given the cycle at which each row's
last input was accepted (measured, so a stalled input is accounted for), the model predicts the cycle
of each row's first output.  With the sink always ready a row's outputs leave one per cycle, so the
first outputs fix the throughput as well as the latency.

* :class:`ThreePasses`: receive, a reduction pass and a send pass over one row buffer, each pass
  one element per cycle on its own row (Softmax).
* :class:`FixedDelay`: the send pass takes a row a fixed time after its last input, or after a
  shared unit started on it (RMSNorm, LayerNorm, Softmax with the online normaliser).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["ThreePasses", "FixedDelay"]


@dataclass(frozen=True)
class ThreePasses:
    """Receive, reduce, send: three passes over a row buffer, each on its own row at one element
    per cycle, handing rows over through queues.

    With ``L(r)`` the cycle row ``r``'s last input is accepted and ``n_r`` its length, the reduce
    pass takes row ``r`` at ``e(r)`` and the send pass at ``s(r)``::

        e(r) = max(L(r) + to_reduce, e(r-1) + n_(r-1), s(r - queue) + 1)
        s(r) = max(e(r) + n_r + to_send, s(r-1) + n_(r-1))
        first output of row r = s(r) + to_output

    ``to_reduce``: from the last input to the reduce pass taking the row (the row queue);
    ``to_send``: from the reduce pass's last read to the send pass taking the row (the reduce
    pipeline and the result queue); ``queue``: rows the reduce pass may run ahead of the send pass;
    ``to_output``: from the send pass taking a row to its first output (the send pipeline).
    """

    to_reduce: int
    to_send: int
    to_output: int
    queue: int

    def describe(self) -> str:
        """The model in words, for the manifest."""
        return (f"passes receive, reduce, send, each on its own row at one element per cycle: a row's first output "
                f"comes n + {self.latency(0)} cycles after its last input at an idle operator (n = row length, "
                f"sink ready); with rows queued, e(r) = max(L(r) + {self.to_reduce}, e(r-1) + n(r-1), "
                f"s(r-{self.queue}) + 1), s(r) = max(e(r) + n(r) + {self.to_send}, s(r-1) + n(r-1)), first output "
                f"s(r) + {self.to_output} (L: cycle of the row's last input)")

    def latency(self, n: int) -> int:
        """Cycles from a row's last input to its first output when the operator is idle."""
        return self.to_reduce + n + self.to_send + self.to_output

    def first_outputs(self, lengths, last_in) -> list[int]:
        e, s = [], []
        for r, (n, li) in enumerate(zip(lengths, last_in)):
            er = li + self.to_reduce
            if r:
                er = max(er, e[r - 1] + lengths[r - 1])
            if r >= self.queue:
                er = max(er, s[r - self.queue] + 1)
            sr = er + n + self.to_send
            if r:
                sr = max(sr, s[r - 1] + lengths[r - 1])
            e.append(er)
            s.append(sr)
        return [x + self.to_output for x in s]


@dataclass(frozen=True)
class FixedDelay:
    """Receive and send over a ring buffer, the row's reduction done as it arrives: the send pass
    takes row ``r`` at ``s(r)``::

        u(r) = max(L(r) + unit_start, u(r-1) + unit_period)      (a shared unit, if unit_period)
        s(r) = max(u(r) + to_send - unit_start, s(r-1) + n_(r-1))  (u(r) = L(r) + unit_start if none)
        first output of row r = s(r) + to_output

    ``L(r)``: the cycle row ``r``'s last input is accepted; ``to_send``: from it to the send pass
    taking the row at an idle operator; ``unit_start``/``unit_period``: a unit that takes one row
    at a time (the exact norm's square root), ``unit_period`` cycles each.
    """

    to_send: int
    to_output: int
    unit_start: int = 0
    unit_period: int = 0
    #: what is computed as the row arrives, for :meth:`describe`
    reduction: str = "the norm"

    def describe(self) -> str:
        """The model in words, for the manifest."""
        text = (f"receive and send over a ring, {self.reduction} computed as the row arrives: a row's first output comes "
                f"{self.latency(0)} cycles after its last input at an idle operator (sink ready), or one cycle after "
                f"the previous row's last output, whichever is later")
        if self.unit_period:
            text += (f"; the square-root unit takes a row at u(r) = max(L(r) + {self.unit_start}, "
                     f"u(r-1) + {self.unit_period}) and the row's first output is at the earliest "
                     f"u(r) + {self.to_send - self.unit_start + self.to_output}")
        return text

    def latency(self, n: int) -> int:
        """Cycles from a row's last input to its first output when the operator is idle."""
        return self.to_send + self.to_output

    def first_outputs(self, lengths, last_in) -> list[int]:
        s, u = [], None
        for r, (n, li) in enumerate(zip(lengths, last_in)):
            ur = li + self.unit_start
            if self.unit_period and u is not None:
                ur = max(ur, u + self.unit_period)
            u = ur
            sr = ur + self.to_send - self.unit_start
            if r:
                sr = max(sr, s[r - 1] + lengths[r - 1])
            s.append(sr)
        return [x + self.to_output for x in s]
