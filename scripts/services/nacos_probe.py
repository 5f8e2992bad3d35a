#!/usr/bin/env python3
"""Asks a running r-nacos every v1 open-API call the agent's discovery makes
and prints each request with the server's status, headers that matter and
body, as markdown: the source of NACOS-NOTES.md.

  nacos_probe.py HOST:PORT                  server without auth
  nacos_probe.py HOST:PORT --auth USER PASS server started with --auth
  nacos_probe.py HOST:PORT --expiry         also time how an ephemeral
                                            instance without beats turns
                                            unhealthy and disappears (~40 s)
  nacos_probe.py HOST:PORT --auth U P --token-expiry
                                            time a token's expiry (start the
                                            server with a small
                                            RNACOS_API_LOGIN_TIMEOUT)
"""
import hashlib
import http.client
import sys
import threading
import time
import urllib.parse

SHOWN_HEADERS = ("content-type", "content-md5")


class Probe:
    def __init__(self, addr):
        self.host, port = addr.rsplit(":", 1)
        self.port = int(port)
        self.token = None

    def call(self, method, path, form=None, headers=None, show=True, note=""):
        """One request; returns (status, body). Adds the token when set."""
        if self.token and "accessToken" not in path and "auth/login" not in path:
            path += ("&" if "?" in path else "?") + "accessToken=" + self.token
        body = urllib.parse.urlencode(form) if form is not None else None
        hdrs = dict(headers or {})
        if body is not None:
            hdrs["Content-Type"] = "application/x-www-form-urlencoded"
        c = http.client.HTTPConnection(self.host, self.port, timeout=130)
        t0 = time.monotonic()
        c.request(method, path, body=body, headers=hdrs)
        r = c.getresponse()
        data = r.read().decode("utf-8", "replace")
        took = time.monotonic() - t0
        c.close()
        if show:
            shown_path = path.replace(self.token, "<token>") if self.token else path
            print(f"```\n{method} {shown_path}")
            for k, v in (headers or {}).items():
                print(f"{k}: {v}")
            if body is not None:
                print(f"\n{body.replace(self.token, '<token>') if self.token else body}")
            print(f"\n-> {r.status} {r.reason}  ({took:.3f} s){'  ' + note if note else ''}")
            for k in SHOWN_HEADERS:
                if r.getheader(k):
                    print(f"{k}: {r.getheader(k)}")
            print(f"{data!r}\n```\n")
        return r.status, data, took


def section(title):
    print(f"\n### {title}\n")


def naming(p):
    svc = "memquorum-cluster"
    section("register an ephemeral instance")
    p.call("POST", "/nacos/v1/ns/instance",
           {"serviceName": svc, "ip": "10.213.0.2", "port": 7070, "ephemeral": "true",
            "weight": 1, "enabled": "true", "healthy": "true",
            "metadata": '{"node_id":"n1","incarnation":"7","api_port":"8080"}'})
    section("list (no healthyOnly; healthyOnly=false with namespace, group, cluster)")
    p.call("GET", f"/nacos/v1/ns/instance/list?serviceName={svc}")
    p.call("GET", f"/nacos/v1/ns/instance/list?serviceName={svc}&healthyOnly=false"
                  "&namespaceId=public&groupName=DEFAULT_GROUP&clusters=DEFAULT", show=True)
    section("list of a service nobody registered")
    p.call("GET", "/nacos/v1/ns/instance/list?serviceName=no-such-service")
    section("beat: light form (ip and port as parameters)")
    p.call("PUT", "/nacos/v1/ns/instance/beat",
           {"serviceName": svc, "ip": "10.213.0.2", "port": 7070, "ephemeral": "true"})
    section("beat: with beat JSON (what Nacos 1.x Java clients send)")
    beat = ('{"serviceName":"DEFAULT_GROUP@@memquorum-cluster","ip":"10.213.0.2","port":7070,'
            '"cluster":"DEFAULT","weight":1.0,"metadata":{"node_id":"n1"},"scheduled":false,'
            '"period":5000,"stopped":false}')
    p.call("PUT", "/nacos/v1/ns/instance/beat", {"serviceName": svc, "beat": beat})
    section("beat for an instance that is not registered")
    p.call("PUT", "/nacos/v1/ns/instance/beat",
           {"serviceName": svc, "ip": "10.213.0.99", "port": 7070, "ephemeral": "true"})
    p.call("GET", f"/nacos/v1/ns/instance/list?serviceName={svc}&healthyOnly=false",
           note="<- the unknown instance was registered by its beat")
    section("beat without ip/port")
    p.call("PUT", "/nacos/v1/ns/instance/beat", {"serviceName": svc})
    section("get one instance")
    p.call("GET", f"/nacos/v1/ns/instance?serviceName={svc}&ip=10.213.0.2&port=7070")
    section("deregister, twice, then list")
    q = f"serviceName={svc}&ip=10.213.0.2&port=7070&ephemeral=true"
    p.call("DELETE", f"/nacos/v1/ns/instance?{q}")
    p.call("DELETE", f"/nacos/v1/ns/instance?{q}", note="<- again: still ok")
    p.call("DELETE", f"/nacos/v1/ns/instance?serviceName={svc}&ip=10.213.0.99&port=7070&ephemeral=true")
    p.call("GET", f"/nacos/v1/ns/instance/list?serviceName={svc}&healthyOnly=false")
    section("deregister without ip/port")
    p.call("DELETE", f"/nacos/v1/ns/instance?serviceName={svc}")


def config(p):
    data_id, group = "memquorum.properties", "DEFAULT_GROUP"
    v1 = "memquorum.replication.factor=3\nmemquorum.shards.total=16\n"
    v2 = "memquorum.replication.factor=5\nmemquorum.shards.total=16\n"
    section("read a config that does not exist")
    p.call("GET", f"/nacos/v1/cs/configs?dataId={data_id}&group={group}")
    section("publish, read")
    p.call("POST", "/nacos/v1/cs/configs",
           {"dataId": data_id, "group": group, "content": v1, "type": "properties"})
    p.call("GET", f"/nacos/v1/cs/configs?dataId={data_id}&group={group}")
    md5 = hashlib.md5(v1.encode()).hexdigest()
    print(f"md5 of the content: `{md5}`\n")
    key = f"{data_id}\x02{group}\x02{md5}\x01"
    lp = {"Long-Pulling-Timeout": "30000"}
    section("listener, stale md5: answers at once with the changed key")
    p.call("POST", "/nacos/v1/cs/configs/listener",
           {"Listening-Configs": f"{data_id}\x02{group}\x02stale\x01"}, lp)
    section("listener, current md5: held until the config changes (published 2 s later)")

    def publish_later():
        time.sleep(2)
        p.call("POST", "/nacos/v1/cs/configs", {"dataId": data_id, "group": group,
                                                "content": v2}, show=False)
    t = threading.Thread(target=publish_later)
    t.start()
    p.call("POST", "/nacos/v1/cs/configs/listener", {"Listening-Configs": key}, lp)
    t.join()
    md5 = hashlib.md5(v2.encode()).hexdigest()
    key = f"{data_id}\x02{group}\x02{md5}\x01"
    section("listener, current md5, no change: held for the timeout (asked 10000 ms)")
    p.call("POST", "/nacos/v1/cs/configs/listener", {"Listening-Configs": key},
           {"Long-Pulling-Timeout": "10000"})
    section("listener, current md5, Long-Pulling-Timeout 3000: clamped to 10 s")
    p.call("POST", "/nacos/v1/cs/configs/listener", {"Listening-Configs": key},
           {"Long-Pulling-Timeout": "3000"})
    section("listener without Long-Pulling-Timeout: answers at once")
    p.call("POST", "/nacos/v1/cs/configs/listener", {"Listening-Configs": key})
    section("listener on a config that does not exist (empty md5), then published")

    def publish_new():
        time.sleep(1)
        p.call("POST", "/nacos/v1/cs/configs", {"dataId": "new.properties", "group": group,
                                                "content": "a=1"}, show=False)
    t = threading.Thread(target=publish_new)
    t.start()
    p.call("POST", "/nacos/v1/cs/configs/listener",
           {"Listening-Configs": f"new.properties\x02{group}\x02\x01"}, lp)
    t.join()
    section("delete a config")
    p.call("DELETE", f"/nacos/v1/cs/configs?dataId=new.properties&group={group}")
    p.call("GET", f"/nacos/v1/cs/configs?dataId=new.properties&group={group}")


def auth(p, user, password):
    section("any call without a token")
    p.call("GET", "/nacos/v1/ns/instance/list?serviceName=memquorum-cluster")
    section("login with a wrong password")
    p.call("POST", "/nacos/v1/auth/login", {"username": user, "password": "wrong"})
    section("login")
    st, body, _ = p.call("POST", "/nacos/v1/auth/login", {"username": user, "password": password})
    import json
    tok = json.loads(body)["accessToken"]
    section("the token in the query (accessToken=), a header, a Bearer header, the form body")
    p.token = tok
    p.call("GET", "/nacos/v1/ns/instance/list?serviceName=memquorum-cluster", show=False)
    p.token = None
    for name, hdrs in (("accessToken header", {"accessToken": tok}),
                       ("Authorization: Bearer", {"Authorization": "Bearer " + tok})):
        st, _, _ = p.call("GET", "/nacos/v1/ns/instance/list?serviceName=memquorum-cluster",
                          headers=hdrs, show=False)
        print(f"- {name}: {st}")
    st, _, _ = p.call("POST", "/nacos/v1/ns/instance",
                      {"serviceName": "memquorum-cluster", "ip": "10.213.0.3", "port": 7070,
                       "ephemeral": "true", "accessToken": tok}, show=False)
    print(f"- accessToken in the form body of POST /nacos/v1/ns/instance: {st}")
    st, _, _ = p.call("GET", "/nacos/v1/ns/instance/list?serviceName=x&accessToken=bogus",
                      show=False)
    print(f"- a bogus token: {st}\n")
    p.token = tok
    return tok


def expiry(p):
    import json
    section("an ephemeral instance without beats, alone and beside one that beats")
    svc = f"expiry-{int(time.time())}"
    for ip in ("10.213.0.7", "10.213.0.8"):
        p.call("POST", "/nacos/v1/ns/instance",
               {"serviceName": svc, "ip": ip, "port": 7070, "ephemeral": "true"}, show=False)
    lone = f"{svc}-lone"
    p.call("POST", "/nacos/v1/ns/instance",
           {"serviceName": lone, "ip": "10.213.0.9", "port": 7070, "ephemeral": "true"},
           show=False)
    print("Service A: 10.213.0.7 beats every 5 s, 10.213.0.8 never does. "
          "Service B: 10.213.0.9 alone, never beats. Changes as seen by list:\n")
    print("| t (s) | A healthyOnly=false | A healthyOnly=true | A no healthyOnly | "
          "B healthyOnly=false | B healthyOnly=true | B GET instance |")
    print("|---|---|---|---|---|---|---|")
    t0 = time.monotonic()
    last, last_beat = None, -10.0
    while time.monotonic() - t0 < 42:
        now = time.monotonic() - t0
        if now - last_beat >= 5:
            p.call("PUT", "/nacos/v1/ns/instance/beat",
                   {"serviceName": svc, "ip": "10.213.0.7", "port": 7070}, show=False)
            last_beat = now

        def hosts(s, q):
            _, body, _ = p.call("GET", f"/nacos/v1/ns/instance/list?serviceName={s}{q}",
                                show=False)
            return " ".join(f"{h['ip'][-2:]}:{'H' if h['healthy'] else 'u'}"
                            for h in json.loads(body)["hosts"]) or "-"
        st, body, _ = p.call("GET", f"/nacos/v1/ns/instance?serviceName={lone}"
                                    "&ip=10.213.0.9&port=7070", show=False)
        one = (("healthy" if json.loads(body)["healthy"] else "unhealthy")
               if st == 200 else f"{st} {body}")
        row = (hosts(svc, "&healthyOnly=false"), hosts(svc, "&healthyOnly=true"),
               hosts(svc, ""), hosts(lone, "&healthyOnly=false"),
               hosts(lone, "&healthyOnly=true"), one)
        if row != last:
            print(f"| {now:.1f} | " + " | ".join(row) + " |")
            last = row
        time.sleep(0.25)
    print("\n(.7 etc. are the last octets; H healthy, u unhealthy, - no hosts)\n")


def token_expiry(p, user, password):
    import json
    section("token expiry")
    _, body, _ = p.call("POST", "/nacos/v1/auth/login", {"username": user, "password": password})
    tok = json.loads(body)["accessToken"]
    t0 = time.monotonic()
    while time.monotonic() - t0 < 30:
        c = http.client.HTTPConnection(p.host, p.port, timeout=5)
        c.request("GET", f"/nacos/v1/ns/instance/list?serviceName=x&accessToken={tok}")
        st = c.getresponse().status
        c.close()
        if st != 200:
            print(f"the token was refused ({st}) {time.monotonic() - t0:.1f} s after login\n")
            return
        time.sleep(0.25)
    print("the token still worked after 30 s\n")


def main(argv):
    if len(argv) < 2:
        sys.exit(__doc__)
    p = Probe(argv[1])
    args = argv[2:]
    if args[:1] == ["--auth"]:
        user, password = args[1], args[2]
        if "--token-expiry" in args:
            token_expiry(p, user, password)
            return
        auth(p, user, password)
        naming(p)
        return
    naming(p)
    config(p)
    if "--expiry" in args:
        expiry(p)


if __name__ == "__main__":
    main(sys.argv)
