#!/usr/bin/python3
"""Runs the Python package's pytest suite (tests/python/) against one build.

Run from the repo root: /usr/bin/python3 tests/test_python.py build/sembed
The package is used from python/ (no install needed) with the libsembed.so
next to the given sembed binary (SEMBED_LIBRARY). Under a sanitizer build
(the library links libasan) the sanitizer runtimes are preloaded into the
Python process. Prints "test_python: N passed, N failed" and exits
non-zero on failure.
"""
import os
import re
import subprocess
import sys


def sanitizer_preload(lib):
    """LD_PRELOAD entries for the sanitizer runtimes lib links, if any."""
    out = subprocess.run(["ldd", lib], capture_output=True, text=True).stdout
    return re.findall(r"\slib(?:asan|ubsan|tsan)\.so\S* => (\S+)", out)


def main():
    sembed_bin = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else "build/sembed")
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    lib = os.path.join(os.path.dirname(sembed_bin), "libsembed.so")
    env = dict(os.environ, SEMBED_BIN=sembed_bin, SEMBED_LIBRARY=lib, PYTHONPATH=os.path.join(root, "python"),
               PYTHONDONTWRITEBYTECODE="1")
    try:
        import pytest  # noqa: F401  (Debian's python3-pytest)
    except ImportError:
        print("test_python: pytest is missing: apt-get install python3-pytest")
        print("test_python: 0 passed, 1 failed")
        return 1
    pre = sanitizer_preload(lib)
    if pre:
        env["LD_PRELOAD"] = " ".join(pre)
        env["SEMBED_SANITIZER"] = "1"
        env["ASAN_OPTIONS"] = "detect_leaks=0:" + env.get("ASAN_OPTIONS", "")
    p = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/python"], cwd=root,
                       env=env, capture_output=True, text=True)
    sys.stdout.write(p.stdout[-6000:])
    sys.stderr.write(p.stderr[-3000:])
    npass = sum(int(x) for x in re.findall(r"(\d+) passed", p.stdout))
    nfail = sum(int(x) for x in re.findall(r"(\d+) (?:failed|error)", p.stdout))
    if p.returncode != 0 and nfail == 0:
        nfail = 1
    print("test_python: %d passed, %d failed" % (npass, nfail))
    return 0 if p.returncode == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
