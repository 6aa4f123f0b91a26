"""Child interpreter for one isolated column: ``python -m benchmarks.worker COLUMN SIZE ...``."""

import sys

from benchmarks.suite import worker_main

if __name__ == "__main__":
    worker_main(sys.argv[1:])
