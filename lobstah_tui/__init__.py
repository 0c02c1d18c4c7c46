"""lobstah_tui: the Textual dashboard of a Lobstah node (``lobstah-tui``)."""
