"""The frozen ``inspector`` command: what the console script does in an installed venv."""

import multiprocessing
import sys

if __name__ == "__main__":
    # A frozen program that starts a child process must let the child run the child's code.
    multiprocessing.freeze_support()
    from core.cli import main

    sys.exit(main())
