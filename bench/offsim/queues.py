"""FIFO queues in one vectorised pass (Lindley's recursion), a pool of c servers, and the
small event engine that drives invocations holding a Lambda slot and the SN's core."""
from __future__ import annotations

import heapq

import numpy as np

# ----------------------------------------------------------------------------- queues

def fifo1(arrive, service):
    """One server, jobs served in the given order (arrivals sorted): the departures.
    Lindley: d_i = max(a_i, d_{i-1}) + s_i, i.e. d_i = S_i + max_{j<=i} (a_j - S_{j-1})
    with S the running sum of service times; along the last axis."""
    total = np.cumsum(service, axis=-1)
    return total + np.maximum.accumulate(arrive - (total - service), axis=-1)


def pool(service, c):
    """c servers, every job present at time 0, each taken by the first free server in
    order (a connection pool): the completion times, relative to 0. service: 2-D (rows
    are independent pools)."""
    rows, cols = service.shape
    if cols <= c:
        return service.copy()
    if rows >= 32:              # one numpy step per column, across all rows: exact greedy
        done = np.empty_like(service)
        done[:, :c] = service[:, :c]
        free = service[:, :c].copy()
        at = np.arange(rows)
        for j in range(c, cols):
            k = free.argmin(axis=1)
            done[:, j] = free[at, k] + service[:, j]
            free[at, k] = done[:, j]
        return done
    done = np.empty_like(service)          # few rows: a heap of free times per row
    for r in range(rows):
        row = service[r].tolist()
        free = row[:c]
        heapq.heapify(free)
        out = row[:c]
        push, add = heapq.heapreplace, out.append
        for s in row[c:]:
            t = free[0] + s
            push(free, t)
            add(t)
        done[r] = out
    return done


def invocations(t0, send, flight, ingest, slots: int, one_pass: bool = True, relay=None):
    """The SN's side of the Lambda plan, an event simulation over invocations.

    Call i waits for one of `slots` concurrency slots (FIFO), then for the SN's core to
    send it (send[i] ms), is in flight for flight[i] ms (overhead, cold start, the
    function's work, the answer's way back), frees its slot, passes the relay if there is
    one (relay[i] ms in one FIFO server: the local Invoke gateway), and waits for the core
    again to ingest its answer (ingest[i] ms). The core and the relay are FIFO servers,
    so the jobs can be taken from a heap of (arrival, sequence, kind, call): an arrival
    pushed always lies after the job being served. Returns (time each answer is
    ingested, the core's busy ms)."""
    k = len(send)
    busy = float(send.sum() + ingest.sum())
    if relay is None:
        relay = np.zeros(k)
    if k <= slots and one_pass:
        # one wave: every send arrives at t0, before any answer, so the core sends them
        # all, then ingests the answers in arrival order (the same result, vectorised)
        sent = t0 + np.cumsum(send)
        back = sent + flight
        order = np.argsort(back, kind="stable")
        relayed = fifo1(back[order], relay[order])
        done = np.empty(k)
        done[order] = fifo1(np.maximum(relayed, sent[-1]), ingest[order])
        return done, busy
    SEND, RELAY, INGEST = 0, 1, 2
    heap = [(t0, i, SEND, i) for i in range(min(k, slots))]
    seq, waiting, free_at, relay_free, done = k, min(k, slots), t0, t0, np.empty(k)
    send, flight, ingest, relay = send.tolist(), flight.tolist(), ingest.tolist(), relay.tolist()
    while heap:
        t, _, kind, i = heapq.heappop(heap)
        if kind == RELAY:
            relay_free = max(t, relay_free) + relay[i]
            heapq.heappush(heap, (relay_free, seq, INGEST, i))
            seq += 1
            continue
        start = t if t > free_at else free_at
        if kind == SEND:
            free_at = start + send[i]
            back = free_at + flight[i]
            if waiting < k:                # the slot goes to the next call in line
                heapq.heappush(heap, (back, seq, SEND, waiting))
                waiting += 1
            heapq.heappush(heap, (back, seq + 1, RELAY, i))
            seq += 2
        else:
            free_at = start + ingest[i]
            done[i] = free_at
    return done, busy
