"""``python -m benchmarks.validation``: see :mod:`benchmarks.validation.run`."""

import sys

from .run import main

sys.exit(main())
