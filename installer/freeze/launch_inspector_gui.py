"""The frozen ``inspector-gui`` program: the operator station's window."""

import multiprocessing
import sys

if __name__ == "__main__":
    multiprocessing.freeze_support()
    from inspector_gui.app import main

    sys.exit(main())
