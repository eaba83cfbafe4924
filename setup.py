"""Builds the Python package framepool (pyproject.toml holds the metadata).

The extension framepool._framepool is self-contained: the library is
compiled into it ("bundled"), from the sources of this checkout --
lib/core/*.c, lib/measure/*.c when that directory exists, lib/av/*.c and
python/*.c, globbed at build time -- with FFmpeg's compile and link flags
from pkg-config (libavformat libavcodec libavutil libswscale zlib). The
module exports only PyInit__framepool, so it cannot clash with a
libframepool.so loaded in the same process. Nothing is downloaded.

The version is the C library's (FP_VERSION_STRING in
include/framepool/base.h), so framepool.__version__ ==
framepool.C_VERSION == importlib.metadata.version("framepool").

Environment: FRAMEPOOL_DEBUG=1 builds without optimisation (-O0 -g);
PKG_CONFIG names another pkg-config; PKG_CONFIG_PATH is honoured.
Intermediate files go to build/setuptools, next to CMake's build trees.
"""
import glob
import os
import re
import shlex
import shutil
import subprocess
import sys

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

HERE = os.path.dirname(os.path.abspath(__file__))
FFMPEG_MODULES = ["libavformat", "libavcodec", "libavutil", "libswscale", "zlib"]


def rel(path):
    """setuptools wants source paths relative to setup.py's directory."""
    return os.path.relpath(path, HERE)


def c_version():
    header = os.path.join(HERE, "include", "framepool", "base.h")
    with open(header, encoding="utf-8") as f:
        m = re.search(r'#define\s+FP_VERSION_STRING\s+"([^"]+)"', f.read())
    if not m:
        sys.exit(f"framepool setup: FP_VERSION_STRING not found in {header}")
    return m.group(1)


def pkg_config(*args):
    exe = os.environ.get("PKG_CONFIG", "pkg-config")
    if not shutil.which(exe):
        sys.exit("framepool setup: pkg-config is needed to find FFmpeg "
                 "(Debian: apt-get install pkg-config)")
    r = subprocess.run([exe, *args, *FFMPEG_MODULES], capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit("framepool setup: pkg-config did not find FFmpeg's development files "
                 f"({' '.join(FFMPEG_MODULES)}):\n{r.stderr.strip()}\n"
                 "Debian: apt-get install libavformat-dev libavcodec-dev libavutil-dev "
                 "libswscale-dev zlib1g-dev")
    return shlex.split(r.stdout)


def sources():
    dirs = ["lib/core", "lib/measure", "lib/av", "python"]
    found = []
    for d in dirs:
        found += sorted(glob.glob(os.path.join(HERE, d, "*.c")))
    for required in ("lib/core", "lib/av", "python"):
        if not glob.glob(os.path.join(HERE, required, "*.c")):
            sys.exit(f"framepool setup: no C sources in {required}/ (run from a framepool "
                     "checkout or an sdist of it)")
    return [rel(s) for s in found]


def include_dirs():
    dirs = ["include", "lib/core", "lib/measure", "lib/av"]
    return [d for d in dirs if os.path.isdir(os.path.join(HERE, d))]


class BuildExt(build_ext):
    """Exports PyInit__framepool only (a version script in the build tree)."""

    def build_extension(self, ext):
        os.makedirs(self.build_temp, exist_ok=True)
        script = os.path.join(self.build_temp, "framepool.map")
        with open(script, "w", encoding="utf-8") as f:
            f.write("{ global: PyInit__framepool; local: *; };\n")
        ext.extra_link_args = ext.extra_link_args + [f"-Wl,--version-script={script}"]
        super().build_extension(ext)


def extension():
    cflags = pkg_config("--cflags")
    libs = pkg_config("--libs")
    debug = os.environ.get("FRAMEPOOL_DEBUG") == "1"
    compile_args = [
        "-std=c11", "-pthread", "-fvisibility=hidden",
        # creation sites read "lib/av/reader.c:57", as in the CMake build
        f"-fmacro-prefix-map={HERE}/=",
        "-Wall", "-Wextra", "-Wno-missing-field-initializers", "-Wno-unused-parameter",
    ] + (["-O0", "-g"] if debug else ["-O2"]) + cflags
    return Extension(
        "framepool._framepool",
        sources=sources(),
        include_dirs=include_dirs(),
        define_macros=[("FP_DEBUG", "1")] if debug else [],
        extra_compile_args=compile_args,
        extra_link_args=["-pthread"] + libs + ["-lm"],
        language="c",
    )


os.makedirs(os.path.join(HERE, "build", "setuptools"), exist_ok=True)
setup(
    version=c_version(),
    package_dir={"": "python"},
    packages=["framepool"],
    package_data={"framepool": ["py.typed", "*.pyi"]},
    ext_modules=[extension()],
    cmdclass={"build_ext": BuildExt},
    zip_safe=False,
    options={
        "build": {"build_base": "build/setuptools"},
        "build_ext": {"parallel": os.cpu_count() or 1},
        "egg_info": {"egg_base": "build/setuptools"},
    },
)
