"""The SN's channel to its DNs (server/offload/wire.py): calls go as WebSocket messages,
big bodies as HTTP; a DN that goes away is 503 and is reached again when it is back;
a DN answers a bad message without falling over."""
import asyncio
import json
import os
import signal
import time
import uuid

import aiohttp
import numpy as np
import requests

from conftest import cluster_env, make_home, start_cluster
from server.core import frames
from server.core.ids import node_index
from server.offload.wire import CHANNEL_PATH, MESSAGE_BYTES

U1 = ("test_user1", "test")
BIN = {"Content-Type": "application/octet-stream", "Accept": "application/octet-stream"}


def _health(url):
    return requests.get(url + "/health", timeout=5).json()


def _wait(check, what, timeout=30):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            if check():
                return
        except requests.RequestException:
            pass
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def test_calls_ride_the_channel_and_a_restarted_dn_is_reached_again(tmp_path):
    cluster = start_cluster(tmp_path, cluster_env(tmp_path, "posix"))
    try:
        make_home(cluster.endpoint)
        ep, domain = cluster.endpoint, f"/home/test_user1/w{uuid.uuid4().hex[:8]}.h5"
        params = {"domain": domain}
        root = requests.put(ep + "/", params=params, auth=U1, timeout=10).json()["root"]
        # one group per DN at least: each DN then holds an SN channel
        groups = [requests.post(ep + "/groups", params=params, auth=U1, timeout=10,
                                json={"link": {"id": root, "name": f"g{i}"}}).json()["id"]
                  for i in range(8)]
        for url in cluster.dn_urls:
            assert _health(url)["channels"] >= 1, url
        # a write bigger than a message (HTTP) and a small one (a message): both kept
        did = requests.post(ep + "/datasets", params=params, auth=U1, timeout=10, json={
            "type": "H5T_STD_U8LE", "shape": [2 * MESSAGE_BYTES],
            "creationProperties": {"layout": {"class": "H5D_CHUNKED",
                                              "dims": [2 * MESSAGE_BYTES]}}}).json()["id"]
        big = np.random.default_rng(1).integers(0, 255, 2 * MESSAGE_BYTES, np.uint8)
        rsp = requests.put(f"{ep}/datasets/{did}/value", params=params, auth=U1, timeout=30,
                           data=big.tobytes(), headers=BIN)
        assert rsp.status_code == 200
        rsp = requests.put(f"{ep}/datasets/{did}/value", auth=U1, timeout=10, headers=BIN,
                           params={**params, "select": "[5:9]"}, data=bytes([1, 2, 3, 4]))
        assert rsp.status_code == 200
        big[5:9] = [1, 2, 3, 4]
        rsp = requests.get(f"{ep}/datasets/{did}/value", params=params, auth=U1, timeout=30,
                           headers=BIN)
        assert rsp.status_code == 200 and rsp.content == big.tobytes()

        # the DN owning a group is killed: its group is 503, then served once it is back
        gid = groups[0]
        i = node_index(gid, len(cluster.dn_urls))
        pid = int((cluster.run_dir / f"dn-{i + 1:03d}.pid").read_text())
        requests.put(ep + "/", params=params, auth=U1, timeout=30, json={"flush": 1})
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        rsp = requests.get(f"{ep}/groups/{gid}", params=params, auth=U1, timeout=10)
        assert rsp.status_code == 503 and "error" in rsp.json()
        name = f"dn-{i + 1:03d}"
        cluster._spawn(name, name, "server.dn.main", {"DN_PORT": str(cluster.dn_ports[i])})
        _wait(lambda: requests.get(f"{ep}/groups/{gid}", params=params, auth=U1,
                                   timeout=5).status_code == 200, "the group to be served")
        assert _health(cluster.dn_urls[i])["channels"] >= 1
    finally:
        cluster.stop()


def test_a_dn_answers_bad_messages_and_keeps_serving(tmp_path):
    cluster = start_cluster(tmp_path, cluster_env(tmp_path, "posix"), dn_count=1)
    url = cluster.dn_urls[0]

    async def talk():
        async with aiohttp.ClientSession() as session:
            async with session.ws_connect(url + CHANNEL_PATH) as ws:
                await ws.send_bytes(b"\x01")                     # not a frame
                await ws.send_bytes(frames.pack({"id": 1, "call": "GET /nothing"}))
                await ws.send_bytes(frames.pack({"id": 2, "call": "POST /meta/op",
                                                 "q": {"bucket": "hsdstest", "key": "x"}},
                                                b"{not json"))
                await ws.send_bytes(frames.pack({"id": 3, "call": "GET /meta",
                                                 "q": {"bucket": "hsdstest",
                                                       "key": "db/none/.group.json"}}))
                answers = {}
                while not {1, 2, 3} <= answers.keys():
                    msg = await asyncio.wait_for(ws.receive(), 10)
                    head, body = frames.unpack(msg.data)
                    answers[head["id"]] = (head["status"], json.loads(bytes(body)))
                return answers

    try:
        answers = asyncio.run(talk())
        assert answers[1][0] == 404 and "error" in answers[1][1]
        assert answers[2][0] == 400 and "JSON" in answers[2][1]["error"]
        assert answers[3][0] == 404
        assert _health(url)["state"] == "READY"
    finally:
        cluster.stop()
