"""The ``gmsa`` command line (also ``python -m gmsa_integrations``): the application layer.

One module per sub-command group (``demo``, ``bench``, ``indexing``, ``train``, ``eval``, ``data``);
`main` wires them up. Nothing in the library imports from here.
"""

from .main import build_parser, main

__all__ = ["build_parser", "main"]
