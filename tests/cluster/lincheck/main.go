// lincheck reads a history of KV puts and gets as JSON on stdin and checks
// it for linearizability with porcupine, partitioned by key.
//
// Input, one object:
//
//	{"ops": [{"client": 0, "key": "k", "op": "put" or "get", "value": "v",
//	          "found": true, "call": 12, "return": 34}, ...]}
//
// A put whose outcome is unknown (timeout, UNAVAILABLE after sending) has
// "return": -1 and is treated as pending forever: it may or may not have
// taken effect at any point after its call. Gets that failed are left out
// by the caller: they returned nothing to check.
//
// Exit status: 0 linearizable, 1 not linearizable (a visualization is
// written to -viz when given), 2 the check timed out, 3 bad input.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"math"
	"os"
	"sort"
	"time"

	"github.com/anishathalye/porcupine"
)

type record struct {
	Client int    `json:"client"`
	Key    string `json:"key"`
	Op     string `json:"op"`
	Value  string `json:"value"`
	Found  bool   `json:"found"`
	Call   int64  `json:"call"`
	Return int64  `json:"return"`
}

type input struct {
	put   bool
	key   string
	value string
}

type output struct {
	found bool
	value string
}

// state is the value of one key: partitions hold a single key each.
type state struct {
	present bool
	value   string
}

var kvModel = porcupine.Model{
	Partition: func(history []porcupine.Operation) [][]porcupine.Operation {
		byKey := map[string][]porcupine.Operation{}
		for _, op := range history {
			k := op.Input.(input).key
			byKey[k] = append(byKey[k], op)
		}
		keys := make([]string, 0, len(byKey))
		for k := range byKey {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		out := make([][]porcupine.Operation, 0, len(keys))
		for _, k := range keys {
			out = append(out, byKey[k])
		}
		return out
	},
	Init: func() interface{} { return state{} },
	Step: func(s, in, out interface{}) (bool, interface{}) {
		st := s.(state)
		i := in.(input)
		if i.put {
			return true, state{present: true, value: i.value}
		}
		o := out.(output)
		if !o.found {
			return !st.present, st
		}
		return st.present && st.value == o.value, st
	},
	DescribeOperation: func(in, out interface{}) string {
		i := in.(input)
		if i.put {
			return fmt.Sprintf("put(%q, %q)", i.key, i.value)
		}
		o := out.(output)
		if !o.found {
			return fmt.Sprintf("get(%q) -> not found", i.key)
		}
		return fmt.Sprintf("get(%q) -> %q", i.key, o.value)
	},
	DescribeState: func(s interface{}) string {
		st := s.(state)
		if !st.present {
			return "absent"
		}
		return fmt.Sprintf("%q", st.value)
	},
}

func main() {
	viz := flag.String("viz", "", "write an HTML visualization here when the check fails")
	timeout := flag.Duration("timeout", 120*time.Second, "give up (exit 2) after this long")
	flag.Parse()

	var in struct {
		Ops []record `json:"ops"`
	}
	if err := json.NewDecoder(os.Stdin).Decode(&in); err != nil {
		fmt.Fprintf(os.Stderr, "lincheck: bad history: %v\n", err)
		os.Exit(3)
	}
	ops := make([]porcupine.Operation, 0, len(in.Ops))
	pending := 0
	for n, r := range in.Ops {
		if r.Op != "put" && r.Op != "get" {
			fmt.Fprintf(os.Stderr, "lincheck: op %d: unknown kind %q\n", n, r.Op)
			os.Exit(3)
		}
		ret := r.Return
		if ret < 0 {
			ret = math.MaxInt64
			pending++
		} else if ret < r.Call {
			fmt.Fprintf(os.Stderr, "lincheck: op %d returns before its call\n", n)
			os.Exit(3)
		}
		ops = append(ops, porcupine.Operation{
			ClientId: r.Client,
			Input:    input{put: r.Op == "put", key: r.Key, value: r.Value},
			Call:     r.Call,
			Output:   output{found: r.Found, value: r.Value},
			Return:   ret,
		})
	}

	start := time.Now()
	res, info := porcupine.CheckOperationsVerbose(kvModel, ops, *timeout)
	fmt.Printf("lincheck: %s: %d operations (%d with unknown outcome) in %.1fs\n",
		res, len(ops), pending, time.Since(start).Seconds())
	switch res {
	case porcupine.Ok:
		os.Exit(0)
	case porcupine.Illegal:
		if *viz != "" {
			if err := porcupine.VisualizePath(kvModel, info, *viz); err != nil {
				fmt.Fprintf(os.Stderr, "lincheck: visualization: %v\n", err)
			} else {
				fmt.Printf("lincheck: visualization in %s\n", *viz)
			}
		}
		os.Exit(1)
	default:
		os.Exit(2)
	}
}
