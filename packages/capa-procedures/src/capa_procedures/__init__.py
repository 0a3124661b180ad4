"""capa-procedures: Built-in procedures and method steps for capa."""

__version__ = "0.1.0"
