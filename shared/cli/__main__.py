"""``python -m avsets.cli ARGS``: the same as ``avsets ARGS``."""

import sys

from avsets.cli.app import main

sys.exit(main())
