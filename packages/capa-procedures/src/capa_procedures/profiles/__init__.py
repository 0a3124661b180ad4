"""Domain profiles shipped with capa-procedures."""

from capa_procedures.profiles.cone_calorimeter import ConeCalorimeterPyrolysis

__all__ = ["ConeCalorimeterPyrolysis"]
