"""capa-camera: Cameras for capa."""

__version__ = "0.1.0"
