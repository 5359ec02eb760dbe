package bridge_test

import (
	"context"
	"errors"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/kogge-fleet/kogge/fleet-server/bridge"
	"github.com/kogge-fleet/kogge/fleet-server/bridge/bridgetest"
	"github.com/kogge-fleet/kogge/fleet-server/delivery"
	"github.com/kogge-fleet/kogge/fleet-server/delivery/bridgeclient"
	"github.com/kogge-fleet/kogge/fleet-server/store"
	"github.com/kogge-fleet/kogge/protocol/casefile"
	"github.com/kogge-fleet/kogge/protocol/casefile/casefiletest"
)

// Both the in-process queue and its HTTPS client are sources.
var (
	_ bridge.Source = (*delivery.Queue)(nil)
	_ bridge.Source = (*bridgeclient.Client)(nil)
)

type nopPublisher struct{}

func (nopPublisher) Publish(string, []byte, bool) error { return nil }

// TestRealQueue runs the runner against the fleet server's delivery queue
// on a SQLite store: every record of every kind is delivered once and
// accepted with its receipt, and its sealed body is dropped; a record
// sealed for a key the bridge does not hold is a dead letter with the
// reason.
func TestRealQueue(t *testing.T) {
	ctx := context.Background()
	db, err := store.Open(ctx, filepath.Join(t.TempDir(), "kogge.db"), store.Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	bridgetest.AddDevice(t, db, "kiosk-test-01")
	q, err := delivery.New(db, nopPublisher{}, delivery.Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}

	office := bridgetest.NewOffice(t, "office-a", "k1")
	stranger := bridgetest.NewOffice(t, "office-a", "k-unknown")
	var good []uuid.UUID
	seq := uint64(0)
	for _, kind := range casefile.Kinds() {
		doc := casefiletest.Sample(kind)
		r := bridgetest.Seal(t, office, doc, bridgetest.SampleBlobs(doc, 8192))
		seq++
		bridgetest.Enqueue(t, db, r, seq)
		good = append(good, r.Delivery.ID)
	}
	doc := casefiletest.Report()
	bad := bridgetest.Seal(t, stranger, doc, bridgetest.SampleBlobs(doc, 512))
	seq++
	bridgetest.Enqueue(t, db, bad, seq)

	conn := &fakeConn{}
	_, stop := start(t, q, office, conn, bridge.Options{})
	deadline := time.Now().Add(20 * time.Second)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for {
		settled := true
		for _, id := range append(good, bad.Delivery.ID) {
			d, err := db.DeliveryOf(ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			if d.State != store.DeliveryAccepted && d.State != store.DeliveryDead {
				settled = false
			}
		}
		if settled {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("records not delivered within 20 s")
		}
		<-tick.C
	}
	stop()

	for _, id := range good {
		d, _ := db.DeliveryOf(ctx, id)
		if d.State != store.DeliveryAccepted || d.Attempt != 1 || d.Reference != "REF-"+id.String()[:8] {
			t.Errorf("record %v: %s at attempt %d with reference %q", id, d.State, d.Attempt, d.Reference)
		}
		if _, err := db.RecordSealed(ctx, "kiosk-test-01", id); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("record %v: sealed body still stored after the ack (%v)", id, err)
		}
	}
	d, _ := db.DeliveryOf(ctx, bad.Delivery.ID)
	if d.State != store.DeliveryDead || !strings.Contains(d.LastError, `office key "k-unknown"`) {
		t.Errorf("record sealed for an unknown key: %s, %q", d.State, d.LastError)
	}
	if n := len(conn.cases()); n != len(good) {
		t.Errorf("connector saw %d cases, want %d", n, len(good))
	}
}
