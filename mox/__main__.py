"""``python -m mox`` runs the command line, like the ``mox`` console script."""

import sys

from mox.cli.main import main

sys.exit(main())
