"""mailbot: remembers which customers the owner should personally write to."""

__version__ = "0.1.0"
