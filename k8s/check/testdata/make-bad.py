#!/usr/bin/env python3
"""Writes bad/*.yaml: each is good/minimal.yaml (or good/kind.yaml) with one
text change, headed by the error message(s) mqcheck must print for it.
check_test.go runs them; k8s/validate.sh runs this first (bad/ is not kept
in the repository)."""
import os

here = os.path.dirname(os.path.abspath(__file__))
base = open(os.path.join(here, "good/minimal.yaml")).read().split("\n", 2)[2]
kind = open(os.path.join(here, "good/kind.yaml")).read()

# name: (what it shows, [wanted substrings], [(old, new), ...], base text)
CASES = {
    # -- strict decoding into the API types
    "unknown-field": ("a misspelt field in a container", ['unknown field "spec.template.spec.containers[0].livenesProbe"'],
                      [("          livenessProbe:", "          livenesProbe:")], base),
    "wrong-type": ("a string where the API has an int32", ["cannot unmarshal string into Go struct field StatefulSetSpec.spec.replicas of type int32"],
                   [("  replicas: 3", '  replicas: "3"')], base),
    "duplicate-key": ("a key given twice", ['key "publishNotReadyAddresses" already set in map'],
                      [("  publishNotReadyAddresses: true\n", "  publishNotReadyAddresses: true\n  publishNotReadyAddresses: false\n")], base),
    "unknown-kind": ("a kind that does not exist", ["apps/v1 StatefulSets is not a type this checker knows"],
                     [("kind: StatefulSet", "kind: StatefulSets")], base),
    "bad-quantity": ("a memory limit that is no quantity", ["quantities must match the regular expression"],
                     [("              memory: 512Mi", "              memory: 512 megs")], base),
    "servicemonitor-unknown-field": ("a misspelt field in the CRD type", ['unknown field "spec.endpoints[0].intervall"'],
                                     [("      path: /metrics", "      path: /metrics\n      intervall: 15s")], base),
    "job-unknown-field": ("a misspelt Job field", ['unknown field "spec.backofLimit"'],
                          [(base, "apiVersion: batch/v1\nkind: Job\nmetadata:\n  name: e2e\n  namespace: memquorum\nspec:\n  backofLimit: 0\n"
                                  "  template:\n    spec:\n      restartPolicy: Never\n      securityContext:\n        runAsNonRoot: true\n        runAsUser: 10001\n"
                                  "      containers:\n        - name: e2e\n          image: memquorum:test\n")], base),
    "kind-unknown-field": ("a misspelt field in the kind config", ["field extraPortMapping not found in type v1alpha4.Node"],
                           [("    labels:", "    extraPortMapping: []\n    labels:")], kind),
    "kind-bad-role": ("a node role kind does not have", ['nodes[1].role "agent" is neither control-plane nor worker'],
                      [("  - role: worker", "  - role: agent")], kind),
    "kind-no-control-plane": ("no control-plane node", ["has no control-plane node"],
                              [("  - role: control-plane\n", "")], kind),
    # -- the PodDisruptionBudget
    "pdb-percentage": ("minAvailable as a percentage", ['minAvailable "67%" is a percentage or string; want the integer replicas - 1 = 2'],
                       [("  minAvailable: 2", '  minAvailable: "67%"')], base),
    "pdb-max-unavailable": ("maxUnavailable instead of minAvailable", ["uses maxUnavailable", "has no minAvailable"],
                            [("  minAvailable: 2", "  maxUnavailable: 1")], base),
    "pdb-wrong-count": ("minAvailable not replicas - 1", ["minAvailable 2, want replicas - 1 = 4 (mq has 5 replicas)"],
                        [("  replicas: 3", "  replicas: 5")], base),
    "pdb-missing": ("no PodDisruptionBudget", ["no PodDisruptionBudget selects its pods"],
                    [("  minAvailable: 2\n  selector:\n    matchLabels:\n      app: mq", "  minAvailable: 2\n  selector:\n    matchLabels:\n      app: other")], base),
    # -- the peer Service
    "service-not-headless": ("a peer Service with a cluster IP", ["peer Service mq-peers must be headless"],
                             [("  clusterIP: None\n", "")], base),
    "service-hides-unready": ("a peer Service without publishNotReadyAddresses", ["must set publishNotReadyAddresses: true"],
                              [("  publishNotReadyAddresses: true\n", "")], base),
    "service-no-peer-port": ("a peer Service without the peer port", ["has no port named peer"],
                             [("    - name: peer\n      port: 7070\n", "")], base),
    "dns-name-other-service": ("MEMQUORUM_DNS_NAME naming another Service", ["does not name the StatefulSet's serviceName mq-peers"],
                               [("value: mq-peers.memquorum.svc.cluster.local", "value: other.memquorum.svc.cluster.local")], base),
    # -- probes
    "no-startup-probe": ("no startup probe", ['has no startupProbe'],
                         [("          startupProbe:\n            httpGet:\n              path: /healthz\n              port: http\n", "")], base),
    "no-liveness-probe": ("no liveness probe", ['has no livenessProbe'],
                          [("          livenessProbe:\n            httpGet:\n              path: /healthz\n              port: 9090\n", "")], base),
    "readiness-on-healthz": ("readiness on /healthz", ['readinessProbe gets "/healthz", want /readyz'],
                             [("              path: /readyz", "              path: /healthz")], base),
    "readiness-tcp": ("a TCP readiness probe", ["readinessProbe must be an HTTP GET of /readyz"],
                      [("          readinessProbe:\n            httpGet:\n              path: /readyz\n              port: http\n",
                        "          readinessProbe:\n            tcpSocket:\n              port: http\n")], base),
    "liveness-wrong-port": ("liveness on the API port", ['livenessProbe port is "8080", want the http port'],
                            [("              path: /healthz\n              port: 9090", "              path: /healthz\n              port: 8080")], base),
    # -- drain and grace period
    "grace-too-short": ("the default grace period", ["terminationGracePeriodSeconds 30 < MEMQUORUM_DRAIN_TIMEOUT 30 s + 10 s"],
                        [("      terminationGracePeriodSeconds: 40\n", "")], base),
    "grace-long-drain": ("a drain longer than the grace period allows", ["terminationGracePeriodSeconds 40 < MEMQUORUM_DRAIN_TIMEOUT 60 s + 10 s"],
                         [('              value: "30s"', '              value: "1m"')], base),
    "grace-prestop": ("a preStop sleep the grace period does not cover", ["terminationGracePeriodSeconds 40 < MEMQUORUM_DRAIN_TIMEOUT 30 s + preStop sleep 5 s + 10 s"],
                      [("          securityContext:\n            allowPrivilegeEscalation",
                        "          lifecycle:\n            preStop:\n              sleep:\n                seconds: 5\n          securityContext:\n            allowPrivilegeEscalation")], base),
    "drain-unset": ("no MEMQUORUM_DRAIN_TIMEOUT", ["does not set MEMQUORUM_DRAIN_TIMEOUT"],
                    [('            - name: MEMQUORUM_DRAIN_TIMEOUT\n              value: "30s"\n', "")], base),
    "drain-bare-number": ("a drain timeout without a unit (milliseconds to the agent)",
                          ['MEMQUORUM_DRAIN_TIMEOUT="30": a bare number is milliseconds to the agent'],
                          [('              value: "30s"', '              value: "30"')], base),
    # -- users
    "run-as-root": ("a container running as uid 0", ['container "app": runAsUser 0 is root'],
                    [("          image: app:test", "          image: app:test\n          securityContext:\n            runAsUser: 0")], base),
    "run-as-non-root-off": ("runAsNonRoot switched off", ['container "memquorum": runAsNonRoot is not true', 'container "app": runAsNonRoot is not true'],
                            [("        runAsNonRoot: true", "        runAsNonRoot: false")], base),
    "run-as-non-root-no-uid": ("runAsNonRoot without a numeric user", ["runAsNonRoot without a numeric runAsUser"],
                               [("        runAsUser: 10001\n", "")], base),
    # -- sidecar modes
    "native-without-restart-policy": ("the agent as a plain init container", ['init container "memquorum" needs restartPolicy: Always'],
                                      [("      containers:\n        - name: memquorum", "      initContainers:\n        - name: memquorum"),
                                       ("        - name: app\n", "      containers:\n        - name: app\n")], base),
    # -- settings and environment
    "unknown-env": ("an env name the agent does not read", ["env MEMQUORUM_SHARD_COUNT is not a setting the agent knows"],
                    [("            - name: MEMQUORUM_DNS_NAME", "            - name: MEMQUORUM_SHARD_COUNT\n              value: \"16\"\n            - name: MEMQUORUM_DNS_NAME")], base),
    "unknown-property": ("a properties key the agent refuses", ["memquorum.shards.count is not a key the agent knows"],
                         [("memquorum.shards.total=16", "memquorum.shards.count=16")], base),
    "service-links": ("service links left on", ["enableServiceLinks must be false"],
                      [("      enableServiceLinks: false\n", "")], base),
    "node-id-literal": ("a fixed node id for every pod", ["env MEMQUORUM_NODE_ID must come from the downward API field metadata.name"],
                       [("            - name: MEMQUORUM_NODE_ID\n              valueFrom:\n                fieldRef:\n                  fieldPath: metadata.name",
                         "            - name: MEMQUORUM_NODE_ID\n              value: node-1")], base),
    "memory-budget-at-limit": ("a data budget as large as the memory limit", ["memory budget 500MiB is over 80% of the 512Mi memory limit"],
                               [("memquorum.limits.memory-budget=320MiB", "memquorum.limits.memory-budget=500MiB")], base),
    "configmap-missing": ("the properties ConfigMap not defined", ['ConfigMap "mq-config2" is not defined here'],
                          [("            name: mq-config\n", "            name: mq-config2\n")], base),
    "servicemonitor-wrong-port": ("a ServiceMonitor on a port the Service lacks", ['endpoints[0].port "metrics" is not a port name of the selected Service'],
                                  [("    - port: http\n", "    - port: metrics\n")], base),
    "wrong-namespace": ("an object outside the namespace", ['is in namespace "default", not "memquorum"'],
                       [("  name: mq-config\n  namespace: memquorum", "  name: mq-config\n  namespace: default")], base),
}

out = os.path.join(here, "bad")
os.makedirs(out, exist_ok=True)  # generated, not kept in the repository
for f in os.listdir(out):
    if f.endswith(".yaml"):
        os.remove(os.path.join(out, f))
for name, (what, wants, edits, text) in sorted(CASES.items()):
    for old, new in edits:
        if text.count(old) != 1:
            raise SystemExit(f"{name}: {old!r} occurs {text.count(old)} times in the base")
        text = text.replace(old, new)
    head = f"# Bad: {what} (written by make-bad.py).\n" + "".join(f"# want: {w}\n" for w in wants)
    with open(os.path.join(out, name + ".yaml"), "w") as f:
        f.write(head + text)
print(f"make-bad.py: wrote {len(CASES)} fixtures to bad/")
