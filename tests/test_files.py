"""Files spikeops writes atomically get the mode a plain ``open`` would give them, not mkstemp's
0600 (a capture, a kept row or a Verilog file shared with a team must stay readable)."""

import os
import stat

from spikeops.gen.files import file_mode, write_atomic
from spikeops.golden import capture


def _mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


def test_atomic_writes_follow_the_umask(tmp_path):
    old = os.umask(0o022)
    try:
        assert file_mode() == 0o644
        plain = tmp_path / "plain.txt"
        plain.write_text("x")
        assert _mode(write_atomic(tmp_path / "kept.json", "{}")) == _mode(plain) == 0o644
        assert _mode(capture.save(capture.Capture([], {"model": "none"}), tmp_path / "c.npz")) == 0o644
        os.umask(0o077)
        assert _mode(write_atomic(tmp_path / "private.json", "{}")) == 0o600
    finally:
        os.umask(old)
