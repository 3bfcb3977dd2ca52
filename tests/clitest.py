"""Shared by the black-box CLI tests (test_cli.py, test_index_cli.py): run
the sembed binary named on the command line, count checks, report.

    from clitest import SEMBED, run, check, report
"""
import subprocess, sys

SEMBED = sys.argv[1] if len(sys.argv) > 1 else "build/sembed"
_counts = {"passed": 0, "failed": 0}


def run(*args, input=None):
    """Runs sembed with args; returns (exit code, stdout, stderr) as text."""
    p = subprocess.run([SEMBED, *args], input=input, capture_output=True)
    return p.returncode, p.stdout.decode("utf-8", "replace"), p.stderr.decode("utf-8", "replace")


def check(name, cond, detail=""):
    """Counts one check; a failure is printed with its detail."""
    if cond:
        _counts["passed"] += 1
    else:
        _counts["failed"] += 1
        print(f"FAIL {name} {detail}", file=sys.stderr)


def report(suite):
    """Prints "<suite>: N passed, N failed" and exits non-zero on failure."""
    print(f"{suite}: {_counts['passed']} passed, {_counts['failed']} failed")
    sys.exit(1 if _counts["failed"] else 0)
