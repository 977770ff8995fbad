"""Shared set-up of the python.* tests: the miniature packages, built once per process (or
taken from TPDIFF_MINI_PACKAGES, which the ctest fixture python.build_packages fills)."""

import atexit
import os
import shutil
import sys
import tempfile

PYTHON_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MINIATURE_DIR = os.path.join(PYTHON_DIR, "examples", "miniature")
for path in (PYTHON_DIR, MINIATURE_DIR):
    if path not in sys.path:
        sys.path.insert(0, path)

import build_packages  # noqa: E402

_built = None


def mini_packages() -> str:
    """Folder holding mini-flow, mini-vp-eps and mini-vp-v."""
    global _built
    ready = os.environ.get("TPDIFF_MINI_PACKAGES")
    if ready and all(os.path.isfile(os.path.join(ready, name, "model.json"))
                     for name in build_packages.PACKAGES):
        return ready
    if _built is None:
        _built = tempfile.mkdtemp(prefix="tpdiff-mini-")
        atexit.register(shutil.rmtree, _built, True)
        build_packages.build(_built, log=None)
    return _built
