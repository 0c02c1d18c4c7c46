"""``python -m lobstah_tui`` runs the ``lobstah-tui`` dashboard."""

import sys

from .app import main

sys.exit(main())
