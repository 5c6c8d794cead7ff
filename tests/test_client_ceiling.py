"""bench/client_ceiling.py: the workload client's own read and metadata ceilings
(compare.py runs it each round)."""
import importlib.util
import json
import multiprocessing
import subprocess
import sys
import time
from pathlib import Path

import requests

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


def test_it_prints_every_figure_as_one_json_line():
    out = subprocess.run([sys.executable, str(PATH), "--scale", "0.02", "--passes", "2",
                          "--port", str(free_ports(1))],
                         capture_output=True, text=True, timeout=120, check=True).stdout
    figures = json.loads(out.strip().splitlines()[-1])
    assert set(figures) == {"client_read_MiBps", "client_read_warm_MiBps",
                            "client_meta_ops_per_s"}
    assert all(v > 0 for v in figures.values())


def test_the_metadata_pass_lists_back_the_groups_it_made():
    port = free_ports(1)
    server = multiprocessing.Process(target=ceiling.serve, args=(port, 256, 1), daemon=True)
    server.start()
    try:
        session, endpoint = requests.Session(), f"http://127.0.0.1:{port}"
        for _ in range(100):
            try:
                session.get(endpoint + "/b", params={"rows": 1})
                break
            except requests.ConnectionError:
                time.sleep(0.1)
        assert ceiling.meta_once(session, endpoint, groups=5) > 0   # it checks the listing
        made = session.post(endpoint + "/groups", json={"link": {"id": "g-root", "name": "p"}})
        pid = made.json()["id"]
        assert session.get(f"{endpoint}/groups/{pid}/links").json() == {"links": []}
        session.post(endpoint + "/groups", json={"link": {"id": pid, "name": "c"}})
        listed = session.get(f"{endpoint}/groups/{pid}/links").json()["links"]
        assert [lk["title"] for lk in listed] == ["c"]
    finally:
        server.terminate()
