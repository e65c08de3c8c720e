"""``python -m p2pml_py.loadtest [locust options]``: Locust with the shipped locustfile.

``--path`` prints the locustfile's path instead (``locust -f "$(python -m p2pml_py.loadtest
--path)" ...``). Locust runs in a process of its own: it monkey-patches whatever imports it.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

from p2pml_py.loadtest import LOCUSTFILE


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args == ["--path"]:
        print(LOCUSTFILE)
        return 0
    command = [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), *args]
    os.execv(sys.executable, command)
    return 127  # not reached: execv replaces this process


if __name__ == "__main__":
    sys.exit(main())
