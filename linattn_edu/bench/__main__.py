"""``python -m linattn_edu.bench``: see :mod:`linattn_edu.bench.cli`."""

import sys

from .cli import main

sys.exit(main())
