"""``python -m avsets.fetch fetch ...`` / ``ledger diff ...`` (the same commands as ``avsets``)."""

import sys

from .cli import main

sys.exit(main())
