"""bench/client_ceiling.py: the workload client's own read ceiling (compare.py runs it
each round)."""
import importlib.util
import json
import subprocess
import sys
from pathlib import Path

from server.launch import free_ports

PATH = Path(__file__).resolve().parent.parent / "bench" / "client_ceiling.py"
spec = importlib.util.spec_from_file_location("client_ceiling", PATH)
ceiling = importlib.util.module_from_spec(spec)
spec.loader.exec_module(ceiling)


def test_it_reads_the_workloads_array_in_the_workloads_blocks():
    # workload.py at scale 1: 8192 x 8192 float32 in 32 MiB row blocks
    assert ceiling.shape_of(1) == (8192, 1024)
    n, rows = ceiling.shape_of(0.1)
    assert n % 256 == 0 and rows * n * 4 <= 32 * 2**20 < (rows + 1) * n * 4


def test_it_prints_both_passes_as_one_json_line():
    out = subprocess.run([sys.executable, str(PATH), "--scale", "0.02", "--passes", "2",
                          "--port", str(free_ports(1))],
                         capture_output=True, text=True, timeout=120, check=True).stdout
    figures = json.loads(out.strip().splitlines()[-1])
    assert set(figures) == {"client_read_MiBps", "client_read_warm_MiBps"}
    assert all(v > 0 for v in figures.values())
