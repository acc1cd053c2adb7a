"""Row timing models: when a row operator's first output of each row appears, sink always ready.

The testbench checks these cycle by cycle (``verif/runner.py``): given the cycle at which each row's
last input was accepted (measured, so a stalled input is accounted for), the model predicts the cycle
of each row's first output.  With the sink always ready a row's outputs leave one per cycle, so the
first outputs fix the throughput as well as the latency.

* :func:`one_row_at_a_time`: a row starts when its last input is in and the previous row has left,
  then takes ``latency_for(cfg, n)`` cycles (RMSNorm, LayerNorm).
* :class:`ThreePasses`: receive, a reduction pass and a send pass over one row buffer, each pass
  one element per cycle on its own row (Softmax).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["row_first_outputs", "one_row_at_a_time", "ThreePasses"]


def row_first_outputs(component, cfg, lengths, last_in) -> list[int]:
    """The first-output cycle of each row of a row operator's ``component`` class (sink always
    ready), given each row's length and the cycle its last input was accepted: the component's own
    ``first_outputs`` model if it has one, else :func:`one_row_at_a_time` with its ``latency_for``."""
    model = getattr(component, "first_outputs", None)
    if model is not None:
        return model(cfg, lengths, last_in)
    return one_row_at_a_time(component.latency_for, cfg, lengths, last_in)


def one_row_at_a_time(latency_for, cfg, lengths, last_in) -> list[int]:
    """First-output cycles of rows processed one after another: row ``r`` starts at the later of
    its last input and the previous row's last output, and answers ``latency_for(cfg, n)`` later;
    its ``n`` outputs leave on consecutive cycles."""
    out, prev_last = [], None
    for n, li in zip(lengths, last_in):
        first = (li if prev_last is None else max(li, prev_last)) + latency_for(cfg, n)
        out.append(first)
        prev_last = first + n - 1
    return out


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
