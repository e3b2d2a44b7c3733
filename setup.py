"""Build hook: compile the simulator's hot path with mypyc when possible.

The simulator is plain, typed Python. At install time mypyc (part of mypy) compiles the modules
on its hot path to C extensions, which makes simulations about five times faster. If mypyc or a C
compiler is missing, or ``LLMSCHED_PURE_PYTHON=1`` is set, the package installs as pure Python and
behaves identically, only slower. Everything else about the package is in ``pyproject.toml``.

Editing a compiled module: an editable install builds the extensions next to the sources, so
reinstall (``pip install -e .``) after changing them, or install with ``LLMSCHED_PURE_PYTHON=1``
while developing (``llmsched_env.sim`` warns when a compiled module is older than its source).
"""

import os
import sys

from setuptools import setup

HOT_PATH = [
    "llmsched_env/sim/request.py",
    "llmsched_env/sim/engine.py",
    "llmsched_env/sim/metrics.py",
    "llmsched_env/sim/observe.py",
]


# setuptools runs this file for every build hook (build requirements, metadata, the build);
# only the commands that build need the extensions, and mypyc takes a minute or two each time.
BUILD_COMMANDS = ("build", "build_ext", "bdist_wheel", "editable_wheel", "develop", "install")


def compiled_extensions() -> list:
    if os.environ.get("LLMSCHED_PURE_PYTHON", "") not in ("", "0"):
        return []
    if not any(command in sys.argv[1:] for command in BUILD_COMMANDS):
        return []
    try:
        from mypyc.build import mypycify
    except ImportError:
        print("llmsched: mypyc is not available, installing the pure-Python simulator", file=sys.stderr)
        return []
    try:
        # type errors in modules that are not compiled must not stop the build, and the isolated
        # build environment has no numpy (it is only called, never compiled against)
        extensions = mypycify(["--follow-imports=silent", "--ignore-missing-imports", *HOT_PATH], opt_level="3")
    except (Exception, SystemExit) as err:  # mypyc reports type errors by exiting
        print(f"llmsched: mypyc could not compile the simulator ({err!r}); installing pure Python", file=sys.stderr)
        return []
    for extension in extensions:
        extension.optional = True  # no C compiler: fall back to pure Python
    return extensions


setup(ext_modules=compiled_extensions())
