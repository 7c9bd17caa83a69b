"""`python -m vitpose.cli ...`: the `vitpose` command (as `python -m vitpose`)."""

import sys

from vitpose.cli import main

if __name__ == "__main__":
    sys.exit(main())
