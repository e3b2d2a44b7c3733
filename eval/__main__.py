"""``python -m eval``: the same as ``llmsched-eval``."""

from .cli import main

if __name__ == "__main__":
    raise SystemExit(main())
