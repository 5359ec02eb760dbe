// Package deptest enforces Kogge's dependency rules (DESIGN.md, "Layout"):
// arrows point down only, and the wire contract stays small.
//
// The rules, for the non-test import graph of the module:
//
//   - protocol imports nothing of ours but its own subpackages;
//   - protocol depends on no third-party module but fxamacker/cbor and
//     google/uuid (and what they need); protocol/seal may also use
//     filippo.io/age (and what it needs);
//   - fleet-server never depends on agent: they meet only in protocol;
//   - drivers know nothing of MQTT: no MQTT client or broker module;
//   - nothing imports cmd: the commands are mains. A command may use
//     packages inside its own directory (cmd/koggectl/...), no other.
//
// [Check] is a pure function over an import graph so that the rules can be
// tested on synthetic graphs; [Load] reads the real graph with `go list`.
// Test files are not part of the graph: an end-to-end test may combine parts
// that production code must keep apart.
package deptest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"slices"
	"strings"
)

// Package is one node of the import graph, as `go list -json` describes it.
type Package struct {
	ImportPath string
	Standard   bool     // part of the standard library
	Imports    []string // direct imports
	Deps       []string // all transitive dependencies, direct imports included
	Module     *Module  // nil for the standard library
}

// Module is the module a package belongs to.
type Module struct {
	Path string
	Main bool
}

// Rule names, as they appear in a [Violation].
const (
	RuleProtocolOurs       = "protocol imports only its own subpackages of this module"
	RuleProtocolThirdParty = "protocol depends only on the standard library, cbor and uuid (protocol/seal also on age)"
	RuleServerAgent        = "fleet-server never depends on agent"
	RuleDriversMQTT        = "drivers never depend on an MQTT client or broker"
	RuleNoCmdImports       = "nothing imports cmd"
	RuleUIOnlyFyne         = "only kiosk/ui and mobile-agent/ui (and the commands) depend on fyne"
)

// Third-party modules that protocol may depend on, with their own
// dependencies; protocol/seal may additionally depend on sealModules.
var (
	protocolModules = []string{"github.com/fxamacker/cbor/v2", "github.com/google/uuid"}
	sealModules     = []string{"filippo.io/age"}
	fyneModules     = []string{"fyne.io/fyne/v2"}
	uiPackages      = []string{"kiosk/ui", "mobile-agent/ui", "cmd"}
	mqttModules     = []string{
		"github.com/eclipse/paho.mqtt.golang",
		"github.com/eclipse/paho.golang",
		"github.com/mochi-mqtt/server/v2",
	}
)

// Violation is one broken rule.
type Violation struct {
	Rule    string
	Package string   // the package of ours that breaks the rule
	Dep     string   // the forbidden import or dependency
	Chain   []string // import chain from Package to Dep, when known
}

func (v Violation) String() string {
	via := ""
	if len(v.Chain) > 2 {
		via = " (via " + strings.Join(v.Chain[1:len(v.Chain)-1], " → ") + ")"
	}
	return fmt.Sprintf("%s depends on %s%s: %s", v.Package, v.Dep, via, v.Rule)
}

// Check returns every violation of the dependency rules in the import graph
// pkgs of the module with path module. pkgs should hold every package of the
// graph, dependencies included (`go list -deps`), so that third-party
// dependencies and import chains can be resolved. The result is sorted.
func Check(module string, pkgs []Package) []Violation {
	g := newGraph(pkgs)
	var out []Violation
	add := func(rule string, p Package, dep string) {
		out = append(out, Violation{Rule: rule, Package: p.ImportPath, Dep: dep, Chain: g.chain(p.ImportPath, dep)})
	}

	under := func(path, dir string) bool { return within(path, module+"/"+dir) }
	protocolAllowed := g.closure(protocolModules)
	sealAllowed := g.closure(append(slices.Clone(protocolModules), sealModules...))

	for _, p := range pkgs {
		if !within(p.ImportPath, module) {
			continue // only our packages are held to the rules
		}

		for _, imp := range p.Imports {
			if under(imp, "cmd") && !sameCommand(module, p.ImportPath, imp) {
				add(RuleNoCmdImports, p, imp)
			}
		}

		if !slices.ContainsFunc(uiPackages, func(dir string) bool { return under(p.ImportPath, dir) }) {
			for _, dep := range g.entries(p, func(dep string) bool { return inAny(dep, fyneModules) }) {
				add(RuleUIOnlyFyne, p, dep)
			}
		}

		switch {
		case under(p.ImportPath, "protocol"):
			for _, imp := range p.Imports {
				if within(imp, module) && !under(imp, "protocol") {
					add(RuleProtocolOurs, p, imp)
				}
			}
			allowed := protocolAllowed
			if under(p.ImportPath, "protocol/seal") {
				allowed = sealAllowed
			}
			foreign := func(dep string) bool {
				return !g.standard(dep) && !within(dep, module) && !allowed[dep]
			}
			for _, dep := range g.entries(p, foreign) {
				add(RuleProtocolThirdParty, p, dep)
			}

		case under(p.ImportPath, "fleet-server"):
			for _, dep := range g.entries(p, func(dep string) bool { return under(dep, "agent") }) {
				add(RuleServerAgent, p, dep)
			}

		case under(p.ImportPath, "drivers"):
			for _, dep := range g.entries(p, func(dep string) bool { return inAny(dep, mqttModules) }) {
				add(RuleDriversMQTT, p, dep)
			}
		}
	}

	slices.SortFunc(out, func(a, b Violation) int {
		return strings.Compare(a.Package+"\x00"+a.Dep+"\x00"+a.Rule, b.Package+"\x00"+b.Dep+"\x00"+b.Rule)
	})
	return out
}

// Load lists the packages of the module in dir and all their dependencies
// (`go list -deps -json ./...`) and returns the module's path and the graph.
// goCmd is the go command to run, usually "go".
func Load(goCmd, dir string) (module string, pkgs []Package, err error) {
	cmd := exec.Command(goCmd, "list", "-deps", "-json=ImportPath,Standard,Imports,Deps,Module", "./...")
	cmd.Dir = dir
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", nil, fmt.Errorf("go list in %s: %w\n%s", dir, err, stderr.Bytes())
	}
	dec := json.NewDecoder(bytes.NewReader(out))
	for {
		var p Package
		if err := dec.Decode(&p); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			return "", nil, fmt.Errorf("decode go list output: %w", err)
		}
		if p.Module != nil && p.Module.Main {
			module = p.Module.Path
		}
		pkgs = append(pkgs, p)
	}
	if module == "" {
		return "", nil, fmt.Errorf("go list in %s: no package of the main module", dir)
	}
	return module, pkgs, nil
}

// within reports whether the import path lies in the module or package
// tree root (root itself or below it).
func within(path, root string) bool {
	return path == root || strings.HasPrefix(path, root+"/")
}

func inAny(path string, roots []string) bool {
	return slices.ContainsFunc(roots, func(root string) bool { return within(path, root) })
}

// sameCommand reports whether from and to lie in the same cmd/<name> tree.
func sameCommand(module, from, to string) bool {
	prefix := module + "/cmd/"
	name := func(p string) string {
		rest, ok := strings.CutPrefix(p, prefix)
		if !ok {
			return ""
		}
		n, _, _ := strings.Cut(rest, "/")
		return n
	}
	n := name(from)
	return n != "" && n == name(to)
}

type graph map[string]Package

func newGraph(pkgs []Package) graph {
	g := make(graph, len(pkgs))
	for _, p := range pkgs {
		g[p.ImportPath] = p
	}
	return g
}

// standard reports whether path is in the standard library: as go list says
// when the package is in the graph, else by Go's rule that standard import
// paths have no dot in their first element.
func (g graph) standard(path string) bool {
	if p, ok := g[path]; ok {
		return p.Standard
	}
	first, _, _ := strings.Cut(path, "/")
	return !strings.Contains(first, ".")
}

// closure returns the packages of the given modules that are in the graph,
// with all their dependencies.
func (g graph) closure(modules []string) map[string]bool {
	set := make(map[string]bool)
	for path, p := range g {
		if !inAny(path, modules) {
			continue
		}
		set[path] = true
		for _, d := range p.Deps {
			set[d] = true
		}
	}
	return set
}

// entries returns the dependencies of p that are forbidden and imported by p
// itself or by a dependency of p that is not forbidden: the points where the
// graph first crosses into forbidden territory. Reporting these, and not
// everything behind them, keeps a violation to one line per cause.
func (g graph) entries(p Package, forbidden func(string) bool) []string {
	var out []string
	seen := make(map[string]bool)
	for _, q := range append([]string{p.ImportPath}, p.Deps...) {
		if q != p.ImportPath && forbidden(q) {
			continue
		}
		imports := g[q].Imports
		if q == p.ImportPath {
			imports = p.Imports
		}
		for _, imp := range imports {
			if forbidden(imp) && !seen[imp] {
				seen[imp] = true
				out = append(out, imp)
			}
		}
	}
	return out
}

// chain returns a shortest import chain from one package to another, or
// just [from, to] when the graph does not connect them.
func (g graph) chain(from, to string) []string {
	prev := map[string]string{from: ""}
	queue := []string{from}
	for len(queue) > 0 {
		cur := queue[0]
		queue = queue[1:]
		if cur == to {
			var rev []string
			for p := to; p != ""; p = prev[p] {
				rev = append(rev, p)
			}
			slices.Reverse(rev)
			return rev
		}
		for _, imp := range g[cur].Imports {
			if _, seen := prev[imp]; !seen {
				prev[imp] = cur
				queue = append(queue, imp)
			}
		}
	}
	return []string{from, to}
}
