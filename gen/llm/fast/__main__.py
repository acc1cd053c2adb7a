"""``python -m spikeops.gen.llm.fast [--repeats R] [--threads T] ...`` is
``spikeops bench --fast-backend [--repeats R] [--threads T] ...`` (:mod:`spikeops.gen.bench`)."""

import sys

from spikeops.gen.cli import main

sys.exit(main(["bench", "--fast-backend", *sys.argv[1:]]))
