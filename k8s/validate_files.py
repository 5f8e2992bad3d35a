#!/usr/bin/env python3
"""The checks of k8s/validate.sh that no real tool does (helm, mqcheck,
promtool and shellcheck do the rest):

  validate_files.py repo                  seed files, docker-compose.yml, the
                                          Grafana dashboard, the Dockerfile
  validate_files.py same RENDER FILE...   k8s/*.yaml hold the same objects as
                                          the chart's render (Helm's own labels
                                          and the checksum annotation aside)
  validate_files.py patched RENDER MANIFEST PATCH
                                          the StatefulSet of MANIFEST with the
                                          strategic merge PATCH applied is the
                                          one of the chart's RENDER
  validate_files.py expect RENDER EXPR... each Python expression holds for the
                                          rendered objects (helpers below)
  validate_files.py job-script JOB OUT    writes the shell script of a Job's
                                          container to OUT, for shellcheck

Prints "validate: FAIL ..." per problem and exits 1 when there is one.
"""
import difflib
import json
import os
import re
import subprocess
import sys

import yaml

fails = []


def fail(msg):
    fails.append(msg)
    print("validate: FAIL  " + msg, file=sys.stderr)


def ok(msg):
    print("validate: ok    " + msg)


def load_all(path):
    with open(path) as f:
        return [d for d in yaml.safe_load_all(f) if d is not None]


# ---------------------------------------------------------------------------
# same: k8s/ is the chart's render

HELM_LABELS = ("helm.sh/chart", "app.kubernetes.io/managed-by", "app.kubernetes.io/version")
HELM_ANNOTATIONS = ("checksum/config",)


def normalize(obj):
    """Drops what only Helm adds, recursively (labels and annotations)."""
    if isinstance(obj, dict):
        out = {}
        for k, v in obj.items():
            if k == "labels" and isinstance(v, dict):
                v = {a: b for a, b in v.items() if a not in HELM_LABELS}
            if k == "annotations" and isinstance(v, dict):
                v = {a: b for a, b in v.items() if a not in HELM_ANNOTATIONS}
            out[k] = normalize(v)
        return out
    if isinstance(obj, list):
        return [normalize(x) for x in obj]
    return obj


def key(o):
    return f"{o.get('kind')} {o.get('metadata', {}).get('namespace', '')}/{o.get('metadata', {}).get('name')}"


def cmd_same(render, files):
    chart = {key(o): normalize(o) for o in load_all(render)}
    mine = {}
    for f in files:
        for o in load_all(f):
            if o.get("kind") == "Namespace":
                continue  # the chart leaves namespaces to helm --create-namespace
            mine[key(o)] = normalize(o)
    for k in sorted(set(chart) | set(mine)):
        if k not in mine:
            fail(f"k8s/: {k} is in the chart's render but in no k8s/*.yaml")
        elif k not in chart:
            fail(f"k8s/: {k} is not in the chart's render")
        elif chart[k] != mine[k]:
            a = yaml.safe_dump(chart[k], sort_keys=True).splitlines()
            b = yaml.safe_dump(mine[k], sort_keys=True).splitlines()
            diff = "\n".join(difflib.unified_diff(a, b, "chart", "k8s/", lineterm="", n=2))
            fail(f"k8s/: {k} differs from the chart's render:\n{diff}")
    if not fails:
        ok(f"k8s/*.yaml hold the chart's render ({len(chart)} objects)")


def merge(base, patch):
    """A strategic merge patch as kubectl applies it to what k8s/ holds:
    maps merge key by key, lists of named items merge by name (new ones
    are appended), anything else is replaced."""
    if isinstance(base, dict) and isinstance(patch, dict):
        out = dict(base)
        for k, v in patch.items():
            out[k] = merge(base[k], v) if k in base else v
        return out
    if (isinstance(base, list) and isinstance(patch, list)
            and all(isinstance(x, dict) and "name" in x for x in base + patch)):
        out = list(base)
        for item in patch:
            at = [i for i, x in enumerate(out) if x["name"] == item["name"]]
            if at:
                out[at[0]] = merge(out[at[0]], item)
            else:
                out.append(item)
        return out
    return patch


def by_name(obj):
    """Lists of named items in name order: their order means nothing here."""
    if isinstance(obj, dict):
        return {k: by_name(v) for k, v in obj.items()}
    if isinstance(obj, list):
        items = [by_name(x) for x in obj]
        if all(isinstance(x, dict) and "name" in x for x in items):
            items.sort(key=lambda x: x["name"])
        return items
    return obj


def cmd_patched(render, manifest, patch):
    """k8s/patches/<patch> applied to the object of k8s/<manifest> it names
    is the chart's render of that object with the matching values."""
    (p,) = load_all(patch)
    base = [o for o in load_all(manifest) if o.get("kind") == "StatefulSet"]
    chart = [o for o in load_all(render) if o.get("kind") == "StatefulSet"]
    if len(base) != 1 or len(chart) != 1:
        fail(f"{patch}: expected one StatefulSet in {manifest} and in the render")
        return
    mine = by_name(normalize(merge(base[0], p)))
    theirs = by_name(normalize(chart[0]))
    if mine != theirs:
        a = yaml.safe_dump(theirs, sort_keys=True).splitlines()
        b = yaml.safe_dump(mine, sort_keys=True).splitlines()
        diff = "\n".join(difflib.unified_diff(a, b, "chart", "patched", lineterm="", n=2))
        fail(f"{patch} applied to {manifest} differs from the chart's render:\n{diff}")
    else:
        ok(f"{patch} applied to {manifest} is the chart's render")


# ---------------------------------------------------------------------------
# expect: assertions over one render


class Render:
    def __init__(self, path):
        self.objs = load_all(path)

    def kinds(self, kind):
        return [o for o in self.objs if o.get("kind") == kind]

    def one(self, kind):
        found = self.kinds(kind)
        if len(found) != 1:
            raise AssertionError(f"{len(found)} {kind} objects, want 1")
        return found[0]

    def pod(self):
        return self.one("StatefulSet")["spec"]["template"]["spec"]

    def agent(self):
        pod = self.pod()
        for c in pod.get("initContainers", []) + pod["containers"]:
            if c["name"] == "memquorum":
                return c
        raise AssertionError("no memquorum container")

    def native(self):
        return any(c["name"] == "memquorum" and c.get("restartPolicy") == "Always"
                   for c in self.pod().get("initContainers", []))

    def env(self, name):
        """The literal value of an agent env var, the Secret name:key it comes
        from, or None."""
        for e in self.agent().get("env", []):
            if e["name"] == name:
                ref = (e.get("valueFrom") or {}).get("secretKeyRef")
                return f"secret:{ref['name']}:{ref['key']}" if ref else e.get("value")
        return None

    def prop(self, name):
        cm = [c for c in self.kinds("ConfigMap") if "memquorum.properties" in c.get("data", {})]
        for line in cm[0]["data"]["memquorum.properties"].splitlines():
            if line.startswith(name + "="):
                return line.split("=", 1)[1]
        return None

    def secret(self, name, key):
        import base64
        for s in self.kinds("Secret"):
            if s["metadata"]["name"] == name:
                return base64.b64decode(s["data"][key]).decode()
        return None


def cmd_expect(render, exprs):
    r = Render(render)
    scope = {"r": r}
    for e in exprs:
        try:
            good = eval(e, scope)  # expressions come from validate.sh only
        except Exception as ex:  # noqa: BLE001 - report any failure as such
            good, why = False, f"{type(ex).__name__}: {ex}"
        else:
            why = "false"
        if not good:
            fail(f"{os.path.basename(render)}: expected {e} ({why})")


# ---------------------------------------------------------------------------
# job-script


def cmd_job_script(job, out):
    for o in load_all(job):
        if o.get("kind") != "Job":
            continue
        c = o["spec"]["template"]["spec"]["containers"][0]
        if c.get("command", [])[:2] != ["/bin/sh", "-c"] or not c.get("args"):
            fail(f"{job}: the Job's container does not run a /bin/sh -c script")
            return
        with open(out, "w") as f:
            f.write("#!/bin/sh\n" + c["args"][0])
        return
    fail(f"{job}: no Job")


# ---------------------------------------------------------------------------
# repo: files the real tools do not cover

METRICS = [
    "memquorum_requests_total", "memquorum_request_errors_total", "memquorum_shard_keys",
    "memquorum_shard_bytes", "memquorum_shard_is_leader", "memquorum_shard_term",
    "memquorum_shard_commit_index", "memquorum_shard_applied_index",
    "memquorum_memory_used_bytes", "memquorum_memory_budget_bytes", "memquorum_watches_open",
    "memquorum_watch_events_total", "memquorum_watches_dropped_slow_total",
    "memquorum_expired_keys_total", "process_resident_memory_bytes", "memquorum_ready",
    "memquorum_requests_forwarded_total", "memquorum_request_retries_total",
    "memquorum_forward_batches_lost_total", "memquorum_leader_handoffs_total", "memquorum_snapshots_installed_total",
    "memquorum_kafka_records_ingested_total", "memquorum_kafka_lag",
    "memquorum_kafka_bad_records_total", "memquorum_kafka_refused_total",
    "memquorum_kafka_commit_latency_ms_sum",
]
SEED_FILES = ["Dockerfile", ".dockerignore", "docker-compose.yml", "k8s/namespace.yaml",
              "k8s/configmap.yaml", "k8s/statefulset.yaml", "k8s/monitoring.yaml",
              "config/grafana/dashboards/memquorum-dashboard.json",
              "helm/memquorum/Chart.yaml", "helm/memquorum/values.yaml"]
# Packages of scripts/install-deps.sh that only the tests need.
TEST_ONLY_PKGS = {"iproute2", "iptables", "procps", "psmisc", "curl"}


def agent_env_names():
    src = open("agent/config/config.c").read()
    return set(re.findall(r'"((?:MEMQUORUM|NACOS|KAFKA)_[A-Z0-9_]+)"', src))


def cmd_repo():
    for f in SEED_FILES:
        if not os.path.isfile(f):
            fail(f"{f} is missing (the seed guide promises it)")
    known_env = agent_env_names()
    check_compose(known_env)
    check_dashboard()
    check_dockerfile()


def check_compose(known_env):
    comp = load_all("docker-compose.yml")[0]
    svcs = comp.get("services", {})
    for need in ("nacos", "kafka", "prometheus", "grafana"):
        if need not in svcs:
            fail(f"docker-compose.yml: no service {need}")
    # Everything is built here (e2e/test_compose.py runs it), except Grafana,
    # which pulls its image and so only starts with its profile.
    for n, s in svcs.items():
        if n == "grafana":
            if s.get("profiles") != ["grafana"]:
                fail("docker-compose.yml: grafana must sit behind the profile grafana")
        elif "build" not in s:
            fail(f"docker-compose.yml: {n} has no build section (nothing can be pulled here)")
    agents = {n: s for n, s in svcs.items() if str(s.get("image", "")).startswith("memquorum:")}
    if len(agents) != 3:
        fail(f"docker-compose.yml: expected 3 memquorum agents, found {len(agents)}")
    ids = set()
    for n, s in sorted(agents.items()):
        env = s.get("environment", {})
        if isinstance(env, list):
            env = dict(e.split("=", 1) for e in env)
        for k in env:
            if re.match(r"(MEMQUORUM|NACOS|KAFKA)_", k) and k not in known_env:
                fail(f"docker-compose.yml: {n}: {k} is not a setting the agent knows")
        want = {"NACOS_SERVER_ADDR": "nacos:8848", "MEMQUORUM_KAFKA_ENABLED": "true",
                "KAFKA_BOOTSTRAP_SERVERS": "kafka:9092", "MEMQUORUM_API_BIND": "0.0.0.0",
                "MEMQUORUM_ADVERTISE_ADDR": n, "MEMQUORUM_BOOTSTRAP_EXPECT": "3"}
        for k, v in want.items():
            if str(env.get(k)) != v:
                fail(f"docker-compose.yml: {n}: {k} should be {v}, is {env.get(k)}")
        ids.add(env.get("MEMQUORUM_NODE_ID"))
        peers = dict(p.split("=", 1) for p in str(env.get("MEMQUORUM_PEERS", "")).split(",") if "=" in p)
        if peers.get(env.get("MEMQUORUM_NODE_ID")) != f"{n}:{env.get('MEMQUORUM_PEER_PORT', '7070')}":
            fail(f"docker-compose.yml: {n}: MEMQUORUM_PEERS does not list this agent as {n}")
    if len(ids) != len(agents):
        fail("docker-compose.yml: agents share a MEMQUORUM_NODE_ID")
    allpub = [str(p).rsplit(":", 1)[0] for s in svcs.values() for p in s.get("ports", [])]
    dups = {p for p in allpub if allpub.count(p) > 1}
    if dups:
        fail(f"docker-compose.yml: host ports published twice: {sorted(dups)}")
    for n, s in svcs.items():
        for v in s.get("volumes", []):
            hostp = str(v).split(":")[0]
            if hostp.startswith("./") and not os.path.exists(hostp):
                fail(f"docker-compose.yml: {n}: {hostp} does not exist")
    prom = load_all("config/prometheus/prometheus.yml")[0]
    targets = [t for sc in prom.get("scrape_configs", []) for st in sc.get("static_configs", [])
               for t in st.get("targets", [])]
    for n in agents:
        if f"{n}:9090" not in targets:
            fail(f"config/prometheus/prometheus.yml does not scrape {n}:9090")
    ok("docker-compose.yml structure and Prometheus targets")


def check_dashboard():
    path = "config/grafana/dashboards/memquorum-dashboard.json"
    try:
        dash = json.load(open(path))
        panels = [p for p in dash["panels"] if p.get("type") != "row"]
        exprs = " ".join(t.get("expr", "") for p in panels for t in p.get("targets", []))
        for m in METRICS:
            if not re.search(r"\b%s\b" % m, exprs):
                fail(f"{path}: no panel uses {m}")
        pids = [p["id"] for p in dash["panels"]]
        if len(pids) != len(set(pids)):
            fail(f"{path}: panel ids are not unique")
        if "datasource" not in {v["name"] for v in dash["templating"]["list"] if v["type"] == "datasource"}:
            fail(f"{path}: no datasource variable")
        for p in panels:
            if p.get("datasource", {}).get("uid") != "${datasource}":
                fail(f"{path}: panel {p['title']!r} does not use ${{datasource}}")
            g = p["gridPos"]
            if g["x"] + g["w"] > 24:
                fail(f"{path}: panel {p['title']!r} is wider than the grid")
        if not isinstance(dash.get("schemaVersion"), int) or dash["schemaVersion"] < 36:
            fail(f"{path}: schemaVersion too old")
        ok(f"{path}: {len(panels)} panels over {len(METRICS)} metrics")
    except Exception as e:  # noqa: BLE001
        fail(f"{path}: {e!r}")


def apt_pkgs(stage):
    m = re.search(r"apt-get install[^\n]*?((?:\\\n|[^\n&])*)", stage)
    if not m:
        return set()
    words = set(re.findall(r"(?<![-\w$])([a-z0-9][a-z0-9.+-]+)", m.group(1).replace("\\\n", " ")))
    return words - {"y", "no-install-recommends"}


def check_dockerfile():
    df = open("Dockerfile").read() if os.path.isfile("Dockerfile") else ""
    stages = re.split(r"(?im)^FROM\s", df)[1:]
    if len(stages) < 2:
        fail("Dockerfile: expected a build stage and a runtime stage")
        return
    build_pkgs = apt_pkgs(stages[0])
    if os.path.isfile("scripts/install-deps.sh"):
        m = re.search(r"pkgs=\((.*?)\)", open("scripts/install-deps.sh").read(), re.S)
        want = set(m.group(1).split()) - TEST_ONLY_PKGS if m else set()
        missing = want - build_pkgs
        if missing:
            fail(f"Dockerfile: build stage lacks packages of scripts/install-deps.sh: {sorted(missing)}")
    for d in ("EXPOSE 8080 7070 9090", "STOPSIGNAL SIGTERM", "HEALTHCHECK", "ENTRYPOINT"):
        if d not in df:
            fail(f"Dockerfile: no {d}")
    if not re.search(r"(?m)^USER\s+(?!0\b|root\b)", stages[-1]):
        fail("Dockerfile: runtime stage does not switch to a non-root USER")
    # The runtime stage installs the packages scripts/docker/runtime-packages.sh
    # finds the binaries load (run in the build stage). Against a local build,
    # that script must find an owning package for every library.
    if "runtime-packages" not in stages[-1]:
        fail("Dockerfile: runtime stage does not install what scripts/docker/runtime-packages.sh lists")
    bins = [b for b in ("build/bin/memquorum", "build/bin/mqctl") if os.path.isfile(b)]
    if bins and subprocess.run(["sh", "-c", "command -v dpkg-query ldd"], capture_output=True).returncode == 0:
        r = subprocess.run(["bash", "scripts/docker/runtime-packages.sh", *bins],
                           capture_output=True, text=True)
        if r.returncode != 0:
            fail(f"Dockerfile: runtime packages of {', '.join(bins)}: {r.stderr.strip()}")
        else:
            ok(f"Dockerfile runtime packages of {', '.join(bins)}: {' '.join(r.stdout.split())}")
    ok("Dockerfile structure")


def main(argv):
    if len(argv) >= 2 and argv[1] == "repo":
        cmd_repo()
    elif len(argv) >= 4 and argv[1] == "same":
        cmd_same(argv[2], argv[3:])
    elif len(argv) == 5 and argv[1] == "patched":
        cmd_patched(argv[2], argv[3], argv[4])
    elif len(argv) >= 4 and argv[1] == "expect":
        cmd_expect(argv[2], argv[3:])
    elif len(argv) == 4 and argv[1] == "job-script":
        cmd_job_script(argv[2], argv[3])
    else:
        print(__doc__, file=sys.stderr)
        return 2
    return 1 if fails else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
