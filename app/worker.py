"""Entry point of the face workers: ``python -m app.worker [--processes N]``."""

import sys

from app.jobs.runner import main

if __name__ == "__main__":
    sys.exit(main())
