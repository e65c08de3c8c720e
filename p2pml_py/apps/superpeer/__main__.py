"""``python -m p2pml_py.apps.superpeer --config FILE`` (the same as ``p2pml-py superpeer``)."""

import sys

from p2pml_py.apps.superpeer.cli import main

sys.exit(main())
