"""capa-watlow: Watlow EZ-Zone PM temperature controllers for capa."""

__version__ = "0.1.0"
