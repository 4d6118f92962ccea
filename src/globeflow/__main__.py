"""``python -m globeflow ...``: the ``globeflow`` command."""

import sys

from globeflow.apps.cli import main

__all__: list[str] = []

if __name__ == "__main__":
    sys.exit(main())
