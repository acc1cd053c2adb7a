"""The scoreboard: RTL output against the golden model, by equality.

A reset injected mid-row splits the stream: the outputs accepted before it must be a prefix of the
expected outputs, and those after it must be exactly the expected outputs of the rows sent after it.
Nothing lost, nothing duplicated, nothing reordered.
"""

from __future__ import annotations

import numpy as np

__all__ = ["compare"]


def _locate(index: int, row_starts: list[int]):
    row = int(np.searchsorted(row_starts, index, side="right") - 1)
    return row, index - row_starts[row]


def compare(job: dict, got_data, got_last, inputs, expected, *, m_at_reset=None, resume=None,
            max_report: int = 8) -> dict:
    """Compare; return ``{"checked", "mismatches", "report"}`` (``report`` names op, configuration,
    row, position, input, expected and actual of the first mismatches)."""
    exp_stream = list(range(len(expected)))  # input index of each expected output
    if m_at_reset is not None:
        exp_stream = list(range(m_at_reset)) + list(range(resume, len(expected)))
    lines, bad = [], 0
    n = min(len(exp_stream), len(got_data))
    if len(got_data) != len(exp_stream):
        lines.append(f"{len(got_data)} outputs for {len(exp_stream)} expected")
        bad += 1
    starts = job["row_starts"]
    ends = set(s - 1 for s in starts[1:]) | {len(expected) - 1}
    for j in range(n):
        idx = exp_stream[j]
        want_last = idx in ends
        ok = int(got_data[j]) == int(expected[idx])
        if got_last is not None:
            ok &= bool(got_last[j]) == want_last
        if not ok:
            bad += 1
            if len(lines) < max_report:
                row, pos = _locate(idx, starts)
                lines.append(f"output {j}: row {row} position {pos} input {int(inputs[idx])}: expected "
                             f"{int(expected[idx])} (last={int(want_last)}), got {int(got_data[j])}"
                             + ("" if got_last is None else f" (last={int(got_last[j])})"))
    header = (f"{job['op']} [{job['config_hash']}] {job['sim']} {job['name']}: {bad} mismatches in "
              f"{n} outputs; configuration {job['config']}")
    return {"checked": n, "mismatches": bad, "report": "\n".join([header] + lines) if bad else ""}
