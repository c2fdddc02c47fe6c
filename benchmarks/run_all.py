"""Run every benchmark in turn (each prints its table and writes JSON to benchmarks/results/).

python benchmarks/run_all.py           # about 8 minutes on 2 CPU cores
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent

for script in ("bench_generation.py", "bench_lsqml.py", "bench_pinn.py"):
    print(f"\n=== {script}", flush=True)
    subprocess.run([sys.executable, str(HERE / script)], check=True)
