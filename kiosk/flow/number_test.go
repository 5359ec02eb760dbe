package flow_test

import (
	"context"
	"errors"
	"go/ast"
	"go/parser"
	"go/token"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kogge-fleet/kogge/kiosk/flow"
	"github.com/kogge-fleet/kogge/kiosk/flow/flowtest"
)

func TestSequence(t *testing.T) {
	ctx := context.Background()
	kv := &flowtest.KV{}
	berlin, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		t.Skip("no time zone data:", err)
	}
	seq, err := flow.NewSequence("KMI1", kv, berlin)
	if err != nil {
		t.Fatal(err)
	}
	day := time.Date(2026, 11, 24, 8, 0, 0, 0, berlin)
	var got []string
	for i := range 3 {
		n, err := seq.Next(ctx, day.Add(time.Duration(i)*time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, n)
	}
	want := []string{"KMI1-261124-0001", "KMI1-261124-0002", "KMI1-261124-0003"}
	for i, n := range got {
		if !strings.HasPrefix(n, want[i]+"-") || len(n) != len(want[i])+2 {
			t.Errorf("number %d: %s, want %s-C", i+1, n, want[i])
		}
	}
	// A restart continues the day's sequence from the store.
	seq2, _ := flow.NewSequence("KMI1", kv, berlin)
	n, err := seq2.Next(ctx, day.Add(5*time.Hour))
	if err != nil || !strings.HasPrefix(n, "KMI1-261124-0004-") {
		t.Errorf("after a restart: %s, %v; want the fourth", n, err)
	}
	// Local midnight starts a new day: 23:30 UTC is 00:30 in Berlin.
	n, err = seq2.Next(ctx, time.Date(2026, 11, 24, 23, 30, 0, 0, time.UTC))
	if err != nil || !strings.HasPrefix(n, "KMI1-261125-0001-") {
		t.Errorf("next day: %s, %v", n, err)
	}
	for _, n := range append(got, n) {
		if _, err := flow.ParseNumber(n); err != nil {
			t.Errorf("ParseNumber(%s): %v", n, err)
		}
	}
}

func TestSequenceFailures(t *testing.T) {
	ctx := context.Background()
	if _, err := flow.NewSequence("k-1", &flowtest.KV{}, nil); err == nil {
		t.Error("a prefix with a hyphen was accepted")
	}
	broken := &flowtest.KV{Err: errors.New("disk gone")}
	seq, _ := flow.NewSequence("KMI1", broken, nil)
	if _, err := seq.Next(ctx, time.Now()); err == nil {
		t.Error("a number without a store that keeps the sequence")
	}
	damaged := &flowtest.KV{}
	damaged.PutValue(ctx, "kiosk.application-number", []byte("garbage"))
	seq, _ = flow.NewSequence("KMI1", damaged, nil)
	if _, err := seq.Next(ctx, time.Now()); err == nil || !strings.Contains(err.Error(), "damaged") {
		t.Errorf("damaged sequence: %v", err)
	}
}

func TestParseNumber(t *testing.T) {
	n, err := flow.FormatNumber("KMI1", time.Date(2026, 11, 29, 0, 0, 0, 0, time.UTC), 42)
	if err != nil {
		t.Fatal(err)
	}
	p, err := flow.ParseNumber(strings.ToLower(n))
	if err != nil || p.Prefix != "KMI1" || p.Seq != 42 || p.Date.Day() != 29 {
		t.Fatalf("ParseNumber(%s) = %+v, %v", n, p, err)
	}
	// Every single mistyped character and every swap of two neighbours
	// is noticed.
	const alnum = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
	for i := 0; i < len(n); i++ {
		if n[i] == '-' {
			continue
		}
		for _, c := range alnum {
			if byte(c) == n[i] {
				continue
			}
			typo := n[:i] + string(c) + n[i+1:]
			if _, err := flow.ParseNumber(typo); err == nil {
				t.Errorf("typo %s accepted", typo)
			}
		}
		if j := i + 1; j < len(n) && n[j] != '-' && n[i] != n[j] {
			swap := n[:i] + string(n[j]) + string(n[i]) + n[j+1:]
			if _, err := flow.ParseNumber(swap); err == nil {
				t.Errorf("swap %s accepted", swap)
			}
		}
	}
	for _, bad := range []string{"", "KMI1", "KMI1-261129-0042", "KMI1-261399-0042-0", "KMI1-261129-0000-0",
		"KMI1-261129-+042-0", "K-261129-0042-0", strings.Repeat("A", 100)} {
		if _, err := flow.ParseNumber(bad); err == nil {
			t.Errorf("ParseNumber(%q) accepted", bad)
		}
	}
}

func FuzzParseNumber(f *testing.F) {
	n, _ := flow.FormatNumber("KMI1", time.Date(2026, 11, 29, 0, 0, 0, 0, time.UTC), 7)
	for _, s := range []string{n, "", "-", "A-B-C-D", "KMI1-261129-0001-", "kmi1-261129-0007-x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := flow.ParseNumber(s)
		if err != nil {
			return
		}
		// What parses formats back to itself.
		again, err := flow.FormatNumber(p.Prefix, p.Date, p.Seq)
		if err != nil {
			t.Fatalf("parsed %q, cannot format %+v: %v", s, p, err)
		}
		if _, err := flow.ParseNumber(again); err != nil {
			t.Fatalf("formatted %q does not parse: %v", again, err)
		}
	})
}

func TestConfigValidate(t *testing.T) {
	ok := flow.DefaultConfig()
	ok.Office = "buergeramt-mitte"
	if err := ok.Validate(); err != nil {
		t.Fatalf("defaults with an office: %v", err)
	}
	if err := flow.DefaultConfig().Validate(); err == nil || !strings.Contains(err.Error(), "office") {
		t.Errorf("no office: %v", err)
	}
	tests := map[string]func(*flow.Config){
		"eID without URL":      func(c *flow.Config) { c.EID.Enabled = true },
		"unknown document":     func(c *flow.Config) { c.Documents = append(c.Documents, "driving-licence") },
		"no fee":               func(c *flow.Config) { delete(c.Fees, "passport") },
		"warning too long":     func(c *flow.Config) { c.Timeouts.Warning = 2 * time.Minute },
		"threshold above 100":  func(c *flow.Config) { c.Finger.Threshold = 101 },
		"no photo attempts":    func(c *flow.Config) { c.Photo.Attempts = 0 },
		"PAD threshold":        func(c *flow.Config) { c.Photo.PADThreshold = 2 },
		"no languages":         func(c *flow.Config) { c.Languages = nil },
		"bad language":         func(c *flow.Config) { c.Languages = []string{"de DE"} },
		"no location":          func(c *flow.Config) { c.Location = nil },
		"zero payment retries": func(c *flow.Config) { c.PaymentAttempts = 0 },
	}
	for name, mod := range tests {
		c := ok
		c.Fees = map[string]int64{"id-card": 3700, "passport": 7000, "temporary-id": 1000}
		c.Documents = append([]string(nil), ok.Documents...)
		mod(&c)
		if err := c.Validate(); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	atCounter := ok
	atCounter.PayAtCounter, atCounter.Fees = true, nil
	if err := atCounter.Validate(); err != nil {
		t.Errorf("fees at the counter need no amounts: %v", err)
	}
}

func TestNewNeedsItsDependencies(t *testing.T) {
	cfg := flow.DefaultConfig()
	cfg.Office = "buergeramt-mitte"
	_, err := flow.New(cfg, flow.Deps{})
	if err == nil {
		t.Fatal("a flow without peripherals")
	}
	for _, want := range []string{"camera", "scanner", "printer", "payment terminal", "Faces", "saver"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name the %s", err, want)
		}
	}
}

func TestMessageKeys(t *testing.T) {
	seen := map[string]bool{}
	for _, k := range append(flow.MessageKeys(), flow.GuidanceKeys()...) {
		if k == "" || seen[k] || strings.ContainsAny(k, " {}") || !strings.Contains(k, ".") {
			t.Errorf("key %q: empty, twice or not a dotted catalogue key", k)
		}
		seen[k] = true
	}
	if !seen[flow.MsgCounter] || !seen[flow.MsgIdentifyEnterPIN] || !seen["photo.too-close"] {
		t.Error("keys missing from the lists")
	}
	if len(flow.CounterItems()) != 5 {
		t.Errorf("counter items %v", flow.CounterItems())
	}
	for s := flow.StepWelcome; s <= flow.StepOutOfService; s++ {
		if strings.HasPrefix(s.String(), "step(") {
			t.Errorf("step %d has no name", s)
		}
	}
}

// TestMessageKeysListsEveryConstant checks that MessageKeys names every
// Msg constant of messages.go, so the catalogue test of kiosk/i18n sees
// them all.
func TestMessageKeysListsEveryConstant(t *testing.T) {
	fset := token.NewFileSet()
	file, err := parser.ParseFile(fset, "messages.go", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	declared := map[string]bool{}
	for _, d := range file.Decls {
		gd, ok := d.(*ast.GenDecl)
		if !ok || gd.Tok != token.CONST {
			continue
		}
		for _, spec := range gd.Specs {
			vs := spec.(*ast.ValueSpec)
			for i, name := range vs.Names {
				if !strings.HasPrefix(name.Name, "Msg") {
					continue
				}
				lit, ok := vs.Values[i].(*ast.BasicLit)
				if !ok {
					t.Fatalf("%s is not a string literal", name.Name)
				}
				v, _ := strconv.Unquote(lit.Value)
				declared[v] = true
			}
		}
	}
	listed := map[string]bool{}
	for _, k := range flow.MessageKeys() {
		listed[k] = true
	}
	for k := range declared {
		if !listed[k] {
			t.Errorf("%s is declared but missing from MessageKeys", k)
		}
	}
	if len(listed) != len(declared) {
		t.Errorf("MessageKeys has %d keys, messages.go declares %d", len(listed), len(declared))
	}
}
