"""capa-nidaq: National Instruments DAQ for capa."""

__version__ = "0.1.0"
