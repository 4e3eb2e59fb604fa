"""Run every benchmark script in this folder (``make bench``), each in its own process.

A benchmark is any ``benchmarks/*.py`` other than this file; it prints its measurements and exits
non-zero when it misses its target. This runner prints each one's output and fails if any failed.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main() -> int:
    failed = []
    scripts = sorted(
        p for p in HERE.glob("*.py") if p.name != Path(__file__).name and not p.name.startswith("_")
    )
    for script in scripts:
        print(f"=== {script.name}", flush=True)
        if subprocess.run([sys.executable, str(script)], cwd=HERE.parent).returncode != 0:
            failed.append(script.name)
    print(
        f"=== {len(scripts) - len(failed)}/{len(scripts)} benchmarks passed"
        + (f"; failed: {failed}" if failed else "")
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
