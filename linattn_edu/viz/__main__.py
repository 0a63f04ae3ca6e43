"""``python -m linattn_edu.viz [PATH ...]``: render the PNGs of timing record files (default: assets/)."""

import sys

from .assets import main

sys.exit(main())
