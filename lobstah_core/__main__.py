"""``python -m lobstah_core`` runs the ``lobstah-core`` command line."""

import sys

from .cli import main

sys.exit(main())
