"""``python -m s3repo_core.cli``: the ``s3repo`` command."""

import sys

from . import main

if __name__ == "__main__":
    sys.exit(main())
