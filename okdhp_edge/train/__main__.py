"""`python -m okdhp_edge.train` (see cli.py, or run with --help)."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
