"""``python -m linattn_edu.viz [FOLDER]``: render the PNGs of the timing records in FOLDER (default assets)."""

import sys

from .assets import main

sys.exit(main())
