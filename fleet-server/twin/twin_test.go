package twin

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kogge-fleet/kogge/fleet-server/store"
	"github.com/kogge-fleet/kogge/protocol"
)

// fakeBroker keeps the retained message per topic, as a broker does.
type fakeBroker struct {
	mu       sync.Mutex
	retained map[string]*protocol.TwinDesired
	count    int
	fail     bool
}

func (f *fakeBroker) Publish(topic string, payload []byte, retained bool) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fail {
		return errors.New("broker down")
	}
	env, err := protocol.DecodeOn(topic, payload)
	if err != nil {
		return err
	}
	if !retained {
		return errors.New("desired configuration must be retained")
	}
	if f.retained == nil {
		f.retained = map[string]*protocol.TwinDesired{}
	}
	f.retained[env.Device] = env.Body.(*protocol.TwinDesired)
	f.count++
	return nil
}

func (f *fakeBroker) get(device string) *protocol.TwinDesired {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.retained[device]
}

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func setup(t *testing.T, devices ...string) *store.DB {
	t.Helper()
	ctx := context.Background()
	db, err := store.Open(ctx, filepath.Join(t.TempDir(), "kogge.db"), store.Options{Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	addDevices(t, db, devices...)
	return db
}

func addDevices(t *testing.T, db *store.DB, devices ...string) {
	t.Helper()
	err := db.Tx(context.Background(), func(tx *sql.Tx) error {
		for _, g := range []string{"kiosks", "handhelds"} {
			if _, err := tx.Exec(`INSERT INTO groups (id, name, created_at) VALUES ($1, $1, 1) ON CONFLICT DO NOTHING`, g); err != nil {
				return err
			}
		}
		for _, d := range devices {
			group, id, _ := strings.Cut(d, "/")
			if _, err := tx.Exec(`INSERT INTO devices (id, group_id, created_at, inventory_at) VALUES ($1, $2, 1, 1)`, id, group); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func obj(t *testing.T, s string) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(s), &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func jsonOf(v any) string { b, _ := json.Marshal(v); return string(b) }

func TestGroupOverrideMergeVersion(t *testing.T) {
	db := setup(t, "kiosks/k1", "kiosks/k2", "handhelds/h1")
	fb := &fakeBroker{}
	s, err := New(db, fb, Options{Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	group := obj(t, `{"volume": 5, "screen": {"timeout": 60, "theme": "light"}, "offices": ["mitte"]}`)
	if v, err := s.SetGroup(ctx, "kiosks", group); err != nil || v != 1 {
		t.Fatalf("SetGroup = %d, %v", v, err)
	}
	if err := s.SetDevice(ctx, "k1", obj(t, `{"screen": {"theme": "dark"}, "volume": null, "kiosk_mode": true}`)); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		device, want string
		version      uint64
	}{
		{"k1", `{"kiosk_mode":true,"offices":["mitte"],"screen":{"theme":"dark","timeout":60}}`, 2},
		{"k2", `{"offices":["mitte"],"screen":{"theme":"light","timeout":60},"volume":5}`, 1},
	} {
		got := fb.get(c.device)
		if got == nil || got.Version != c.version || jsonOf(got.Config) != c.want {
			t.Errorf("%s: retained %+v, want version %d %s", c.device, got, c.version, c.want)
		}
	}
	if fb.get("h1") != nil {
		t.Error("a device of an unconfigured group got a document")
	}
	// The same configuration again changes nothing.
	n := fb.count
	if _, err := s.SetGroup(ctx, "kiosks", obj(t, `{"offices": ["mitte"], "screen": {"theme": "light", "timeout": 60.0}, "volume": 5}`)); err != nil {
		t.Fatal(err)
	}
	if fb.count != n || fb.get("k2").Version != 1 {
		t.Errorf("an unchanged configuration was published again (version %d)", fb.get("k2").Version)
	}
	// A change the override hides changes k1's document not at all.
	if _, err := s.SetGroup(ctx, "kiosks", obj(t, `{"volume": 7, "screen": {"timeout": 60, "theme": "light"}, "offices": ["mitte"]}`)); err != nil {
		t.Fatal(err)
	}
	if fb.get("k1").Version != 2 || fb.get("k2").Version != 2 || jsonOf(fb.get("k2").Config["volume"]) != "7" {
		t.Errorf("after a group change: k1 %d, k2 %d %v", fb.get("k1").Version, fb.get("k2").Version, fb.get("k2").Config)
	}
	// Removing the override brings back the group's document, as a new version.
	if err := s.SetDevice(ctx, "k1", nil); err != nil {
		t.Fatal(err)
	}
	if got := fb.get("k1"); got.Version != 3 || jsonOf(got.Config) != jsonOf(fb.get("k2").Config) {
		t.Errorf("without override: %+v", got)
	}
	v, err := s.Device(ctx, "k1")
	if err != nil || v.Version != 3 || v.Published != 3 || v.Override != nil || v.Group != "kiosks" {
		t.Errorf("View = %+v, %v", v, err)
	}
	if cfg, ver, err := s.Group(ctx, "kiosks"); err != nil || ver != 3 || jsonOf(cfg["volume"]) != "7" {
		t.Errorf("Group = %v, %d, %v", cfg, ver, err)
	}
}

func TestRefusals(t *testing.T) {
	db := setup(t, "kiosks/k1")
	s, _ := New(db, &fakeBroker{}, Options{Logger: quiet()})
	ctx := context.Background()
	deep := map[string]any{}
	cur := deep
	for range maxDepth + 1 {
		next := map[string]any{}
		cur["x"] = next
		cur = next
	}
	huge := map[string]any{"blob": strings.Repeat("x", protocol.MaxMessageSize)}
	for _, c := range []struct {
		name string
		err  error
		want error
	}{
		{"unknown group", func() error { _, err := s.SetGroup(ctx, "nope", map[string]any{}); return err }(), store.ErrNotFound},
		{"unknown device", s.SetDevice(ctx, "nope", map[string]any{}), store.ErrNotFound},
		{"too deep", func() error { _, err := s.SetGroup(ctx, "kiosks", deep); return err }(), ErrInvalid},
		{"too large", s.SetDevice(ctx, "k1", huge), ErrInvalid},
		{"not JSON", s.SetDevice(ctx, "k1", map[string]any{"f": func() {}}), ErrInvalid},
	} {
		if !errors.Is(c.err, c.want) {
			t.Errorf("%s: %v, want %v", c.name, c.err, c.want)
		}
	}
}

func TestRunRepublishesAndRetries(t *testing.T) {
	db := setup(t, "kiosks/k1", "kiosks/k2")
	fb := &fakeBroker{fail: true}
	s, _ := New(db, fb, Options{Logger: quiet(), RetryEvery: 10 * time.Millisecond, PageSize: 1})
	ctx := context.Background()
	// The broker is down while the group is configured: stored, not published.
	if _, err := s.SetGroup(ctx, "kiosks", obj(t, `{"a": 1}`)); err != nil {
		t.Fatal(err)
	}
	if d, _ := db.TwinDesired(ctx, "k1"); d.Version != 1 || d.Published != 0 {
		t.Fatalf("stored %+v", d)
	}
	// A later device joins the group.
	addDevices(t, db, "kiosks/k3")
	fb.mu.Lock()
	fb.fail = false
	fb.mu.Unlock()

	ctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	s.Connected("k3")
	deadline := time.Now().Add(10 * time.Second)
	for fb.get("k1") == nil || fb.get("k2") == nil || fb.get("k3") == nil {
		if time.Now().After(deadline) {
			t.Fatal("documents were not published")
		}
		time.Sleep(2 * time.Millisecond) // polling a condition
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{"k1", "k2", "k3"} {
		if got := fb.get(d); got.Version != 1 || jsonOf(got.Config) != `{"a":1}` {
			t.Errorf("%s: %+v", d, got)
		}
	}
	// A new server (the embedded broker lost its retained messages):
	// everything is published again.
	fresh := &fakeBroker{}
	s2, _ := New(db, fresh, Options{Logger: quiet(), PageSize: 2})
	if err := s2.RepublishAll(context.Background()); err != nil {
		t.Fatal(err)
	}
	if fresh.count != 3 {
		t.Errorf("republished %d documents, want 3", fresh.count)
	}
}

func TestCompare(t *testing.T) {
	desired := map[string]any{"volume": int64(5), "screen": map[string]any{"theme": "dark", "timeout": int64(60)}}
	for _, c := range []struct {
		name string
		r    *Reported
		want Diff
	}{
		{"nothing reported", nil, Diff{DesiredVersion: 3}},
		{"applied, no config", &Reported{Version: 3}, Diff{DesiredVersion: 3, AppliedVersion: 3, InSync: true}},
		{"behind", &Reported{Version: 2}, Diff{DesiredVersion: 3, AppliedVersion: 2}},
		{"refused", &Reported{Version: 2, Rejected: 3, Reason: "volume out of range"},
			Diff{DesiredVersion: 3, AppliedVersion: 2, Rejected: true, Reason: "volume out of range"}},
		{"old refusal", &Reported{Version: 3, Rejected: 2, Reason: "x"}, Diff{DesiredVersion: 3, AppliedVersion: 3, InSync: true}},
		{"same config, other number types", &Reported{Version: 3, Config: map[string]any{"volume": uint64(5),
			"screen": map[string]any{"theme": "dark", "timeout": 60.0}}}, Diff{DesiredVersion: 3, AppliedVersion: 3, InSync: true}},
		{"drifted", &Reported{Version: 3, Config: map[string]any{"volume": uint64(9), "screen": map[string]any{"theme": "dark"},
			"debug": true}}, Diff{DesiredVersion: 3, AppliedVersion: 3, Keys: []string{"debug", "screen.timeout", "volume"}}},
	} {
		if got := Compare(3, desired, c.r); !reflect.DeepEqual(got, c.want) {
			t.Errorf("%s: %+v, want %+v", c.name, got, c.want)
		}
	}
}

func TestMerge(t *testing.T) {
	for _, c := range []struct{ group, over, want string }{
		{`{}`, `{}`, `{}`},
		{`{"a":1}`, `{"a":2}`, `{"a":2}`},
		{`{"a":{"b":1,"c":2}}`, `{"a":{"c":null,"d":3}}`, `{"a":{"b":1,"d":3}}`},
		{`{"a":[1,2]}`, `{"a":[3]}`, `{"a":[3]}`},
		{`{"a":1}`, `{"a":{"b":{"c":null}}}`, `{"a":{"b":{}}}`},
		{`{"a":{"b":1}}`, `{"a":"flat"}`, `{"a":"flat"}`},
	} {
		var g, o map[string]any
		json.Unmarshal([]byte(c.group), &g)
		json.Unmarshal([]byte(c.over), &o)
		if got := jsonOf(Merge(g, o)); got != c.want {
			t.Errorf("Merge(%s, %s) = %s, want %s", c.group, c.over, got, c.want)
		}
		if jsonOf(g) != c.group && c.group != `{}` {
			t.Errorf("Merge changed its input %s to %s", c.group, jsonOf(g))
		}
	}
}
