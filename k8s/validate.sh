#!/usr/bin/env bash
# Static checks of the deployment files: Dockerfile, docker-compose.yml, k8s/,
# helm/memquorum and config/ (Prometheus, Grafana). Needs python3 with PyYAML;
# runs helm, kubeconform, docker compose / docker-compose and promtool when
# they are installed and says which it skipped. Exits non-zero on a problem.
#
#   k8s/validate.sh                  # from anywhere
#   KUBECONFORM_SCHEMA_LOCATION=/path/to/schemas k8s/validate.sh
#
# kubeconform downloads its schemas unless KUBECONFORM_SCHEMA_LOCATION names
# a local copy; when it cannot reach them the check is reported as skipped.
set -uo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root" || exit 2
py=${PYTHON:-python3}
failed=0
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

ok()   { echo "validate: ok    $*"; }
bad()  { echo "validate: FAIL  $*" >&2; failed=1; }
skip() { echo "validate: skip  $*"; }

if ! "$py" -c 'import yaml' 2>/dev/null; then
  echo "validate: python3 needs PyYAML (pip install pyyaml)" >&2
  exit 2
fi

# ---- helm: lint and render a few value sets --------------------------------
helm_bin=${HELM:-$(command -v helm || true)}
rendered=()
if [[ -n $helm_bin ]]; then
  if "$helm_bin" lint --strict helm/memquorum >"$tmp/lint.log" 2>&1; then
    ok "helm lint --strict helm/memquorum"
  else
    cat "$tmp/lint.log" >&2; bad "helm lint helm/memquorum"
  fi
  i=0
  while IFS= read -r args; do
    i=$((i + 1))
    # shellcheck disable=SC2086
    if "$helm_bin" template mq helm/memquorum -n memquorum $args >"$tmp/render$i.yaml" 2>"$tmp/render$i.err"; then
      rendered+=("$tmp/render$i.yaml"); ok "helm template ${args:-(defaults)}"
    else
      cat "$tmp/render$i.err" >&2; bad "helm template ${args:-(defaults)}"
    fi
  done <<'SETS'

--set serviceMonitor.enabled=true --set feed.token.create=true --set feed.token.value=t0ken --set podAntiAffinity=hard
--set nacos.enabled=true --set nacos.existingSecret=nacos --set nacos.username=mq --set kafka.enabled=true --set app.enabled=false --set dnsDiscovery.enabled=false --set extraProperties.memquorum\.retention\.ms=1d
SETS
else
  skip "helm not installed: chart templates not rendered (values.yaml and Chart.yaml are still parsed)"
fi

# ---- the Python checks ------------------------------------------------------
"$py" - "${rendered[@]}" <<'PYEOF' || failed=1
import json, os, re, subprocess, sys, glob
import yaml

# Environment variables and properties keys the deployment files may set on
# the agent. Each must also be a row of the agent's settings table
# (agent/config/config.c) when that file is present: a name the agent does
# not know is ignored with only a warning (env) or stops it (properties).
ALLOWED_ENV = {
    "MEMQUORUM_NODE_ID", "MEMQUORUM_NODE_PORT", "MEMQUORUM_API_BIND", "MEMQUORUM_PEER_PORT",
    "MEMQUORUM_ADVERTISE_ADDR", "MEMQUORUM_HTTP_PORT", "MEMQUORUM_SHARDS_TOTAL",
    "MEMQUORUM_REPLICATION_FACTOR", "MEMQUORUM_BOOTSTRAP_EXPECT", "MEMQUORUM_PEERS",
    "NACOS_SERVER_ADDR", "NACOS_NAMESPACE", "NACOS_USERNAME", "NACOS_PASSWORD",
    "MEMQUORUM_DNS_NAME", "MEMQUORUM_KAFKA_ENABLED", "KAFKA_BOOTSTRAP_SERVERS",
    "MEMQUORUM_KAFKA_TOPIC", "MEMQUORUM_CONFIG", "MEMQUORUM_LOG_FORMAT",
    "MEMQUORUM_LIMITS_MEMORY_BUDGET", "MEMQUORUM_FEED_TOKEN",
}
ALLOWED_PROPS = {
    "memquorum.node.port", "memquorum.node.id", "memquorum.api.bind", "memquorum.shards.total",
    "memquorum.replication.factor", "memquorum.bootstrap.expect", "memquorum.kafka.enabled",
    "memquorum.kafka.bootstrap-servers", "memquorum.kafka.topic",
    "memquorum.kafka.max-poll-records", "memquorum.kafka.session-timeout", "nacos.server.addr",
    "nacos.namespace", "nacos.username", "memquorum.peer.port", "memquorum.http.port",
    "memquorum.dns.name", "memquorum.limits.memory-budget", "memquorum.log.format",
    "memquorum.log.level", "memquorum.feed.allowed-origins", "memquorum.retention.ms",
}
# Build packages install-deps.sh names that the Dockerfile's build stage needs.
TEST_ONLY_PKGS = {"iproute2", "iptables", "procps", "psmisc", "curl"}
METRICS = [
    "memquorum_requests_total", "memquorum_request_errors_total", "memquorum_shard_keys",
    "memquorum_shard_bytes", "memquorum_shard_is_leader", "memquorum_shard_term",
    "memquorum_shard_commit_index", "memquorum_shard_applied_index",
    "memquorum_memory_used_bytes", "memquorum_memory_budget_bytes", "memquorum_watches_open",
    "memquorum_watch_events_total", "memquorum_watches_dropped_slow_total",
    "memquorum_expired_keys_total", "process_resident_memory_bytes", "memquorum_ready",
    "memquorum_requests_forwarded_total", "memquorum_request_retries_total",
    "memquorum_leader_handoffs_total", "memquorum_snapshots_installed_total",
]
SEED_FILES = ["Dockerfile", ".dockerignore", "docker-compose.yml", "k8s/namespace.yaml",
              "k8s/configmap.yaml", "k8s/statefulset.yaml", "k8s/monitoring.yaml",
              "config/grafana/dashboards/memquorum-dashboard.json",
              "helm/memquorum/Chart.yaml", "helm/memquorum/values.yaml"]

fails = []
def fail(msg): fails.append(msg); print("validate: FAIL  " + msg, file=sys.stderr)
def ok(msg): print("validate: ok    " + msg)

for f in SEED_FILES:
    if not os.path.isfile(f): fail(f"{f} is missing")

# -- cross-check with the agent's settings table
cfg_c = "agent/config/config.c"
if os.path.isfile(cfg_c):
    src = open(cfg_c).read()
    agent_env = set(re.findall(r'"((?:MEMQUORUM|NACOS|KAFKA)_[A-Z0-9_]+)"', src))
    agent_props = set(re.findall(r'"((?:memquorum|nacos|kafka)\.[a-z0-9.-]+)"', src))
    for n in sorted(ALLOWED_ENV - agent_env): fail(f"env {n} is allowed here but unknown to {cfg_c}")
    for k in sorted(ALLOWED_PROPS - agent_props): fail(f"property {k} is allowed here but unknown to {cfg_c}")
    ok(f"allowed env names and properties keys are all known to {cfg_c}")

# -- YAML and JSON parse
docs = {}
yaml_files = (["docker-compose.yml"] + sorted(glob.glob("k8s/*.yaml")) +
              ["helm/memquorum/Chart.yaml", "helm/memquorum/values.yaml"] +
              sorted(glob.glob("config/**/*.yml", recursive=True) + glob.glob("config/**/*.yaml", recursive=True)))
for f in yaml_files:
    try:
        docs[f] = [d for d in yaml.safe_load_all(open(f)) if d is not None]
        ok(f"yaml {f} ({len(docs[f])} documents)")
    except Exception as e:
        fail(f"yaml {f}: {e}")
rendered = []
for f in sys.argv[1:]:
    try:
        rendered += [d for d in yaml.safe_load_all(open(f)) if d is not None]
    except Exception as e:
        fail(f"rendered chart {f} is not YAML: {e}")

# -- helpers over Kubernetes objects
def objs(ds, kind): return [d for d in ds if isinstance(d, dict) and d.get("kind") == kind]
UNITS = {"": 1, "k": 1e3, "M": 1e6, "G": 1e9, "Ki": 1024, "Mi": 1024**2, "Gi": 1024**3,
         "KiB": 1024, "MiB": 1024**2, "GiB": 1024**3, "KB": 1e3, "MB": 1e6, "GB": 1e9,
         "m": 1024**2, "g": 1024**3}
def size(s):
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([A-Za-z]*)\s*", str(s))
    if not m or m.group(2) not in UNITS: raise ValueError(f"bad size {s!r}")
    return float(m.group(1)) * UNITS[m.group(2)]

def props_of(cm, where):
    out = {}
    text = (cm.get("data") or {}).get("memquorum.properties")
    if text is None:
        fail(f"{where}: ConfigMap {cm['metadata']['name']} has no memquorum.properties"); return out
    for i, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line[0] in "#!": continue
        m = re.match(r"([^=:\s]+)\s*[=:]\s*(.*)$", line)
        if not m: fail(f"{where}: memquorum.properties line {i} is not key=value: {line!r}"); continue
        k, v = m.groups()
        if k.split(".")[0] in ("memquorum", "nacos", "kafka") and k not in ALLOWED_PROPS:
            fail(f"{where}: memquorum.properties line {i}: unknown key {k}")
        if v == "": fail(f"{where}: memquorum.properties line {i}: {k} has no value")
        out[k] = v
    return out

def check_workload(ds, where):
    cms = {c["metadata"]["name"]: c for c in objs(ds, "ConfigMap")}
    sts = objs(ds, "StatefulSet") + objs(ds, "Deployment")
    if not sts: fail(f"{where}: no StatefulSet or Deployment"); return
    svcs = objs(ds, "Service")
    for s in sts:
        name = s["metadata"]["name"]; spec = s["spec"]; pod = spec["template"]["spec"]
        labels = spec["template"]["metadata"].get("labels", {})
        if spec["selector"].get("matchLabels", {}).items() - labels.items():
            fail(f"{where}: {name}: selector does not match the pod labels")
        if s["kind"] == "StatefulSet" and spec.get("podManagementPolicy") != "Parallel":
            fail(f"{where}: {name}: podManagementPolicy must be Parallel (bootstrap.expect waits for all)")
        if pod.get("enableServiceLinks") is not False:
            fail(f"{where}: {name}: enableServiceLinks must be false (service link vars look like MEMQUORUM_* settings)")
        tgp = pod.get("terminationGracePeriodSeconds", 30)
        if not 10 <= tgp <= 120: fail(f"{where}: {name}: terminationGracePeriodSeconds {tgp} is out of 10..120")
        agents = [c for c in pod["containers"] + pod.get("initContainers", []) if c["name"] == "memquorum"]
        if len(agents) != 1: fail(f"{where}: {name}: expected one container named memquorum"); continue
        c = agents[0]
        env = {e["name"]: e for e in c.get("env", [])}
        for n in env:
            if n not in ALLOWED_ENV: fail(f"{where}: {name}: memquorum env {n} is not a known setting")
        def field(n):
            return ((env.get(n) or {}).get("valueFrom") or {}).get("fieldRef", {}).get("fieldPath")
        if field("MEMQUORUM_NODE_ID") != "metadata.name": fail(f"{where}: {name}: MEMQUORUM_NODE_ID must come from metadata.name")
        if field("MEMQUORUM_ADVERTISE_ADDR") != "status.podIP": fail(f"{where}: {name}: MEMQUORUM_ADVERTISE_ADDR must come from status.podIP")
        ports = {p.get("name"): p["containerPort"] for p in c.get("ports", [])}
        for pn in ("api", "peer", "http"):
            if pn not in ports: fail(f"{where}: {name}: memquorum has no port named {pn}")
        for probe, path in (("startupProbe", "/healthz"), ("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
            hg = (c.get(probe) or {}).get("httpGet") or {}
            if hg.get("path") != path or hg.get("port") not in ("http", ports.get("http")):
                fail(f"{where}: {name}: {probe} must GET {path} on the http port")
        sc = c.get("securityContext") or {}
        if not sc.get("readOnlyRootFilesystem") or sc.get("allowPrivilegeEscalation") is not False:
            fail(f"{where}: {name}: memquorum must run with a read-only root fs and no privilege escalation")
        if not (pod.get("securityContext") or {}).get("runAsNonRoot") and not sc.get("runAsNonRoot"):
            fail(f"{where}: {name}: runAsNonRoot is not set")
        # properties file, memory budget below the limit
        mounts = {m["name"]: m["mountPath"] for m in c.get("volumeMounts", [])}
        cfgpath = (env.get("MEMQUORUM_CONFIG") or {}).get("value")
        props = {}
        if cfgpath:
            vols = {v["name"]: v for v in pod.get("volumes", [])}
            hit = [n for n, p in mounts.items() if cfgpath.startswith(p.rstrip("/") + "/")]
            cmname = ((vols.get(hit[0]) or {}).get("configMap") or {}).get("name") if hit else None
            if not cmname: fail(f"{where}: {name}: MEMQUORUM_CONFIG={cfgpath} is not on a ConfigMap volume")
            elif cmname in cms: props = props_of(cms[cmname], where)
            elif cms: fail(f"{where}: {name}: ConfigMap {cmname} is not defined")
        budget = (env.get("MEMQUORUM_LIMITS_MEMORY_BUDGET") or {}).get("value") or props.get("memquorum.limits.memory-budget")
        limit = ((c.get("resources") or {}).get("limits") or {}).get("memory")
        if not limit: fail(f"{where}: {name}: memquorum has no memory limit")
        elif not budget: fail(f"{where}: {name}: no memory budget (MEMQUORUM_LIMITS_MEMORY_BUDGET) below the memory limit")
        elif size(budget) > 0.8 * size(limit):
            fail(f"{where}: {name}: memory budget {budget} leaves under 20% of the {limit} limit for the process")
        # discovery: a DNS name must name a headless Service that publishes not-ready pods
        dns = (env.get("MEMQUORUM_DNS_NAME") or {}).get("value") or props.get("memquorum.dns.name")
        if dns:
            svc = [v for v in svcs if v["metadata"]["name"] == dns.split(".")[0]]
            if not svc: fail(f"{where}: {name}: MEMQUORUM_DNS_NAME {dns} names no Service defined here")
            for v in svc:
                vs = v["spec"]
                if vs.get("clusterIP") != "None": fail(f"{where}: Service {v['metadata']['name']} must be headless")
                if vs.get("publishNotReadyAddresses") is not True: fail(f"{where}: Service {v['metadata']['name']} must publishNotReadyAddresses")
                if vs.get("selector", {}).items() - labels.items(): fail(f"{where}: Service {v['metadata']['name']} does not select the pods")
                if "peer" not in {p.get("name") for p in vs.get("ports", [])}: fail(f"{where}: Service {v['metadata']['name']} has no port named peer (SRV)")
            if s["kind"] == "StatefulSet" and spec.get("serviceName") != dns.split(".")[0]:
                fail(f"{where}: {name}: serviceName should be the discovery Service {dns.split('.')[0]}")
        for pdb in objs(ds, "PodDisruptionBudget"):
            if pdb["spec"].get("maxUnavailable") != 1: fail(f"{where}: PDB {pdb['metadata']['name']}: maxUnavailable must be 1")
            if pdb["spec"]["selector"].get("matchLabels", {}).items() - labels.items():
                fail(f"{where}: PDB {pdb['metadata']['name']} does not select the pods")
        ok(f"{where}: {s['kind']} {name}")

k8s_docs = [d for f in sorted(glob.glob("k8s/*.yaml")) for d in docs.get(f, [])]
if k8s_docs:
    for d in k8s_docs:
        if not isinstance(d, dict) or not {"apiVersion", "kind", "metadata"} <= d.keys():
            fail(f"k8s/: a document lacks apiVersion/kind/metadata"); continue
        if d["kind"] != "Namespace" and d["metadata"].get("namespace") != "memquorum":
            fail(f"k8s/: {d['kind']} {d['metadata'].get('name')} is not in namespace memquorum")
    check_workload(k8s_docs, "k8s/")
    if not objs(k8s_docs, "PodDisruptionBudget"): fail("k8s/: no PodDisruptionBudget")
if rendered:
    check_workload(rendered, "helm template")

# -- env var names spelled anywhere in the deployment files
scan = (["docker-compose.yml", "Dockerfile"] + glob.glob("k8s/*.yaml") +
        glob.glob("helm/memquorum/**/*", recursive=True))
for f in scan:
    if not os.path.isfile(f): continue
    for n in sorted(set(re.findall(r"\b(?:MEMQUORUM|NACOS)_[A-Z0-9_]+\b", open(f).read()))):
        if n not in ALLOWED_ENV: fail(f"{f}: {n} is not a setting the agent knows")

# -- docker-compose.yml
comp = (docs.get("docker-compose.yml") or [{}])[0]
svcs = comp.get("services", {})
for need in ("nacos", "zookeeper", "kafka", "prometheus", "grafana"):
    if need not in svcs: fail(f"docker-compose.yml: no service {need}")
agents = {n: s for n, s in svcs.items() if str(s.get("image", "")).startswith("memquorum")}
if len(agents) != 3: fail(f"docker-compose.yml: expected 3 memquorum agents, found {len(agents)}")
ids, published = set(), []
for n, s in sorted(agents.items()):
    env = s.get("environment", {})
    if isinstance(env, list): env = dict(e.split("=", 1) for e in env)
    for k in env:
        if k not in ALLOWED_ENV: fail(f"docker-compose.yml: {n}: {k} is not a setting the agent knows")
    want = {"NACOS_SERVER_ADDR": "nacos:8848", "MEMQUORUM_KAFKA_ENABLED": "true",
            "KAFKA_BOOTSTRAP_SERVERS": "kafka:9092", "MEMQUORUM_API_BIND": "0.0.0.0",
            "MEMQUORUM_ADVERTISE_ADDR": n, "MEMQUORUM_BOOTSTRAP_EXPECT": "3"}
    for k, v in want.items():
        if str(env.get(k)) != v: fail(f"docker-compose.yml: {n}: {k} should be {v}, is {env.get(k)}")
    ids.add(env.get("MEMQUORUM_NODE_ID"))
    peers = dict(p.split("=", 1) for p in str(env.get("MEMQUORUM_PEERS", "")).split(",") if "=" in p)
    if peers.get(env.get("MEMQUORUM_NODE_ID")) != f"{n}:{env.get('MEMQUORUM_PEER_PORT', '7070')}":
        fail(f"docker-compose.yml: {n}: MEMQUORUM_PEERS does not list this agent as {n}")
    published += [str(p).split(":")[0] for p in s.get("ports", [])]
if len(ids) != len(agents): fail("docker-compose.yml: agents share a MEMQUORUM_NODE_ID")
allpub = [str(p).rsplit(":", 1)[0] for s in svcs.values() for p in s.get("ports", [])]
dups = {p for p in allpub if allpub.count(p) > 1}
if dups: fail(f"docker-compose.yml: host ports published twice: {sorted(dups)}")
for n, s in svcs.items():
    for v in s.get("volumes", []):
        hostp = str(v).split(":")[0]
        if hostp.startswith("./") and not os.path.exists(hostp): fail(f"docker-compose.yml: {n}: {hostp} does not exist")
ok("docker-compose.yml structure")

# -- Prometheus and Grafana config
prom = (docs.get("config/prometheus/prometheus.yml") or [{}])[0]
targets = [t for sc in prom.get("scrape_configs", []) for st in sc.get("static_configs", []) for t in st.get("targets", [])]
for n in agents:
    if f"{n}:9090" not in targets: fail(f"config/prometheus/prometheus.yml does not scrape {n}:9090")

dash_path = "config/grafana/dashboards/memquorum-dashboard.json"
try:
    dash = json.load(open(dash_path))
    panels = [p for p in dash["panels"] if p.get("type") != "row"]
    exprs = " ".join(t.get("expr", "") for p in panels for t in p.get("targets", []))
    for m in METRICS:
        if not re.search(r"\b%s\b" % m, exprs): fail(f"{dash_path}: no panel uses {m}")
    pids = [p["id"] for p in dash["panels"]]
    if len(pids) != len(set(pids)): fail(f"{dash_path}: panel ids are not unique")
    if "datasource" not in {v["name"] for v in dash["templating"]["list"] if v["type"] == "datasource"}:
        fail(f"{dash_path}: no datasource variable")
    for p in panels:
        if p.get("datasource", {}).get("uid") != "${datasource}": fail(f"{dash_path}: panel {p['title']!r} does not use ${{datasource}}")
        g = p["gridPos"]
        if g["x"] + g["w"] > 24: fail(f"{dash_path}: panel {p['title']!r} is wider than the grid")
    if not isinstance(dash.get("schemaVersion"), int) or dash["schemaVersion"] < 36: fail(f"{dash_path}: schemaVersion too old")
    ok(f"{dash_path}: {len(panels)} panels over {len(METRICS)} metrics")
except Exception as e:
    fail(f"{dash_path}: {e!r}")

# -- Dockerfile: build packages cover install-deps.sh, runtime covers the binary
df = open("Dockerfile").read() if os.path.isfile("Dockerfile") else ""
stages = re.split(r"(?im)^FROM\s", df)[1:]
def apt_pkgs(stage):
    m = re.search(r"apt-get install[^\n]*?((?:\\\n|[^\n&])*)", stage)
    return set(re.findall(r"(?<![-\w$])([a-z0-9][a-z0-9.+-]+)", m.group(1).replace("\\\n", " "))) - {"y", "no-install-recommends"} if m else set()
if len(stages) < 2: fail("Dockerfile: expected a build stage and a runtime stage")
else:
    build_pkgs, run_pkgs = apt_pkgs(stages[0]), apt_pkgs(stages[-1])
    if os.path.isfile("scripts/install-deps.sh"):
        m = re.search(r"pkgs=\((.*?)\)", open("scripts/install-deps.sh").read(), re.S)
        want = set(m.group(1).split()) - TEST_ONLY_PKGS if m else set()
        missing = want - build_pkgs
        if missing: fail(f"Dockerfile: build stage lacks packages of scripts/install-deps.sh: {sorted(missing)}")
    for d in ("EXPOSE 8080 7070 9090", "STOPSIGNAL SIGTERM", "HEALTHCHECK", "ENTRYPOINT"):
        if d not in df: fail(f"Dockerfile: no {d}")
    if not re.search(r"(?m)^USER\s+(?!0\b|root\b)", stages[-1]): fail("Dockerfile: runtime stage does not switch to a non-root USER")
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

sys.exit(1 if fails else 0)
PYEOF

# ---- external validators, when installed ------------------------------------
compose=()
if docker compose version >/dev/null 2>&1; then compose=(docker compose)
elif command -v docker-compose >/dev/null 2>&1; then compose=(docker-compose); fi
if ((${#compose[@]})); then
  if "${compose[@]}" -f docker-compose.yml config -q 2>"$tmp/compose.err"; then
    ok "${compose[*]} config"
  else
    cat "$tmp/compose.err" >&2; bad "${compose[*]} config"
  fi
else
  skip "docker compose not installed: compose file checked by the Python checks only"
fi

if command -v promtool >/dev/null 2>&1; then
  if promtool check config --syntax-only config/prometheus/prometheus.yml >"$tmp/prom.log" 2>&1; then
    ok "promtool check config"
  else
    cat "$tmp/prom.log" >&2; bad "promtool check config"
  fi
else
  skip "promtool not installed"
fi

kc=${KUBECONFORM:-$(command -v kubeconform || true)}
if [[ -n $kc ]]; then
  kargs=(-strict -summary -ignore-missing-schemas)
  [[ -n ${KUBECONFORM_SCHEMA_LOCATION:-} ]] && kargs+=(-schema-location "$KUBECONFORM_SCHEMA_LOCATION")
  files=(k8s/namespace.yaml k8s/configmap.yaml k8s/statefulset.yaml k8s/monitoring.yaml)
  for r in "$tmp"/render*.yaml; do [[ -f $r ]] && files+=("$r"); done
  if "$kc" "${kargs[@]}" "${files[@]}" >"$tmp/kc.log" 2>&1; then
    ok "kubeconform $(tail -1 "$tmp/kc.log")"
  elif grep -q 'failed downloading schema' "$tmp/kc.log"; then
    skip "kubeconform: schemas not reachable (set KUBECONFORM_SCHEMA_LOCATION to a local copy)"
  else
    cat "$tmp/kc.log" >&2; bad "kubeconform"
  fi
else
  skip "kubeconform not installed"
fi

if ((failed)); then
  echo "validate: problems found" >&2
  exit 1
fi
echo "validate: all checks passed"
