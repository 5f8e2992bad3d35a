// Command mqcheck checks Kubernetes manifests the way an API server would
// decode them, plus what MemQuorum's deployment needs.
//
//	mqcheck [flags] FILE... | -
//
// Every YAML document of the inputs is decoded strictly into the Go type of
// its apiVersion/kind: k8s.io/api (v0.37.2) for built-in kinds, the
// prometheus-operator's monitoring.coreos.com/v1 types for ServiceMonitor
// and friends, sigs.k8s.io/kind's v1alpha4 types for a kind cluster config.
// Unknown fields, duplicate keys and values of the wrong type fail with the
// field's path. Then all documents of all inputs are checked together as
// one set (semantic.go). Exit status: 0 clean, 1 problems found, 2 usage.
package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
)

func main() {
	var (
		ns       = flag.String("namespace", "", "every namespaced object must be in this namespace")
		agentCfg = flag.String("agent-config", "", "agent/config/config.c: env names and properties keys must be rows of its settings table")
		pending  = flag.String("pending-env", "", "comma-separated env names the agent does not read yet: warned about, not refused")
		quiet    = flag.Bool("q", false, "print problems only")
	)
	flag.Usage = func() {
		fmt.Fprintf(os.Stderr, "usage: mqcheck [flags] FILE... (- or nothing: stdin)\n")
		flag.PrintDefaults()
	}
	flag.Parse()

	opt := options{namespace: *ns, pending: map[string]bool{}}
	for _, n := range strings.Split(*pending, ",") {
		if n = strings.TrimSpace(n); n != "" {
			opt.pending[n] = true
		}
	}
	if *agentCfg != "" {
		s, err := loadSettings(*agentCfg)
		if err != nil {
			fmt.Fprintf(os.Stderr, "mqcheck: %v\n", err)
			os.Exit(2)
		}
		opt.settings = s
	}

	inputs := flag.Args()
	if len(inputs) == 0 {
		inputs = []string{"-"}
	}
	var docs []doc
	for _, in := range inputs {
		var data []byte
		var err error
		if in == "-" {
			data, err = io.ReadAll(os.Stdin)
		} else {
			data, err = os.ReadFile(in)
		}
		if err != nil {
			fmt.Fprintf(os.Stderr, "mqcheck: %v\n", err)
			os.Exit(2)
		}
		docs = append(docs, splitDocs(in, data)...)
	}

	objs, errs, warns := run(docs, opt)
	for _, w := range warns {
		fmt.Fprintf(os.Stderr, "mqcheck: warning: %s\n", w)
	}
	for _, e := range errs {
		fmt.Fprintf(os.Stderr, "mqcheck: error: %s\n", e)
	}
	if len(errs) > 0 {
		fmt.Fprintf(os.Stderr, "mqcheck: %d problem(s) in %s\n", len(errs), strings.Join(inputs, " "))
		os.Exit(1)
	}
	if !*quiet {
		fmt.Printf("mqcheck: ok: %d objects (%s) in %s\n", len(objs), summary(objs), strings.Join(inputs, " "))
	}
}

// run decodes every document and checks the set; it is main without I/O.
func run(docs []doc, opt options) (objs []*object, errs, warns []string) {
	for _, d := range docs {
		o, err := decode(d)
		if err != nil {
			errs = append(errs, err.Error())
			continue
		}
		objs = append(objs, o)
	}
	if len(docs) == 0 {
		errs = append(errs, "no YAML documents in the input")
	}
	r := checkSet(objs, opt)
	return objs, append(errs, r.errors...), r.warnings
}

func summary(objs []*object) string {
	count := map[string]int{}
	for _, o := range objs {
		count[o.gvk.Kind]++
	}
	var kinds []string
	for k, n := range count {
		kinds = append(kinds, fmt.Sprintf("%d %s", n, k))
	}
	sort.Strings(kinds)
	return strings.Join(kinds, ", ")
}
