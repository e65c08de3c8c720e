"""Entry point of a worker process: ``python -m p2pml_py.apps.superpeer.worker_main`` (kept apart
from :mod:`.worker` so that module's logger keeps its name instead of ``__main__``)."""

import sys

from p2pml_py.apps.superpeer.worker import main

sys.exit(main())
