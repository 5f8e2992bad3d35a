// What MemQuorum's deployment needs beyond well-typed objects. The checks
// run over one set of objects (one `helm template` output, or the files of
// k8s/ together), because most of them relate two objects: a StatefulSet
// and the PodDisruptionBudget and Service that must go with it.
//
// Why each rule exists is in its error message.
package main

import (
	"encoding/json"
	"fmt"
	"path"
	"sort"
	"strconv"
	"strings"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
	kindv1alpha4 "sigs.k8s.io/kind/pkg/apis/config/v1alpha4"
)

const (
	agentName          = "memquorum" // the agent's container name
	drainEnv           = "MEMQUORUM_DRAIN_TIMEOUT"
	drainDefault       = 30 // seconds, the agent's default
	graceMargin        = 10 // seconds between the drain deadline and SIGKILL
	defaultGracePeriod = 30 // Kubernetes' default terminationGracePeriodSeconds
	budgetShareOfLimit = 0.8
)

type options struct {
	namespace string    // every namespaced object must be in it ("" = any)
	settings  *settings // nil: env names and properties keys not checked
	pending   map[string]bool
}

type report struct {
	errors   []string
	warnings []string
}

func (r *report) errf(o *object, format string, a ...any) {
	r.errors = append(r.errors, o.where+": "+fmt.Sprintf(format, a...))
}

func (r *report) warnf(o *object, format string, a ...any) {
	r.warnings = append(r.warnings, o.where+": "+fmt.Sprintf(format, a...))
}

// A workload is an object with a pod template.
type workload struct {
	o        *object
	tmpl     *corev1.PodTemplateSpec
	replicas *int32 // StatefulSet and Deployment only
	sts      *appsv1.StatefulSet
}

func workloads(objs []*object) []workload {
	var out []workload
	for _, o := range objs {
		switch v := o.obj.(type) {
		case *appsv1.StatefulSet:
			out = append(out, workload{o: o, tmpl: &v.Spec.Template, replicas: v.Spec.Replicas, sts: v})
		case *appsv1.Deployment:
			out = append(out, workload{o: o, tmpl: &v.Spec.Template, replicas: v.Spec.Replicas})
		case *appsv1.DaemonSet:
			out = append(out, workload{o: o, tmpl: &v.Spec.Template})
		case *appsv1.ReplicaSet:
			out = append(out, workload{o: o, tmpl: &v.Spec.Template})
		case *batchv1.Job:
			out = append(out, workload{o: o, tmpl: &v.Spec.Template})
		case *batchv1.CronJob:
			out = append(out, workload{o: o, tmpl: &v.Spec.JobTemplate.Spec.Template})
		case *corev1.Pod:
			out = append(out, workload{o: o, tmpl: &corev1.PodTemplateSpec{ObjectMeta: v.ObjectMeta, Spec: v.Spec}})
		}
	}
	return out
}

func checkSet(objs []*object, opt options) *report {
	r := &report{}
	seen := map[string]*object{}
	for _, o := range objs {
		if _, isKind := o.obj.(*kindv1alpha4.Cluster); isKind {
			checkKindCluster(r, o)
			continue
		}
		key := o.gvk.GroupKind().String() + " " + qualified(o.namespace, o.name)
		if prev := seen[key]; prev != nil {
			r.errf(o, "defined twice (also at %s)", prev.where)
		}
		seen[key] = o
		if opt.namespace != "" && !clusterScoped[o.gvk.Kind] && o.namespace != opt.namespace {
			r.errf(o, "is in namespace %q, not %q", o.namespace, opt.namespace)
		}
	}
	for _, w := range workloads(objs) {
		checkNonRoot(r, w)
		checkAgent(r, w, objs, opt)
	}
	for _, o := range objs {
		switch v := o.obj.(type) {
		case *monitoringv1.ServiceMonitor:
			checkServiceMonitor(r, o, v, objs)
		case *corev1.ConfigMap:
			checkDashboard(r, o, v)
		}
	}
	return r
}

// ---------------------------------------------------------------------------
// Every container of every pod: non-root with a numeric user.

func checkNonRoot(r *report, w workload) {
	pod := &w.tmpl.Spec
	var podNonRoot *bool
	var podUser *int64
	if pod.SecurityContext != nil {
		podNonRoot, podUser = pod.SecurityContext.RunAsNonRoot, pod.SecurityContext.RunAsUser
	}
	for _, c := range allContainers(pod) {
		nonRoot, user := podNonRoot, podUser
		if c.SecurityContext != nil {
			if c.SecurityContext.RunAsNonRoot != nil {
				nonRoot = c.SecurityContext.RunAsNonRoot
			}
			if c.SecurityContext.RunAsUser != nil {
				user = c.SecurityContext.RunAsUser
			}
		}
		switch {
		case nonRoot == nil || !*nonRoot:
			r.errf(w.o, "container %q: runAsNonRoot is not true (pod or container securityContext)", c.Name)
		case user == nil:
			r.errf(w.o, "container %q: runAsNonRoot without a numeric runAsUser: the kubelet can then only "+
				"trust the image's USER, and refuses to start an image whose USER is a name", c.Name)
		case *user == 0:
			r.errf(w.o, "container %q: runAsUser 0 is root", c.Name)
		}
	}
}

func allContainers(pod *corev1.PodSpec) []*corev1.Container {
	var out []*corev1.Container
	for i := range pod.InitContainers {
		out = append(out, &pod.InitContainers[i])
	}
	for i := range pod.Containers {
		out = append(out, &pod.Containers[i])
	}
	return out
}

// ---------------------------------------------------------------------------
// The agent container: probes, drain and grace period, settings.

func findAgent(r *report, w workload) (*corev1.Container, bool) {
	pod := &w.tmpl.Spec
	var agent *corev1.Container
	native := false
	for i := range pod.Containers {
		if pod.Containers[i].Name == agentName {
			agent = &pod.Containers[i]
		}
	}
	for i := range pod.InitContainers {
		c := &pod.InitContainers[i]
		if c.Name != agentName {
			continue
		}
		if agent != nil {
			r.errf(w.o, "%q is both a container and an init container", agentName)
		}
		if c.RestartPolicy == nil || *c.RestartPolicy != corev1.ContainerRestartPolicyAlways {
			r.errf(w.o, "init container %q needs restartPolicy: Always (a native sidecar, Kubernetes >= 1.29); "+
				"a plain init container must exit before the app starts, and the agent never exits", agentName)
		}
		agent, native = c, true
	}
	return agent, native
}

func envOf(c *corev1.Container) map[string]*corev1.EnvVar {
	out := map[string]*corev1.EnvVar{}
	for i := range c.Env {
		out[c.Env[i].Name] = &c.Env[i]
	}
	return out
}

func checkAgent(r *report, w workload, objs []*object, opt options) {
	agent, _ := findAgent(r, w)
	if agent == nil {
		return
	}
	pod := &w.tmpl.Spec
	env := envOf(agent)

	// Ports and probes.
	httpPort := int32(0)
	names := map[string]bool{}
	for _, p := range agent.Ports {
		names[p.Name] = true
		if p.Name == "http" {
			httpPort = p.ContainerPort
		}
	}
	for _, n := range []string{"api", "peer", "http"} {
		if !names[n] {
			r.errf(w.o, "container %q has no port named %q", agentName, n)
		}
	}
	checkProbe(r, w.o, "startupProbe", agent.StartupProbe, "/healthz", httpPort)
	checkProbe(r, w.o, "readinessProbe", agent.ReadinessProbe, "/readyz", httpPort)
	checkProbe(r, w.o, "livenessProbe", agent.LivenessProbe, "/healthz", httpPort)

	// Drain timeout and grace period.
	drain := drainDefault
	if e := env[drainEnv]; e == nil {
		r.errf(w.o, "container %q does not set %s: the grace period cannot be checked against the drain", agentName, drainEnv)
	} else if e.ValueFrom != nil {
		r.errf(w.o, "%s must be a literal duration, not valueFrom", drainEnv)
	} else if ms, err := agentDurationMs(e.Value); err != nil {
		r.errf(w.o, "%s=%q: %v", drainEnv, e.Value, err)
	} else {
		drain = int((ms + 999) / 1000)
	}
	preStop := 0
	if agent.Lifecycle != nil && agent.Lifecycle.PreStop != nil {
		if s := agent.Lifecycle.PreStop.Sleep; s != nil {
			preStop = int(s.Seconds)
		} else {
			r.warnf(w.o, "container %q has a preStop hook of unknown length: not counted in the grace period", agentName)
		}
	}
	grace := int64(defaultGracePeriod)
	if pod.TerminationGracePeriodSeconds != nil {
		grace = *pod.TerminationGracePeriodSeconds
	}
	if need := int64(drain + graceMargin + preStop); grace < need {
		extra := ""
		if preStop > 0 {
			extra = fmt.Sprintf(" + preStop sleep %d s", preStop)
		}
		r.errf(w.o, "terminationGracePeriodSeconds %d < %s %d s%s + %d s: the kubelet would SIGKILL "+
			"the agent while it still hands its shards over", grace, drainEnv, drain, extra, graceMargin)
	}

	// Identity and environment.
	if pod.EnableServiceLinks == nil || *pod.EnableServiceLinks {
		r.errf(w.o, "enableServiceLinks must be false: Kubernetes would inject MEMQUORUM_*_PORT=tcp://... "+
			"variables for Services named memquorum*, which look like the agent's settings")
	}
	checkFieldRef(r, w.o, env, "MEMQUORUM_NODE_ID", "metadata.name")
	checkFieldRef(r, w.o, env, "MEMQUORUM_ADVERTISE_ADDR", "status.podIP")
	if opt.settings != nil {
		for _, e := range agent.Env {
			if !agentEnv.MatchString(e.Name) || opt.settings.env[e.Name] {
				continue
			}
			if opt.pending[e.Name] {
				r.warnf(w.o, "env %s is not in the agent's settings table yet (pending: the agent warns and ignores it)", e.Name)
			} else {
				r.errf(w.o, "env %s is not a setting the agent knows (agent/config/config.c)", e.Name)
			}
		}
	}
	sc := agent.SecurityContext
	if sc == nil || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem ||
		sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
		r.errf(w.o, "container %q must set readOnlyRootFilesystem: true and allowPrivilegeEscalation: false", agentName)
	}

	props := checkProperties(r, w, agent, env, objs, opt)
	checkMemory(r, w.o, agent, env, props)
	checkSecretRefs(r, w, agent, objs)

	if w.sts != nil {
		if w.sts.Spec.PodManagementPolicy != appsv1.ParallelPodManagement {
			r.errf(w.o, "podManagementPolicy must be Parallel: with bootstrap.expect > 1 no agent is ready "+
				"before that many have met, so an ordered start waits on pod 0 forever")
		}
	}
	if w.replicas != nil || w.sts != nil {
		checkPeerService(r, w, env, objs)
		checkPDB(r, w, objs)
	}
}

func checkProbe(r *report, o *object, name string, p *corev1.Probe, wantPath string, httpPort int32) {
	if p == nil {
		r.errf(o, "container %q has no %s (want an HTTP GET of %s on the http port)", agentName, name, wantPath)
		return
	}
	if p.HTTPGet == nil {
		r.errf(o, "container %q: %s must be an HTTP GET of %s on the http port", agentName, name, wantPath)
		return
	}
	if p.HTTPGet.Path != wantPath {
		r.errf(o, "container %q: %s gets %q, want %s", agentName, name, p.HTTPGet.Path, wantPath)
	}
	port := p.HTTPGet.Port
	if !(port.Type == intstr.String && port.StrVal == "http") &&
		!(port.Type == intstr.Int && port.IntVal == httpPort && httpPort != 0) {
		r.errf(o, "container %q: %s port is %q, want the http port (name http or %d)", agentName, name, port.String(), httpPort)
	}
}

func checkFieldRef(r *report, o *object, env map[string]*corev1.EnvVar, name, field string) {
	e := env[name]
	if e == nil || e.ValueFrom == nil || e.ValueFrom.FieldRef == nil || e.ValueFrom.FieldRef.FieldPath != field {
		r.errf(o, "env %s must come from the downward API field %s", name, field)
	}
}

// checkProperties finds the ConfigMap behind MEMQUORUM_CONFIG and checks
// its keys; it returns the properties (empty without a file).
func checkProperties(r *report, w workload, agent *corev1.Container, env map[string]*corev1.EnvVar,
	objs []*object, opt options) map[string]string {
	e := env["MEMQUORUM_CONFIG"]
	if e == nil || e.Value == "" {
		return map[string]string{}
	}
	volumes := map[string]*corev1.Volume{}
	for i := range w.tmpl.Spec.Volumes {
		volumes[w.tmpl.Spec.Volumes[i].Name] = &w.tmpl.Spec.Volumes[i]
	}
	for _, m := range agent.VolumeMounts {
		dir := strings.TrimSuffix(m.MountPath, "/") + "/"
		if !strings.HasPrefix(e.Value, dir) {
			continue
		}
		v := volumes[m.Name]
		if v == nil || v.ConfigMap == nil {
			r.errf(w.o, "MEMQUORUM_CONFIG=%s is on volume %q, which is not a ConfigMap", e.Value, m.Name)
			return map[string]string{}
		}
		cm := findConfigMap(objs, w.o.namespace, v.ConfigMap.Name)
		if cm == nil {
			r.errf(w.o, "MEMQUORUM_CONFIG=%s: ConfigMap %q is not defined here", e.Value, v.ConfigMap.Name)
			return map[string]string{}
		}
		key := strings.TrimPrefix(e.Value, dir)
		text, ok := cm.Data[key]
		if !ok {
			r.errf(w.o, "MEMQUORUM_CONFIG=%s: ConfigMap %q has no key %q", e.Value, cm.Name, key)
			return map[string]string{}
		}
		props, perrs := parseProperties(text)
		for _, pe := range perrs {
			r.errf(w.o, "ConfigMap %s %s: %s", cm.Name, key, pe)
		}
		if opt.settings != nil {
			var bad []string
			for k := range props {
				if !opt.settings.props[k] {
					bad = append(bad, k)
				}
			}
			sort.Strings(bad)
			for _, k := range bad {
				r.errf(w.o, "ConfigMap %s %s: %s is not a key the agent knows: it would refuse to start", cm.Name, key, k)
			}
		}
		return props
	}
	r.errf(w.o, "MEMQUORUM_CONFIG=%s is on no volume mount of container %q", e.Value, agentName)
	return map[string]string{}
}

func findConfigMap(objs []*object, ns, name string) *corev1.ConfigMap {
	for _, o := range objs {
		if cm, ok := o.obj.(*corev1.ConfigMap); ok && o.name == name && o.namespace == ns {
			return cm
		}
	}
	return nil
}

func checkMemory(r *report, o *object, agent *corev1.Container, env map[string]*corev1.EnvVar, props map[string]string) {
	limit, ok := agent.Resources.Limits[corev1.ResourceMemory]
	if !ok {
		r.errf(o, "container %q has no memory limit", agentName)
		return
	}
	budget := props["memquorum.limits.memory-budget"]
	if e := env["MEMQUORUM_LIMITS_MEMORY_BUDGET"]; e != nil && e.Value != "" {
		budget = e.Value
	}
	if budget == "" {
		r.errf(o, "no memory budget (MEMQUORUM_LIMITS_MEMORY_BUDGET or memquorum.limits.memory-budget): "+
			"the agent's default 1GiB would let the kernel OOM-kill it before writes get RESOURCE_EXHAUSTED")
		return
	}
	b, err := parseSize(budget)
	if err != nil {
		r.errf(o, "memory budget: %v", err)
		return
	}
	if float64(b) > budgetShareOfLimit*float64(limit.Value()) {
		r.errf(o, "memory budget %s is over %.0f%% of the %s memory limit: gRPC buffers, Raft logs in flight "+
			"and the feed live outside the budget", budget, budgetShareOfLimit*100, limit.String())
	}
}

// checkSecretRefs: a Secret or ConfigMap defined in the same set must hold
// the keys the agent's env refers to (one defined elsewhere is not known).
func checkSecretRefs(r *report, w workload, agent *corev1.Container, objs []*object) {
	for _, e := range agent.Env {
		if e.ValueFrom == nil || e.ValueFrom.SecretKeyRef == nil {
			continue
		}
		ref := e.ValueFrom.SecretKeyRef
		for _, o := range objs {
			s, ok := o.obj.(*corev1.Secret)
			if !ok || o.name != ref.Name || o.namespace != w.o.namespace {
				continue
			}
			_, inData := s.Data[ref.Key]
			_, inString := s.StringData[ref.Key]
			if !inData && !inString {
				r.errf(w.o, "env %s: Secret %s has no key %q", e.Name, ref.Name, ref.Key)
			}
		}
	}
}

// ---------------------------------------------------------------------------
// The peer Service: headless, publishing pods before they are ready.

func checkPeerService(r *report, w workload, env map[string]*corev1.EnvVar, objs []*object) {
	name := ""
	if w.sts != nil {
		name = w.sts.Spec.ServiceName
	}
	if e := env["MEMQUORUM_DNS_NAME"]; e != nil && e.Value != "" {
		parts := strings.Split(e.Value, ".")
		if name != "" && parts[0] != name {
			r.errf(w.o, "MEMQUORUM_DNS_NAME %s does not name the StatefulSet's serviceName %s", e.Value, name)
		}
		name = parts[0]
		if w.o.namespace != "" && (len(parts) < 4 || parts[1] != w.o.namespace || parts[2] != "svc") {
			r.errf(w.o, "MEMQUORUM_DNS_NAME %s is not the FQDN <service>.%s.svc.<cluster domain>", e.Value, w.o.namespace)
		}
	}
	if name == "" {
		r.errf(w.o, "no peer Service: set the StatefulSet's serviceName or MEMQUORUM_DNS_NAME")
		return
	}
	var svc *corev1.Service
	for _, o := range objs {
		if s, ok := o.obj.(*corev1.Service); ok && o.name == name && o.namespace == w.o.namespace {
			svc = s
		}
	}
	if svc == nil {
		r.errf(w.o, "peer Service %q is not defined here", name)
		return
	}
	if svc.Spec.ClusterIP != corev1.ClusterIPNone {
		r.errf(w.o, "peer Service %s must be headless (clusterIP: None): agents need every pod's address, not a virtual IP", name)
	}
	if !svc.Spec.PublishNotReadyAddresses {
		r.errf(w.o, "peer Service %s must set publishNotReadyAddresses: true: an agent becomes ready only "+
			"after it has found its peers, so not-ready pods must be in DNS", name)
	}
	if len(svc.Spec.Selector) == 0 || !labels.SelectorFromSet(svc.Spec.Selector).Matches(labels.Set(w.tmpl.Labels)) {
		r.errf(w.o, "peer Service %s does not select the pods (selector %v, pod labels %v)", name, svc.Spec.Selector, w.tmpl.Labels)
	}
	hasPeer := false
	for _, p := range svc.Spec.Ports {
		hasPeer = hasPeer || p.Name == "peer"
	}
	if !hasPeer {
		r.errf(w.o, "peer Service %s has no port named peer (the SRV record _peer._tcp)", name)
	}
}

// ---------------------------------------------------------------------------
// The PodDisruptionBudget: an integer minAvailable of replicas - 1.

func checkPDB(r *report, w workload, objs []*object) {
	replicas := int32(1)
	if w.replicas != nil {
		replicas = *w.replicas
	}
	want := replicas - 1
	found := 0
	for _, o := range objs {
		pdb, ok := o.obj.(*policyv1.PodDisruptionBudget)
		if !ok || o.namespace != w.o.namespace || pdb.Spec.Selector == nil {
			continue
		}
		sel, err := metav1.LabelSelectorAsSelector(pdb.Spec.Selector)
		if err != nil {
			r.errf(o, "selector: %v", err)
			continue
		}
		if sel.Empty() || !sel.Matches(labels.Set(w.tmpl.Labels)) {
			continue
		}
		found++
		if pdb.Spec.MaxUnavailable != nil {
			r.errf(o, "uses maxUnavailable: a quorum system needs an integer minAvailable (replicas - 1 = %d); "+
				"maxUnavailable and percentages are re-based on the pods that exist while they churn", want)
		}
		switch m := pdb.Spec.MinAvailable; {
		case m == nil:
			r.errf(o, "has no minAvailable (want the integer replicas - 1 = %d)", want)
		case m.Type == intstr.String:
			r.errf(o, "minAvailable %q is a percentage or string; want the integer replicas - 1 = %d", m.StrVal, want)
		case m.IntVal != want:
			r.errf(o, "minAvailable %d, want replicas - 1 = %d (%s has %d replicas)", m.IntVal, want, w.o.name, replicas)
		}
	}
	if found == 0 {
		r.errf(w.o, "no PodDisruptionBudget selects its pods: a drain could evict a shard's majority at once")
	}
	if found > 1 {
		r.errf(w.o, "%d PodDisruptionBudgets select its pods; the eviction API refuses to evict such pods", found)
	}
}

// ---------------------------------------------------------------------------
// ServiceMonitor: selects a Service of this set, on a port it has.

func checkServiceMonitor(r *report, o *object, sm *monitoringv1.ServiceMonitor, objs []*object) {
	sel, err := metav1.LabelSelectorAsSelector(&sm.Spec.Selector)
	if err != nil {
		r.errf(o, "selector: %v", err)
		return
	}
	namespaces := map[string]bool{o.namespace: true}
	if len(sm.Spec.NamespaceSelector.MatchNames) > 0 {
		namespaces = map[string]bool{}
		for _, n := range sm.Spec.NamespaceSelector.MatchNames {
			namespaces[n] = true
		}
	}
	var ports map[string]bool
	for _, so := range objs {
		svc, ok := so.obj.(*corev1.Service)
		if !ok || (!sm.Spec.NamespaceSelector.Any && !namespaces[so.namespace]) || !sel.Matches(labels.Set(svc.Labels)) {
			continue
		}
		if ports == nil {
			ports = map[string]bool{}
		}
		for _, p := range svc.Spec.Ports {
			ports[p.Name] = true
		}
	}
	if ports == nil {
		r.errf(o, "selects no Service defined here (selector %s)", sel.String())
		return
	}
	if len(sm.Spec.Endpoints) == 0 {
		r.errf(o, "has no endpoints")
	}
	for i, ep := range sm.Spec.Endpoints {
		if ep.Port == "" && ep.TargetPort != nil {
			continue // a pod port: not a Service port to check here
		}
		if !ports[ep.Port] {
			r.errf(o, "endpoints[%d].port %q is not a port name of the selected Service", i, ep.Port)
		}
	}
}

// ---------------------------------------------------------------------------
// Grafana dashboards shipped as ConfigMaps.

func checkDashboard(r *report, o *object, cm *corev1.ConfigMap) {
	if _, ok := cm.Labels["grafana_dashboard"]; !ok {
		return
	}
	n := 0
	for k, v := range cm.Data {
		if path.Ext(k) != ".json" {
			continue
		}
		n++
		var d struct {
			Title  string            `json:"title"`
			Panels []json.RawMessage `json:"panels"`
		}
		if err := json.Unmarshal([]byte(v), &d); err != nil {
			r.errf(o, "data %s is not JSON: %v", k, err)
		} else if d.Title == "" || len(d.Panels) == 0 {
			r.errf(o, "data %s is not a Grafana dashboard (no title or panels)", k)
		}
	}
	if n == 0 {
		r.errf(o, "has the grafana_dashboard label but no *.json data")
	}
}

// ---------------------------------------------------------------------------
// kind cluster config.

func checkKindCluster(r *report, o *object) {
	cfg := o.obj.(*kindv1alpha4.Cluster)
	cp := 0
	for i, n := range cfg.Nodes {
		switch n.Role {
		case kindv1alpha4.ControlPlaneRole:
			cp++
		case kindv1alpha4.WorkerRole:
		default:
			r.errf(o, "nodes[%d].role %q is neither control-plane nor worker", i, n.Role)
		}
	}
	if cp == 0 {
		r.errf(o, "has no control-plane node")
	}
}

// agentDurationMs reads a duration the way the agent does
// (agent/config/values.c): digits with a unit each, ms, s, m, h or d, in
// sequence ("1m30s"); a bare number is milliseconds, which for a drain
// timeout is almost surely a mistake, so it is refused here.
func agentDurationMs(v string) (int64, error) {
	units := []struct {
		name string
		ms   int64
	}{{"ms", 1}, {"s", 1000}, {"m", 60000}, {"h", 3600000}, {"d", 86400000}}
	if v == "" {
		return 0, fmt.Errorf("empty duration")
	}
	var total int64
	for rest := v; rest != ""; {
		i := 0
		for i < len(rest) && rest[i] >= '0' && rest[i] <= '9' {
			i++
		}
		if i == 0 {
			return 0, fmt.Errorf("not a duration (e.g. 30s, 1m)")
		}
		n, err := strconv.ParseInt(rest[:i], 10, 64)
		if err != nil {
			return 0, fmt.Errorf("not a duration: %v", err)
		}
		rest = rest[i:]
		if rest == "" {
			return 0, fmt.Errorf("a bare number is milliseconds to the agent; give a unit (e.g. %ds)", n)
		}
		matched := false
		for _, u := range units {
			if strings.HasPrefix(rest, u.name) && (u.name != "m" || !strings.HasPrefix(rest, "ms")) {
				total += n * u.ms
				rest = rest[len(u.name):]
				matched = true
				break
			}
		}
		if !matched {
			return 0, fmt.Errorf("unknown unit in %q (ms, s, m, h, d)", v)
		}
	}
	return total, nil
}
