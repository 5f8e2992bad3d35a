"""A websocket subscriber that follows the change feed (ws /v1/watch) of a
cluster whose agents come and go: the rolling tests of tests/cluster (agents
as processes) and of e2e/ (agents as containers) both use it.

It subscribes to a key prefix from given revisions; when its agent goes away
(the connection closes, or stays silent for a few receive timeouts while the
tests keep writing: a killed or cut-off agent sends no FIN), it connects to
another agent and resumes after the last revision it saw of each shard. The
test then checks that every shard's changes came once, in order, without a
gap (`first_gap`), across those moves.
"""
import json
import threading
import time

import websocket

RECV_TIMEOUT = 2.0
# Receive timeouts in a row after which the agent counts as gone.
STALE_RECVS = 3


class FeedFollower:
    def __init__(self, address, start, prefix="user:", topics=()):
        """address(n): the HTTP host:port of the agent to use on connection
        attempt n, or None while no agent is up. start: {shard: revision}
        to follow after (copied). topics: follow the entries produced to
        these topics as well (prefix None: only them); the event's key is
        the entry's key."""
        self.address = address
        self.prefix = prefix
        self.topics = list(topics)
        self.stop = threading.Event()
        self.start = dict(start)
        self.last = dict(start)  # resume after these
        self.events = {s: [] for s in start}  # shard -> [(revision, key)]
        self.reconnects = 0  # connections that ended while following
        self.cut_off = 0  # ended by the agent as too slow (the client's fault): resumed
        self.errors = []
        self.via = None  # the address of the current (or last) connection
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self):
        attempt = 0
        while not self.stop.is_set():
            addr = self.address(attempt)
            attempt += 1
            if addr is None:
                time.sleep(0.1)
                continue
            try:
                ws = websocket.create_connection(f"ws://{addr}/v1/watch", timeout=RECV_TIMEOUT,
                                                 suppress_origin=True)
            except (OSError, websocket.WebSocketException):
                time.sleep(0.1)
                continue
            self.via = addr
            try:
                self.follow(ws)
            except (OSError, websocket.WebSocketException, ValueError):
                pass
            finally:
                ws.close()
            self.reconnects += 1

    def follow(self, ws):
        sub = {"from": {str(s): r for s, r in self.last.items()}}
        if self.prefix is not None:
            sub["prefix"] = self.prefix
        if self.topics:
            sub["topics"] = self.topics
        ws.send(json.dumps({"subscribe": sub}))
        quiet = 0
        while not self.stop.is_set():
            try:
                msg = json.loads(ws.recv())
            except websocket.WebSocketTimeoutException:
                quiet += 1
                if quiet >= STALE_RECVS:
                    return
                continue
            quiet = 0
            if "subscribed" in msg:
                continue
            if msg.get("error") == "too_slow":
                self.cut_off += 1
                return
            if "error" in msg or "type" not in msg:
                self.errors.append(msg)
                return
            s, rev = msg["shard"], msg["revision"]
            self.events[s].append((rev, msg["key"]))
            self.last[s] = max(self.last[s], rev)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join(10)

    def caught_up(self, revisions):
        """True once every shard's last revision seen is at least revisions[shard]."""
        return all(self.last[s] >= r for s, r in revisions.items())

    def first_gap(self):
        """None when every shard's revisions came once, in order, from its
        start revision + 1 without a gap; else a message naming the first
        shard that did not."""
        for s, evs in sorted(self.events.items()):
            revs = [r for r, _ in evs]
            first = self.start[s] + 1
            if revs != list(range(first, first + len(revs))):
                after = next((a for a, b in zip(revs, revs[1:]) if b != a + 1), None)
                return (f"shard {s}: the feed delivered revisions out of order, twice or with "
                        f"a gap (first problem after revision {after}; "
                        f"{self.reconnects} reconnects)")
        return None

    def missing(self, acked):
        """The (key, shard, revision) of `acked` the feed did not deliver as such."""
        seen = {(s, r): k for s, evs in self.events.items() for r, k in evs}
        return [(k, s, r) for k, s, r in acked if seen.get((s, r)) != k]
