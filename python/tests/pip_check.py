#!/usr/bin/python3
"""The package as a Python user installs it (ctest python_pip):

  1. copies the files pip needs (pyproject.toml, setup.py, include/, lib/,
     python/) to WORK/src, so the build sees nothing else of the checkout;
  2. `python3 -m build --wheel --no-isolation` -> WORK/dist/*.whl;
  3. a fresh venv (--system-site-packages: numpy and pytest are Debian's),
     `pip install --no-index` of the wheel (offline), `pip show`, import from
     the venv's site-packages, __version__ == C_VERSION ==
     importlib.metadata.version, py.typed and the stubs present;
  4. the binding's pytest suite (python/tests), once, run by the venv's
     python from outside the checkout, against the installed package
     (FP_EXPECT_INSTALLED makes test_packaging.py assert where framepool was
     imported from). Every test runs; the depth knobs are lowered
     (FP_HYPOTHESIS_SCALE 0.25, FP_STRESS_SECONDS 1, unless set): the same
     sources run at full depth in ctest python_tests, and here the question
     is whether the installed package works;
  5. `pip uninstall -y`: files gone, import fails;
  6. `pip install --no-build-isolation --no-index WORK/src` (a directory, no
     wheel step): installs, imports, checks the metadata, uninstalls (no
     second pytest run).

Every step has a time limit; on failure the step's output is printed and
WORK is kept. Usage: pip_check.py --source DIR --work DIR [--python EXE]
"""
import argparse
import glob
import os
import shutil
import subprocess
import sys
import time

STEP_TIMEOUT = 600


class StepFailed(Exception):
    pass


def step(name, cmd, cwd=None, env=None, timeout=STEP_TIMEOUT, expect_rc=0):
    t0 = time.monotonic()
    shown = [str(c) if len(str(c)) < 120 else "<script>" for c in cmd]
    print(f"== {name}: {' '.join(shown)}", flush=True)
    try:
        r = subprocess.run([str(c) for c in cmd], cwd=cwd, env=env, timeout=timeout,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    except subprocess.TimeoutExpired as e:
        out = e.stdout.decode(errors="replace") if isinstance(e.stdout, bytes) else (e.stdout or "")
        raise StepFailed(f"{name}: no result within {timeout} s\n{out}") from None
    dt = time.monotonic() - t0
    if expect_rc is not None and r.returncode != expect_rc:
        raise StepFailed(f"{name}: exit status {r.returncode} (expected {expect_rc}) "
                         f"after {dt:.1f} s\n{r.stdout}")
    print(f"   ok in {dt:.1f} s", flush=True)
    return r.stdout


def clean_env():
    env = dict(os.environ)
    for k in ("PYTHONPATH", "PYTHONHOME", "PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL",
              "VIRTUAL_ENV", "PYTHONSTARTUP"):
        env.pop(k, None)
    env["PIP_NO_INDEX"] = "1"           # offline: nothing may be downloaded
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


def copy_source(src, dst):
    shutil.rmtree(dst, ignore_errors=True)
    os.makedirs(dst)
    for f in ("pyproject.toml", "setup.py", "README.md"):
        shutil.copy2(os.path.join(src, f), dst)
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info", ".mypy_cache", "*.o", "*.so")
    for d in ("include", "lib", "python"):
        shutil.copytree(os.path.join(src, d), os.path.join(dst, d), ignore=ignore)


IMPORT_CHECK = r"""
import importlib.metadata as md, os, sys, sysconfig
import framepool
site = sysconfig.get_path("platlib")
assert framepool.__file__.startswith(site + os.sep), (framepool.__file__, site)
assert sys.prefix != sys.base_prefix, "not in a venv"
v = md.version("framepool")
assert framepool.__version__ == framepool.C_VERSION == v, (framepool.__version__, framepool.C_VERSION, v)
pkg = os.path.dirname(framepool.__file__)
for f in ("py.typed", "__init__.pyi", "_framepool.pyi"):
    assert os.path.exists(os.path.join(pkg, f)), f
files = [str(f) for f in md.files("framepool")]
assert any(f.startswith("framepool/_framepool") and f.endswith(".so") for f in files), files
with framepool.open(sys.argv[1], format="gray8") as r:
    n = sum(1 for _ in r)
assert n > 0
print("imported", framepool.__file__, "version", v, "frames", n)
"""

GONE_CHECK = r"""
import importlib.metadata as md, importlib.util, sys
assert importlib.util.find_spec("framepool") is None, importlib.util.find_spec("framepool")
try:
    md.version("framepool")
except md.PackageNotFoundError:
    print("uninstalled")
else:
    sys.exit("metadata still present")
"""


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--source", required=True)
    ap.add_argument("--work", required=True)
    ap.add_argument("--python", default="/usr/bin/python3")
    a = ap.parse_args()
    src, work = os.path.abspath(a.source), os.path.abspath(a.work)
    env = clean_env()
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    venv = os.path.join(work, "venv")
    vpy = os.path.join(venv, "bin", "python")
    try:
        copy_source(src, os.path.join(work, "src"))
        clip = os.path.join(work, "clip.mp4")
        step("clip", ["ffmpeg", "-nostdin", "-v", "error", "-y", "-f", "lavfi", "-i",
                      "testsrc2=size=160x120:rate=25", "-t", "1", "-pix_fmt", "yuv420p",
                      "-c:v", "libx264", clip], env=env, timeout=120)
        step("wheel", [a.python, "-m", "build", "--wheel", "--no-isolation", "--outdir",
                       os.path.join(work, "dist"), os.path.join(work, "src")], env=env)
        wheels = glob.glob(os.path.join(work, "dist", "framepool-*.whl"))
        if len(wheels) != 1:
            raise StepFailed(f"expected one wheel in {work}/dist, found {wheels}")
        step("venv", [a.python, "-m", "venv", "--system-site-packages", venv], env=env,
             timeout=120)
        step("pip install wheel", [vpy, "-m", "pip", "install", "--no-index", wheels[0]],
             env=env)
        out = step("pip show", [vpy, "-m", "pip", "show", "-f", "framepool"], env=env,
                   timeout=120)
        if "Location: " + os.path.join(venv, "lib") not in out:
            raise StepFailed(f"pip show: not installed in the venv\n{out}")
        print(step("import", [vpy, "-c", IMPORT_CHECK, clip], cwd=work, env=env, timeout=120))
        penv = dict(env, FP_EXPECT_INSTALLED=venv, FP_SOURCE_DIR=src)
        penv.setdefault("FP_HYPOTHESIS_SCALE", "0.25")
        penv.setdefault("FP_STRESS_SECONDS", "1")
        print(step("pytest (installed package)",
                   [vpy, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--capture=sys",
                    os.path.join(src, "python", "tests")], cwd=work, env=penv, timeout=900)
              .strip().splitlines()[-1])
        step("pip uninstall", [vpy, "-m", "pip", "uninstall", "-y", "framepool"], env=env,
             timeout=120)
        step("gone", [vpy, "-c", GONE_CHECK], cwd=work, env=env, timeout=60)
        step("pip install dir", [vpy, "-m", "pip", "install", "--no-build-isolation",
                                 "--no-index", os.path.join(work, "src")], env=env)
        print(step("import (dir)", [vpy, "-c", IMPORT_CHECK, clip], cwd=work, env=env,
                   timeout=120))
        step("pip uninstall (dir)", [vpy, "-m", "pip", "uninstall", "-y", "framepool"],
             env=env, timeout=120)
        step("gone (dir)", [vpy, "-c", GONE_CHECK], cwd=work, env=env, timeout=60)
    except StepFailed as e:
        print(f"FAIL {e}\n(kept {work})", file=sys.stderr)
        return 1
    shutil.rmtree(work, ignore_errors=True)
    print("PASS: wheel and directory installs, pytest against the installed package, uninstall")
    return 0


if __name__ == "__main__":
    sys.exit(main())
