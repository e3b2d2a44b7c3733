"""``python -m train``: the same as ``llmsched-train``."""

from .cli import main

raise SystemExit(main())
