"""``python -m golden`` aliases the ``semdialect`` console script."""

import sys

from semdialect.cli import main

sys.exit(main())
