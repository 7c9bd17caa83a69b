"""`python -m vitpose ...` (and `torchrun ... -m vitpose train ...`): the `vitpose` command."""

import sys

from vitpose.cli import main

if __name__ == "__main__":
    sys.exit(main())
