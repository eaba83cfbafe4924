"""The package as installed: version, where it was imported from, typed files.

Run from the build tree by ctest python_tests, and against a pip-installed
package in a fresh venv by ctest python_pip (pip_check.py sets
FP_EXPECT_INSTALLED to the venv)."""
import importlib.metadata
import os
import pathlib
import re
import sys

import framepool

PKG = pathlib.Path(framepool.__file__).parent
SOURCE_DIR = pathlib.Path(os.environ.get("FP_SOURCE_DIR",
                                         pathlib.Path(__file__).resolve().parents[2]))


def test_version_is_the_c_library_version():
    header = (SOURCE_DIR / "include" / "framepool" / "base.h").read_text()
    c = re.search(r'#define\s+FP_VERSION_STRING\s+"([^"]+)"', header).group(1)
    assert framepool.__version__ == framepool.C_VERSION == c


def test_imported_from_where_it_was_installed():
    expect = os.environ.get("FP_EXPECT_INSTALLED")
    if expect:
        # pip_check.py: the venv's site-packages, never the checkout
        assert sys.prefix == expect, (sys.prefix, expect)
        assert str(PKG).startswith(expect + os.sep), PKG
        assert PKG != SOURCE_DIR / "python" / "framepool"
        assert importlib.metadata.version("framepool") == framepool.__version__
        files = importlib.metadata.files("framepool")
        assert any(str(f).endswith("py.typed") for f in files)
    elif os.environ.get("FP_BINARY_DIR"):
        # ctest python_tests: the build tree's copy
        assert str(PKG).startswith(os.environ["FP_BINARY_DIR"] + os.sep), PKG


def test_typed_package_ships_stubs_and_marker():
    for f in ("py.typed", "__init__.pyi", "_framepool.pyi", "_types.py"):
        assert (PKG / f).is_file(), f"{f} missing from {PKG}"
