"""The command lines' shared argument parser: a usage mistake is one line and exit code 2."""

from __future__ import annotations

import argparse
import sys
from typing import NoReturn


class ArgumentParser(argparse.ArgumentParser):
    """``argparse.ArgumentParser`` whose errors print ``prog: error: message`` only (no usage
    block), like the commands' other input errors; ``--help`` still shows the full usage."""

    def error(self, message: str) -> NoReturn:
        print(f"{self.prog}: error: {' '.join(message.split())} (see {self.prog} --help)", file=sys.stderr)
        sys.exit(2)
