// The agent's settings: which environment variables and properties keys it
// reads, taken from the settings table in agent/config/config.c, so that a
// manifest cannot set a name the agent ignores (env) or refuses (properties).
package main

import (
	"bufio"
	"fmt"
	"os"
	"regexp"
	"strconv"
	"strings"
)

type settings struct {
	env   map[string]bool
	props map[string]bool
}

var (
	envName  = regexp.MustCompile(`"((?:MEMQUORUM|NACOS|KAFKA)_[A-Z0-9_]+)"`)
	propName = regexp.MustCompile(`"((?:memquorum|nacos|kafka)\.[a-z0-9.-]+)"`)
	// Names a manifest may set that belong to the agent's settings space.
	agentEnv = regexp.MustCompile(`^(MEMQUORUM|NACOS|KAFKA)_`)
)

func loadSettings(path string) (*settings, error) {
	src, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	s := &settings{env: map[string]bool{}, props: map[string]bool{}}
	for _, m := range envName.FindAllStringSubmatch(string(src), -1) {
		s.env[m[1]] = true
	}
	for _, m := range propName.FindAllStringSubmatch(string(src), -1) {
		s.props[m[1]] = true
	}
	if len(s.env) < 10 || len(s.props) < 10 {
		return nil, fmt.Errorf("%s: found only %d env names and %d properties keys: not the settings table?",
			path, len(s.env), len(s.props))
	}
	return s, nil
}

// parseProperties reads a Java properties file the way the agent does for
// our purposes: key=value or key: value lines, # and ! comments.
func parseProperties(text string) (map[string]string, []string) {
	out := map[string]string{}
	var errs []string
	sc := bufio.NewScanner(strings.NewReader(text))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' || line[0] == '!' {
			continue
		}
		i := strings.IndexAny(line, "=:")
		if i <= 0 {
			errs = append(errs, fmt.Sprintf("line %d is not key=value: %q", n, line))
			continue
		}
		k, v := strings.TrimSpace(line[:i]), strings.TrimSpace(line[i+1:])
		if v == "" {
			errs = append(errs, fmt.Sprintf("line %d: %s has no value", n, k))
		}
		out[k] = v
	}
	return out, errs
}

// parseSize reads a size in the agent's syntax (agent/config/values.c
// mq_config_parse_size): a count with an optional b, k, kb, ki, kib, m, ...
// suffix, case-insensitive, all binary.
func parseSize(s string) (uint64, error) {
	t := strings.TrimSpace(s)
	i := 0
	for i < len(t) && t[i] >= '0' && t[i] <= '9' {
		i++
	}
	if i == 0 {
		return 0, fmt.Errorf("%q is not a size", s)
	}
	v, err := strconv.ParseUint(t[:i], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%q: %v", s, err)
	}
	unit := strings.ToLower(strings.TrimPrefix(t[i:], " "))
	shift := map[string]uint{"": 0, "b": 0, "k": 10, "kb": 10, "ki": 10, "kib": 10, "m": 20, "mb": 20,
		"mi": 20, "mib": 20, "g": 30, "gb": 30, "gi": 30, "gib": 30, "t": 40, "tb": 40, "ti": 40, "tib": 40}
	sh, ok := shift[unit]
	if !ok {
		return 0, fmt.Errorf("%q has an unknown unit", s)
	}
	return v << sh, nil
}
