// Strict decoding: every YAML document becomes a value of the real Go type
// of its apiVersion/kind, or an error naming the document and the field.
//
// Kubernetes objects go through apimachinery's own strict deserializer (the
// one the API server uses for fieldValidation=Strict): YAML is converted to
// JSON refusing duplicate keys, then decoded refusing unknown fields, and a
// value of the wrong type fails with the Go field path. The kind cluster
// config is decoded the way kind itself loads it (go.yaml.in/yaml/v3 with
// KnownFields) into kind's own v1alpha4 types.
package main

import (
	"bytes"
	"fmt"
	"regexp"
	"strings"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	yamlv3 "go.yaml.in/yaml/v3"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	batchv1 "k8s.io/api/batch/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	schedulingv1 "k8s.io/api/scheduling/v1"
	storagev1 "k8s.io/api/storage/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	kindv1alpha4 "sigs.k8s.io/kind/pkg/apis/config/v1alpha4"
	"sigs.k8s.io/yaml"
)

// A doc is one YAML document of an input.
type doc struct {
	src  string // file name, or "-" for stdin
	line int    // 1-based line of the document's first line
	data []byte
}

// An object is a decoded document.
type object struct {
	where     string // "file:line Kind namespace/name"
	gvk       schema.GroupVersionKind
	name      string
	namespace string
	obj       any // a pointer to a k8s.io/api type, a monitoringv1 type or *kindv1alpha4.Cluster
}

var scheme = runtime.NewScheme()

func init() {
	for _, add := range []func(*runtime.Scheme) error{
		corev1.AddToScheme, appsv1.AddToScheme, batchv1.AddToScheme, policyv1.AddToScheme,
		rbacv1.AddToScheme, networkingv1.AddToScheme, autoscalingv2.AddToScheme,
		schedulingv1.AddToScheme, storagev1.AddToScheme, coordinationv1.AddToScheme,
		discoveryv1.AddToScheme, admissionregistrationv1.AddToScheme, monitoringv1.AddToScheme,
	} {
		if err := add(scheme); err != nil {
			panic(err)
		}
	}
}

var deserializer = serializer.NewCodecFactory(scheme, serializer.EnableStrict).UniversalDeserializer()

// Kinds that live outside namespaces, among those the scheme knows.
var clusterScoped = map[string]bool{
	"Namespace": true, "Node": true, "PersistentVolume": true, "ClusterRole": true,
	"ClusterRoleBinding": true, "PriorityClass": true, "StorageClass": true, "CSIDriver": true,
	"CSINode": true, "VolumeAttachment": true, "ValidatingWebhookConfiguration": true,
	"MutatingWebhookConfiguration": true, "ValidatingAdmissionPolicy": true,
	"ValidatingAdmissionPolicyBinding": true,
}

var separator = regexp.MustCompile(`^---(\s.*)?$`)

// splitDocs cuts a multi-document YAML stream at its "---" lines and drops
// documents that hold nothing but comments and blank lines.
func splitDocs(src string, data []byte) []doc {
	var out []doc
	lines := strings.SplitAfter(string(data), "\n")
	start, cur := 1, []string{}
	flush := func() {
		text := strings.Join(cur, "")
		if !blank(text) {
			out = append(out, doc{src: src, line: start, data: []byte(text)})
		}
	}
	for i, l := range lines {
		if separator.MatchString(strings.TrimRight(l, "\r\n")) {
			flush()
			start, cur = i+2, nil
			continue
		}
		cur = append(cur, l)
	}
	flush()
	return out
}

func blank(text string) bool {
	for _, l := range strings.Split(text, "\n") {
		t := strings.TrimSpace(l)
		if t != "" && !strings.HasPrefix(t, "#") {
			return false
		}
	}
	return true
}

// decode turns one document into an object, or returns an error that names
// the document and, for strict and type errors, the field.
func decode(d doc) (*object, error) {
	at := fmt.Sprintf("%s:%d", d.src, d.line)
	var tm struct {
		APIVersion string `json:"apiVersion"`
		Kind       string `json:"kind"`
	}
	if err := yaml.Unmarshal(d.data, &tm); err != nil {
		return nil, fmt.Errorf("%s: not a YAML mapping: %v", at, err)
	}
	if tm.APIVersion == "" || tm.Kind == "" {
		return nil, fmt.Errorf("%s: document has no apiVersion and kind", at)
	}
	gv, err := schema.ParseGroupVersion(tm.APIVersion)
	if err != nil {
		return nil, fmt.Errorf("%s: apiVersion %q: %v", at, tm.APIVersion, err)
	}
	gvk := gv.WithKind(tm.Kind)

	if gv.Group == "kind.x-k8s.io" {
		return decodeKind(d, at, gvk)
	}
	if !scheme.Recognizes(gvk) {
		return nil, fmt.Errorf("%s: %s %s is not a type this checker knows (known: %s)",
			at, tm.APIVersion, tm.Kind, knownKinds())
	}
	obj, _, err := deserializer.Decode(d.data, &gvk, nil)
	if err != nil {
		return nil, fmt.Errorf("%s: %s: %s", at, gvk.Kind, cleanErr(err))
	}
	acc, err := meta.Accessor(obj)
	if err != nil {
		return nil, fmt.Errorf("%s: %s has no object metadata: %v", at, gvk.Kind, err)
	}
	if acc.GetName() == "" {
		return nil, fmt.Errorf("%s: %s has no metadata.name", at, gvk.Kind)
	}
	o := &object{gvk: gvk, name: acc.GetName(), namespace: acc.GetNamespace(), obj: obj}
	o.where = fmt.Sprintf("%s %s %s", at, gvk.Kind, qualified(o.namespace, o.name))
	return o, nil
}

// decodeKind loads a kind cluster config as kind's own loader does
// (sigs.k8s.io/kind/pkg/internal/apis/config/encoding.Parse): yaml.v3 with
// unknown fields refused, into the v1alpha4 types, then kind's defaults.
func decodeKind(d doc, at string, gvk schema.GroupVersionKind) (*object, error) {
	if gvk.Version != "v1alpha4" || gvk.Kind != "Cluster" {
		return nil, fmt.Errorf("%s: kind config %s %s: this checker knows kind.x-k8s.io/v1alpha4 Cluster",
			at, gvk.GroupVersion(), gvk.Kind)
	}
	cfg := &kindv1alpha4.Cluster{}
	dec := yamlv3.NewDecoder(bytes.NewReader(d.data))
	dec.KnownFields(true)
	if err := dec.Decode(cfg); err != nil {
		// yaml.v3 counts lines from the document start.
		return nil, fmt.Errorf("%s: kind Cluster: %s (line numbers count from this document)", at, cleanErr(err))
	}
	kindv1alpha4.SetDefaultsCluster(cfg)
	o := &object{gvk: gvk, name: cfg.Name, obj: cfg}
	o.where = fmt.Sprintf("%s kind Cluster %s", at, cfg.Name)
	return o, nil
}

func cleanErr(err error) string {
	s := err.Error()
	s = strings.ReplaceAll(s, "error unmarshaling JSON: while decoding JSON: ", "")
	s = strings.ReplaceAll(s, "\n", " ")
	return strings.Join(strings.Fields(s), " ")
}

func qualified(ns, name string) string {
	if ns == "" {
		return name
	}
	return ns + "/" + name
}

func knownKinds() string {
	return "the kinds of core v1, apps/v1, batch/v1, policy/v1, rbac/v1, networking/v1, " +
		"autoscaling/v2, scheduling/v1, storage/v1, coordination/v1, discovery/v1, " +
		"admissionregistration/v1, monitoring.coreos.com/v1 and kind.x-k8s.io/v1alpha4 Cluster"
}
