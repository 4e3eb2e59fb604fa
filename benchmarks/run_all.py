"""Run every benchmark script in this folder (``make bench``), each in its own process.

A benchmark is any ``benchmarks/*.py`` other than this file; it prints its measurements and exits
non-zero when it misses its target (2: nothing measured here, e.g. no GPU). This runner prints each
one's output and fails if any missed.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
#: Exit status of a benchmark that cannot measure on this machine (``gpu.py`` without a CUDA GPU).
NOT_MEASURED = 2


def main() -> int:
    failed, not_measured = [], []
    scripts = sorted(
        p for p in HERE.glob("*.py") if p.name != Path(__file__).name and not p.name.startswith("_")
    )
    for script in scripts:
        print(f"=== {script.name}", flush=True)
        code = subprocess.run([sys.executable, str(script)], cwd=HERE.parent).returncode
        if code == NOT_MEASURED:
            not_measured.append(script.name)
        elif code != 0:
            failed.append(script.name)
    print(
        f"=== {len(scripts) - len(failed) - len(not_measured)}/{len(scripts)} benchmarks passed"
        + (f"; failed: {failed}" if failed else "")
        + (f"; not measured on this machine: {not_measured}" if not_measured else "")
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
