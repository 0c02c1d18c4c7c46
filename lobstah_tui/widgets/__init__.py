"""One panel per module."""
