"""`python -m rl2048_engine`: run the engine's JSON-lines server (see server.py)."""

import sys

from . import use_expandable_segments

use_expandable_segments()  # before torch is imported, so before CUDA starts

from .server import main  # noqa: E402

sys.exit(main())
