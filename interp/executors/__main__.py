"""``python -m interp.executors FD``: a `Processes` worker on the inherited socket FD."""

import contextlib
import sys
from multiprocessing.connection import Connection

from interp.executors.worker import serve

# EOFError: the driver went away, so nothing is left to do.
with contextlib.suppress(EOFError, KeyboardInterrupt):
    serve(Connection(int(sys.argv[1])))
