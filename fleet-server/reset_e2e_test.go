package fleetserver_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/kogge-fleet/kogge/agent"
	"github.com/kogge-fleet/kogge/fleet-server/api/client"
)

// outboxEmpty waits until the device has nothing left to send.
func outboxEmpty(t *testing.T, dev *testDevice) {
	t.Helper()
	ctx := context.Background()
	eventually(t, "outbox empty", 30*time.Second, func() (bool, string) {
		pending, err := dev.store.Pending(ctx, 0, 10)
		if err != nil {
			return false, err.Error()
		}
		blobs, err := dev.store.PendingBlobs(ctx, 10)
		if err != nil {
			return false, err.Error()
		}
		return len(pending) == 0 && len(blobs) == 0, fmt.Sprintf("%d records, %d blobs pending", len(pending), len(blobs))
	})
}

// A device's store is damaged and replaced by a fresh one that numbers from
// 1 again. Its new captures must reach the server under numbers above the
// server's watermark, none of them lost, none taken for an old record.
func TestResetStoreEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test")
	}
	const device = "kiosk-reset-1"
	logs := &logSink{}
	logs.dumpOnFailure(t)
	srv := startServer(t, logs)
	ctx := context.Background()
	if _, err := srv.api.CreateGroup(ctx, "kiosks", "Bürgeramt Mitte kiosks"); err != nil {
		t.Fatal(err)
	}
	code, err := srv.api.CreateCode(ctx, client.CodeRequest{Group: "kiosks", TTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	capture := func(i int, blob []byte) agent.Capture {
		c := agent.Capture{Kind: "kiosk.application", Office: officeKey.Office,
			Body: []byte(fmt.Sprintf("application %d", i)), Meta: map[string]string{"service": "passport"}}
		if blob != nil {
			c.Blobs = []agent.Blob{{Role: "photo", Data: blob}}
		}
		return c
	}

	// The first life of the store: five captures, all stored.
	const former = 5
	dev := startDevice(t, srv, logs, code.Secret, code.CAFingerprint, device)
	var old []agent.Receipt
	for i := range former {
		r, err := dev.agent.Capture(ctx, capture(i, nil))
		if err != nil {
			t.Fatal(err)
		}
		old = append(old, r)
	}
	outboxEmpty(t, dev)
	path := dev.store.Path()
	if err := dev.stop(); err != nil {
		t.Fatalf("agent: %v", err)
	}

	// The store file is damaged while the device is off.
	if err := os.WriteFile(path, bytes.Repeat([]byte("not a database "), 1000), 0o600); err != nil {
		t.Fatal(err)
	}

	// The device comes back with a fresh store and captures three records
	// before it reaches the server: they are numbered 1 to 3, numbers the
	// server holds other records under.
	photo := make([]byte, 150<<10)
	if _, err := rand.Read(photo); err != nil {
		t.Fatal(err)
	}
	var fresh []agent.Receipt
	dev = runDevice(t, dev.id, path, logs, func(a *agent.Agent) {
		for i := range 3 {
			var blob []byte
			if i == 1 {
				blob = photo
			}
			r, err := a.Capture(ctx, capture(former+i, blob))
			if err != nil {
				t.Fatal(err)
			}
			fresh = append(fresh, r)
		}
	})
	if dev.store.MovedAside() == "" {
		t.Fatal("the damaged store was not moved aside")
	}
	for i, r := range fresh {
		if r.Seq != uint64(i+1) {
			t.Fatalf("fresh store numbered capture %d as %d, want %d", i, r.Seq, i+1)
		}
	}
	outboxEmpty(t, dev)

	// On the device: every new capture stored, under a number above the
	// server's watermark.
	for i, r := range fresh {
		st, err := dev.agent.Status(ctx, r.ID)
		if err != nil || st.State != agent.Stored || st.Seq != former+1+uint64(i) {
			t.Errorf("fresh capture %d on the device: %+v, %v; want stored as seq %d", i, st, err, former+1+i)
		}
	}
	// At the server: the five old records untouched and the three new ones
	// after them, complete.
	page, err := srv.api.Records(ctx, client.RecordQuery{Device: device, Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	bySeq := map[uint64]client.Record{}
	for _, r := range page.Records {
		bySeq[r.Seq] = r
	}
	if len(page.Records) != former+3 || len(bySeq) != former+3 {
		t.Fatalf("the server holds %d records, want %d: %+v", len(page.Records), former+3, page.Records)
	}
	want := map[uint64]uuid.UUID{}
	for _, r := range old {
		want[r.Seq] = r.ID
	}
	for i, r := range fresh {
		want[former+1+uint64(i)] = r.ID
	}
	for seq, id := range want {
		got, ok := bySeq[seq]
		if !ok || got.ID != id || got.Status != "complete" {
			t.Errorf("server record with seq %d: %+v, want %v complete", seq, got, id)
		}
	}
	// The photo travels sealed: a little larger than the plain one.
	if b := bySeq[former+2].Blobs; len(b) != 1 || !b[0].Complete || b[0].Size <= uint64(len(photo)) {
		t.Errorf("the renumbered record's photo at the server: %+v", b)
	}
}
