"""The forward pass of rnnkit against its NumPy reference on S1 and S2: a shortcut for

    python -m rnnkit bench --mode forward --peers rnnkit,numpy --case S1,S2 [more options]

The harness lives in ``rnnkit.bench`` (``python -m rnnkit bench --help``); this file only fixes its
options, and any given here (--threads, --rounds, --pause, ...) are passed on, later ones winning.
"""

import sys

from rnnkit.bench import main

if __name__ == "__main__":
    sys.exit(main(["--mode", "forward", "--peers", "rnnkit,numpy", "--case", "S1,S2", *sys.argv[1:]]))
