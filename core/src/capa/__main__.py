"""``python -m capa`` runs the ``capa`` command."""

from capa.cli.main import main

if __name__ == "__main__":
    main()
