"""capa-sartorius: Sartorius balances for capa."""

__version__ = "0.1.0"
