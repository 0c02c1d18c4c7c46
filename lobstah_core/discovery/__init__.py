"""Finding peers, only when the user opts in: trackers (and, later, Nostr relays)."""
