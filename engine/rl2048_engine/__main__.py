"""`python -m rl2048_engine`: run the engine's JSON-lines server (see server.py)."""

import sys

from .server import main

sys.exit(main())
