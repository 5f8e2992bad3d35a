package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The settings of the agent in this repository, and the env names the
// deployment sets before the agent reads them (as k8s/validate.sh passes).
func testOptions(t *testing.T) options {
	t.Helper()
	s, err := loadSettings("../../agent/config/config.c")
	if err != nil {
		t.Fatalf("agent settings: %v", err)
	}
	return options{namespace: "memquorum", settings: s, pending: map[string]bool{}}
}

func checkFiles(t *testing.T, opt options, files ...string) []string {
	t.Helper()
	var docs []doc
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		docs = append(docs, splitDocs(f, data)...)
	}
	_, errs, _ := run(docs, opt)
	return errs
}

func TestGoodFixturesPass(t *testing.T) {
	files, _ := filepath.Glob("testdata/good/*.yaml")
	if len(files) == 0 {
		t.Fatal("no testdata/good/*.yaml")
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			for _, e := range checkFiles(t, testOptions(t), f) {
				t.Errorf("unexpected: %s", e)
			}
		})
	}
}

// Every bad fixture must be rejected with each message its "# want:" lines name.
func TestBadFixturesFail(t *testing.T) {
	files, _ := filepath.Glob("testdata/bad/*.yaml")
	if len(files) < 30 {
		t.Fatalf("only %d testdata/bad/*.yaml (run testdata/make-bad.py)", len(files))
	}
	for _, f := range files {
		t.Run(strings.TrimSuffix(filepath.Base(f), ".yaml"), func(t *testing.T) {
			data, _ := os.ReadFile(f)
			var wants []string
			for _, l := range strings.Split(string(data), "\n") {
				if w, ok := strings.CutPrefix(l, "# want: "); ok {
					wants = append(wants, w)
				}
			}
			if len(wants) == 0 {
				t.Fatal("no # want: line")
			}
			errs := checkFiles(t, testOptions(t), f)
			if len(errs) == 0 {
				t.Fatal("accepted, want rejected")
			}
			all := strings.Join(errs, "\n")
			for _, w := range wants {
				if !strings.Contains(all, w) {
					t.Errorf("no error contains %q; got:\n%s", w, all)
				}
			}
		})
	}
}

// The manifests of this repository pass: k8s/ as one set, and the kind
// cluster config and Job of e2e/kind/.
func TestRepositoryManifests(t *testing.T) {
	k8s, _ := filepath.Glob("../*.yaml")
	if len(k8s) < 4 {
		t.Fatalf("k8s/ has %d YAML files, want namespace, configmap, statefulset, monitoring", len(k8s))
	}
	for _, e := range checkFiles(t, testOptions(t), k8s...) {
		t.Errorf("k8s/: %s", e)
	}
	for _, f := range []string{"../../e2e/kind/kind.yaml", "../../e2e/kind/job.yaml"} {
		for _, e := range checkFiles(t, testOptions(t), f) {
			t.Errorf("%s", e)
		}
	}
}

func TestSplitDocsLines(t *testing.T) {
	docs := splitDocs("x", []byte("# only a comment\n---\na: 1\n--- # next\n\nb: 2\n---\n"))
	if len(docs) != 2 || docs[0].line != 3 || docs[1].line != 5 {
		t.Fatalf("got %+v", docs)
	}
}

func TestParseSize(t *testing.T) {
	for in, want := range map[string]uint64{"320MiB": 320 << 20, "1g": 1 << 30, "512 Mi": 512 << 20, "100": 100} {
		if got, err := parseSize(in); err != nil || got != want {
			t.Errorf("parseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	if _, err := parseSize("5 apples"); err == nil {
		t.Error("parseSize(\"5 apples\") accepted")
	}
}
