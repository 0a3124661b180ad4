"""capa-gui: the capa operator console, a local web app (``capa gui [CONFIG]``).

Set up an experiment (validation, device handshakes, method), start and stop runs,
watch them live (plots, numbers, events, health), answer operator prompts, send manual
commands, and review sealed runs. Also serves ``capa run CONFIG --serve``.
"""

__version__ = "0.1.0"
