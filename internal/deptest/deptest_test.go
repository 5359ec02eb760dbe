package deptest

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
)

const mod = "github.com/kogge-fleet/kogge"

// synth builds an import graph from direct imports, computing Deps the way
// go list does. Every package named only as an import is added as a leaf.
func synth(imports map[string][]string) []Package {
	all := map[string][]string{}
	for p, imps := range imports {
		all[p] = imps
		for _, i := range imps {
			if _, ok := all[i]; !ok {
				all[i] = nil
			}
		}
	}
	var deps func(p string, seen map[string]bool)
	deps = func(p string, seen map[string]bool) {
		for _, i := range all[p] {
			if !seen[i] {
				seen[i] = true
				deps(i, seen)
			}
		}
	}
	var pkgs []Package
	for p, imps := range all {
		seen := map[string]bool{}
		deps(p, seen)
		var d []string
		for k := range seen {
			d = append(d, k)
		}
		sort.Strings(d)
		first, _, _ := strings.Cut(p, "/")
		pkg := Package{ImportPath: p, Imports: imps, Deps: d, Standard: !strings.Contains(first, ".")}
		if within(p, mod) {
			pkg.Module = &Module{Path: mod, Main: true}
		}
		pkgs = append(pkgs, pkg)
	}
	sort.Slice(pkgs, func(i, j int) bool { return pkgs[i].ImportPath < pkgs[j].ImportPath })
	return pkgs
}

// clean is a graph of the intended shape: every rule is exercised and none
// is broken.
func clean() map[string][]string {
	return map[string][]string{
		mod + "/protocol":              {"bytes", "fmt", "github.com/fxamacker/cbor/v2", "github.com/google/uuid"},
		mod + "/protocol/chunk":        {mod + "/protocol", "crypto/sha256"},
		mod + "/protocol/seal":         {mod + "/protocol", "filippo.io/age"},
		"github.com/fxamacker/cbor/v2": {"github.com/x448/float16", "reflect"},
		"filippo.io/age":               {"golang.org/x/crypto/chacha20poly1305", "filippo.io/edwards25519"},
		mod + "/agent/store":           {mod + "/protocol", "github.com/mattn/go-sqlite3"},
		mod + "/agent/sync":            {mod + "/agent/store", mod + "/protocol/seal", "github.com/eclipse/paho.mqtt.golang"},
		mod + "/drivers/gnss":          {"go.bug.st/serial", mod + "/protocol"},
		mod + "/fleet-server/broker":   {"github.com/mochi-mqtt/server/v2", mod + "/protocol"},
		mod + "/fleet-server":          {mod + "/fleet-server/broker", "github.com/jackc/pgx/v5"},
		mod + "/kiosk":                 {mod + "/agent/sync", mod + "/drivers/gnss"},
		mod + "/cmd/koggectl":          {mod + "/protocol", mod + "/cmd/koggectl/render"},
		mod + "/cmd/koggectl/render":   {"encoding/json"},
		mod + "/cmd/kogge-server":      {mod + "/fleet-server"},
		mod + "/cmd/kogge-kiosk":       {mod + "/kiosk"},
		mod + "/internal/deptest":      {"os/exec"},
	}
}

func TestCheck(t *testing.T) {
	tests := []struct {
		name string
		edit func(g map[string][]string)
		want []string // "package|dep|rule", sorted
	}{
		{name: "clean", edit: func(map[string][]string) {}},
		{
			name: "protocol imports a third-party module",
			edit: func(g map[string][]string) {
				g[mod+"/protocol/chunk"] = append(g[mod+"/protocol/chunk"], "github.com/pkg/errors")
			},
			want: []string{"protocol/chunk|github.com/pkg/errors|" + RuleProtocolThirdParty},
		},
		{
			name: "module path prefix is not the module",
			edit: func(g map[string][]string) {
				g[mod+"/protocol"] = append(g[mod+"/protocol"], "github.com/google/uuidx")
			},
			want: []string{
				"protocol/chunk|github.com/google/uuidx|" + RuleProtocolThirdParty,
				"protocol/seal|github.com/google/uuidx|" + RuleProtocolThirdParty,
				"protocol|github.com/google/uuidx|" + RuleProtocolThirdParty,
			},
		},
		{
			name: "protocol reaches age through seal",
			edit: func(g map[string][]string) {
				g[mod+"/protocol/chunk"] = append(g[mod+"/protocol/chunk"], mod+"/protocol/seal")
			},
			// Only the entry into forbidden territory is reported, not
			// age's own dependencies behind it.
			want: []string{"protocol/chunk|filippo.io/age|" + RuleProtocolThirdParty},
		},
		{
			name: "protocol imports agent",
			edit: func(g map[string][]string) {
				g[mod+"/protocol"] = append(g[mod+"/protocol"], mod+"/internal/deptest")
				g[mod+"/protocol/seal"] = append(g[mod+"/protocol/seal"], mod+"/agent/store")
			},
			want: []string{
				// agent/store also brings go-sqlite3 into protocol/seal.
				"protocol/seal|" + mod + "/agent/store|" + RuleProtocolOurs,
				"protocol/seal|github.com/mattn/go-sqlite3|" + RuleProtocolThirdParty,
				"protocol|" + mod + "/internal/deptest|" + RuleProtocolOurs,
			},
		},
		{
			name: "fleet-server reaches agent transitively",
			edit: func(g map[string][]string) {
				g[mod+"/fleet-server/ingest"] = []string{mod + "/internal/outboxutil"}
				g[mod+"/internal/outboxutil"] = []string{mod + "/agent/store"}
			},
			want: []string{"fleet-server/ingest|" + mod + "/agent/store|" + RuleServerAgent},
		},
		{
			name: "fleet-server imports agent root",
			edit: func(g map[string][]string) {
				g[mod+"/fleet-server"] = append(g[mod+"/fleet-server"], mod+"/agent")
			},
			want: []string{"fleet-server|" + mod + "/agent|" + RuleServerAgent},
		},
		{
			name: "drivers reach MQTT clients and the broker",
			edit: func(g map[string][]string) {
				g[mod+"/drivers/gnss"] = append(g[mod+"/drivers/gnss"], mod+"/internal/mqttlog")
				g[mod+"/internal/mqttlog"] = []string{"github.com/eclipse/paho.mqtt.golang"}
				g[mod+"/drivers/camera"] = []string{"github.com/eclipse/paho.golang/paho"}
				g[mod+"/drivers/printer"] = []string{"github.com/mochi-mqtt/server/v2/hooks/auth"}
			},
			want: []string{
				"drivers/camera|github.com/eclipse/paho.golang/paho|" + RuleDriversMQTT,
				"drivers/gnss|github.com/eclipse/paho.mqtt.golang|" + RuleDriversMQTT,
				"drivers/printer|github.com/mochi-mqtt/server/v2/hooks/auth|" + RuleDriversMQTT,
			},
		},
		{
			name: "fyne outside the UI packages",
			edit: func(g map[string][]string) {
				g[mod+"/kiosk/ui"] = []string{mod + "/kiosk", "fyne.io/fyne/v2/widget"}
				g[mod+"/cmd/kogge-kiosk"] = append(g[mod+"/cmd/kogge-kiosk"], mod+"/kiosk/ui", "fyne.io/fyne/v2/app")
				g["fyne.io/fyne/v2/widget"] = []string{"fyne.io/fyne/v2"}
				g["fyne.io/fyne/v2/app"] = []string{"fyne.io/fyne/v2"}
				g["fyne.io/fyne/v2"] = []string{"image"}
				g[mod+"/kiosk/flow"] = []string{"fyne.io/fyne/v2"}
			},
			want: []string{"kiosk/flow|fyne.io/fyne/v2|" + RuleUIOnlyFyne},
		},
		{
			name: "packages import cmd",
			edit: func(g map[string][]string) {
				g[mod+"/fleet-server"] = append(g[mod+"/fleet-server"], mod+"/cmd/kogge-server")
				g[mod+"/cmd/kogge-sim"] = []string{mod + "/cmd/koggectl/render"}
			},
			want: []string{
				"cmd/kogge-sim|" + mod + "/cmd/koggectl/render|" + RuleNoCmdImports,
				"fleet-server|" + mod + "/cmd/kogge-server|" + RuleNoCmdImports,
			},
		},
		{
			name: "third-party packages are not held to our rules",
			edit: func(g map[string][]string) {
				g["example.com/drivers"] = []string{"github.com/eclipse/paho.mqtt.golang"}
				g["github.com/fxamacker/cbor/v2"] = append(g["github.com/fxamacker/cbor/v2"], "golang.org/x/text")
			},
			// golang.org/x/text is now a dependency of cbor: allowed in protocol.
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := clean()
			tt.edit(g)
			var got []string
			for _, v := range Check(mod, synth(g)) {
				got = append(got, strings.TrimPrefix(v.Package, mod+"/")+"|"+v.Dep+"|"+v.Rule)
			}
			sort.Strings(got)
			if !slices.Equal(got, tt.want) {
				t.Errorf("violations:\n got  %q\n want %q", got, tt.want)
			}
		})
	}
}

func TestViolationChain(t *testing.T) {
	g := clean()
	g[mod+"/fleet-server/ingest"] = []string{mod + "/internal/outboxutil"}
	g[mod+"/internal/outboxutil"] = []string{mod + "/agent/store"}
	vs := Check(mod, synth(g))
	if len(vs) != 1 {
		t.Fatalf("got %d violations, want 1: %v", len(vs), vs)
	}
	want := []string{mod + "/fleet-server/ingest", mod + "/internal/outboxutil", mod + "/agent/store"}
	if !slices.Equal(vs[0].Chain, want) {
		t.Errorf("chain = %q, want %q", vs[0].Chain, want)
	}
	if s := vs[0].String(); !strings.Contains(s, "via "+mod+"/internal/outboxutil") {
		t.Errorf("String() = %q, does not name the intermediate package", s)
	}
}

// TestRepo checks the real import graph of this module.
func TestRepo(t *testing.T) {
	goCmd, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("go command not found: %v", err)
	}
	root := moduleRoot(t, goCmd)
	module, pkgs, err := Load(goCmd, root)
	if err != nil {
		t.Fatal(err)
	}
	if module != mod {
		t.Fatalf("module path = %q, want %q", module, mod)
	}

	// Guard against a graph that silently misses the packages the rules are
	// about: every ruled directory with Go files must show up in it.
	paths := map[string]bool{}
	for _, p := range pkgs {
		paths[p.ImportPath] = true
	}
	if !paths[mod+"/internal/deptest"] {
		t.Fatalf("go list did not report %s/internal/deptest itself; graph has %d packages", mod, len(pkgs))
	}
	for _, dir := range []string{"protocol", "agent", "fleet-server", "drivers", "cmd"} {
		if !hasGoFiles(t, filepath.Join(root, dir)) {
			continue
		}
		found := false
		for p := range paths {
			if within(p, mod+"/"+dir) {
				found = true
				break
			}
		}
		if !found {
			t.Errorf("%s/ has Go files but go list reported no package under %s/%s", dir, mod, dir)
		}
	}

	for _, v := range Check(module, pkgs) {
		t.Errorf("forbidden dependency: %v", v)
	}
}

func moduleRoot(t *testing.T, goCmd string) string {
	t.Helper()
	out, err := exec.Command(goCmd, "env", "GOMOD").Output()
	if err != nil {
		t.Fatalf("go env GOMOD: %v", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		t.Fatal("not inside a module: go env GOMOD is empty")
	}
	return filepath.Dir(gomod)
}

// hasGoFiles reports whether dir holds a non-test .go file anywhere below it
// (testdata and hidden directories excluded).
func hasGoFiles(t *testing.T, dir string) bool {
	t.Helper()
	found := false
	err := filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		name := d.Name()
		if d.IsDir() {
			if path != dir && (name == "testdata" || strings.HasPrefix(name, ".") || strings.HasPrefix(name, "_")) {
				return filepath.SkipDir
			}
			return nil
		}
		if strings.HasSuffix(name, ".go") && !strings.HasSuffix(name, "_test.go") {
			found = true
			return filepath.SkipAll
		}
		return nil
	})
	if os.IsNotExist(err) {
		return false
	}
	if err != nil {
		t.Fatalf("walk %s: %v", dir, err)
	}
	return found
}
