package dropdir_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kogge-fleet/kogge/fleet-server/bridge"
	"github.com/kogge-fleet/kogge/fleet-server/connectors/dropdir"
)

func TestParseReceipt(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    dropdir.Receipt
		wantErr bool
	}{
		{"json", `{"reference":"PA-1","status":"accepted"}`, dropdir.Receipt{Reference: "PA-1", Status: "accepted"}, false},
		{"json without status", `{"reference":" PA-2 "}`, dropdir.Receipt{Reference: "PA-2", Status: "accepted"}, false},
		{"rejected", `{"status":"rejected","reason":"photo missing"}`, dropdir.Receipt{Status: "rejected", Reason: "photo missing"}, false},
		{"rejected without reason", `{"status":"rejected"}`, dropdir.Receipt{Status: "rejected", Reason: "no reason given"}, false},
		{"text", "PA-3\r\nimported 08:00\n", dropdir.Receipt{Reference: "PA-3", Status: "accepted"}, false},
		{"empty", "  \n", dropdir.Receipt{}, true},
		{"half json", `{"refer`, dropdir.Receipt{}, true},
		{"accepted without reference", `{"status":"accepted"}`, dropdir.Receipt{}, true},
		{"unknown status", `{"reference":"x","status":"maybe"}`, dropdir.Receipt{}, true},
		{"binary", "\xff\xfe", dropdir.Receipt{}, true},
		{"control characters", `{"reference":"a\u0007"}`, dropdir.Receipt{}, true},
		{"two objects", `{"reference":"a"}{}`, dropdir.Receipt{}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := dropdir.ParseReceipt([]byte(tt.in))
			if (err != nil) != tt.wantErr || got != tt.want {
				t.Fatalf("ParseReceipt = %+v, %v; want %+v, error %v", got, err, tt.want, tt.wantErr)
			}
			if err != nil && !errors.Is(err, dropdir.ErrUnreadable) {
				t.Fatalf("error %v does not wrap ErrUnreadable", err)
			}
		})
	}
}

func FuzzParseReceipt(f *testing.F) {
	f.Add([]byte(`{"reference":"PA-1","status":"accepted"}`))
	f.Add([]byte(`{"status":"rejected","reason":"x"}`))
	f.Add([]byte("PA-3\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := dropdir.ParseReceipt(b)
		if err != nil {
			return
		}
		if r.Status == dropdir.StatusAccepted && r.Reference == "" || r.Status == dropdir.StatusRejected && r.Reason == "" {
			t.Fatalf("accepted receipt %+v", r)
		}
		for _, s := range []string{r.Reference, r.Reason, r.Note} {
			if strings.ContainsFunc(s, func(c rune) bool { return c < 0x20 || c == 0x7f }) {
				t.Fatalf("control character in %q", s)
			}
		}
	})
}

func newDir(t *testing.T, timeout time.Duration) (*dropdir.Dir, string) {
	t.Helper()
	dir := t.TempDir()
	d, err := dropdir.New(dropdir.Config{Dir: dir, Ext: ".xml", ReceiptTimeout: timeout, PollInterval: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	return d, dir
}

// TestReceiptFirst: a receipt already there answers without writing.
func TestReceiptFirst(t *testing.T) {
	d, dir := newDir(t, time.Second)
	if err := os.WriteFile(d.ReceiptPath("rec-1"), []byte(`{"reference":"PA-9"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	rc, err := d.Deliver(context.Background(), "rec-1", []byte("<x/>"))
	if err != nil || rc.Reference != "PA-9" {
		t.Fatalf("Deliver = %+v, %v", rc, err)
	}
	if _, err := os.Stat(d.Path("rec-1")); !os.IsNotExist(err) {
		t.Fatalf("wrote the file although the receipt was there: %v", err)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Fatalf("directory holds %d entries", len(entries))
	}
}

// TestFileThere: a file of an earlier attempt is not written again; the
// bridge waits for its receipt and times out transiently.
func TestFileThere(t *testing.T) {
	d, _ := newDir(t, 20*time.Millisecond)
	if err := os.WriteFile(d.Path("rec-2"), []byte("first"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := d.Deliver(context.Background(), "rec-2", []byte("second"))
	if err == nil || errors.Is(err, bridge.ErrPermanent) || !strings.Contains(err.Error(), "no receipt") {
		t.Fatalf("Deliver = %v, want a transient timeout", err)
	}
	if b, _ := os.ReadFile(d.Path("rec-2")); string(b) != "first" {
		t.Fatalf("file rewritten: %q", b)
	}
}

func TestWriteAtomically(t *testing.T) {
	d, dir := newDir(t, 20*time.Millisecond)
	// A temporary file of a crashed attempt is left alone and does not
	// stop the next one.
	stale := filepath.Join(dir, ".rec-3-123.tmp")
	if err := os.WriteFile(stale, []byte("half"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Deliver(context.Background(), "rec-3", []byte("<doc/>")); err == nil {
		t.Fatal("no receipt, yet delivered")
	}
	b, err := os.ReadFile(d.Path("rec-3"))
	if err != nil || string(b) != "<doc/>" {
		t.Fatalf("file %q, %v", b, err)
	}
	st, err := os.Stat(d.Path("rec-3"))
	if err != nil || st.Mode().Perm() != 0o640 {
		t.Fatalf("mode %v, %v", st.Mode(), err)
	}
}

func TestRejectedAndCancel(t *testing.T) {
	d, _ := newDir(t, time.Minute)
	if err := os.WriteFile(d.ReceiptPath("rec-4"), []byte(`{"status":"rejected","reason":"no photo"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Deliver(context.Background(), "rec-4", nil); !errors.Is(err, bridge.ErrPermanent) || !strings.Contains(err.Error(), "no photo") {
		t.Fatalf("rejected: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := d.Deliver(ctx, "rec-5", []byte("x")); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled: %v", err)
	}
}

func TestConfig(t *testing.T) {
	for _, cfg := range []dropdir.Config{
		{Dir: t.TempDir(), Ext: "xml"},
		{Dir: t.TempDir(), Ext: ".receipt"},
		{Dir: filepath.Join(t.TempDir(), "missing"), Ext: ".xml"},
	} {
		if _, err := dropdir.New(cfg); err == nil {
			t.Errorf("New(%+v) succeeded", cfg)
		}
	}
	d, _ := newDir(t, time.Second)
	if _, err := d.Deliver(context.Background(), "../x", nil); !errors.Is(err, bridge.ErrPermanent) {
		t.Fatalf("path in id: %v", err)
	}
}
