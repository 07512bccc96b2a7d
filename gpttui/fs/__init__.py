"""File-system primitives every layer shares, data/ included (it sits below run/): the one
atomic write and the one lock. Standard library only."""
