"""``python -m p2pml_py`` runs the command-line interface."""

from p2pml_py.apps.cli import main

raise SystemExit(main())
