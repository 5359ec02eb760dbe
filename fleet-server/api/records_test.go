package api

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/kogge-fleet/kogge/fleet-server/registry"
	"github.com/kogge-fleet/kogge/fleet-server/store"
	"github.com/kogge-fleet/kogge/protocol"
)

// storeRecords stores records as the ingest would: kinds and offices cycle,
// every third record has a blob, of which only the first record's is
// complete.
func storeRecords(t *testing.T, db *store.DB, device string, n int) []uuid.UUID {
	t.Helper()
	var ids []uuid.UUID
	ctx := context.Background()
	err := db.Ingest(ctx, func(tx *store.IngestTx) error {
		ids = ids[:0]
		for i := range n {
			r := &protocol.Record{
				ID: uuid.Must(uuid.NewV7()), Seq: uint64(i + 1),
				Kind: []string{"kiosk.application", "owi.notice"}[i%2], Office: []string{"buergeramt", "ordnungsamt"}[i%2],
				CreatedAt: protocol.At(time.Now()), Meta: map[string]string{"service": "passport"},
				Sealed: []byte("sealed-personal-body"),
			}
			if i%3 == 0 {
				r.Blobs = []protocol.BlobRef{{ID: uuid.Must(uuid.NewV7()), Role: "photo", Size: 10, SHA256: protocol.SumOf([]byte("0123456789"))}}
			}
			if _, err := tx.InsertRecord(ctx, device, r, time.Now().UnixMilli()); err != nil {
				return err
			}
			if i == 0 {
				if err := tx.CompleteBlob(ctx, device, r.ID, r.Blobs[0].ID, time.Now().UnixMilli()); err != nil {
					return err
				}
			}
			ids = append(ids, r.ID)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return ids
}

func TestRecords(t *testing.T) {
	e := newTestEnv(t, nil)
	if _, err := e.reg.CreateGroup(t.Context(), "kiosks", "Kiosks"); err != nil {
		t.Fatal(err)
	}
	dev := e.enroll(t, "kiosks", "kiosk-1", registry.Inventory{})
	other := e.enroll(t, "kiosks", "kiosk-2", registry.Inventory{})
	ids := storeRecords(t, e.db, dev, 7)
	storeRecords(t, e.db, other, 2)

	list := func(q string) recordList {
		t.Helper()
		rec := do(t, e.h, "GET", "/api/v1/records"+q, testToken, "")
		if rec.Code != 200 {
			t.Fatalf("%s: %d %s", q, rec.Code, rec.Body.String())
		}
		if strings.Contains(rec.Body.String(), "sealed-personal-body") || strings.Contains(rec.Body.String(), "c2VhbGVk") {
			t.Fatalf("%s: the sealed body is served", q)
		}
		return decodeInto[recordList](t, rec.Body.Bytes())
	}
	seqs := func(l recordList) string {
		var out []string
		for _, r := range l.Records {
			out = append(out, fmt.Sprintf("%s/%d", r.Device[len(r.Device)-1:], r.Seq))
		}
		return strings.Join(out, ",")
	}
	tests := []struct{ q, want string }{
		{"", "1/1,1/2,1/3,1/4,1/5,1/6,1/7,2/1,2/2"},
		{"?device=kiosk-1&kind=owi.notice", "1/2,1/4,1/6"},
		{"?office=buergeramt&device=kiosk-2", "2/1"},
		{"?status=incomplete", "1/4,1/7"},
		{"?status=complete&device=kiosk-1", "1/1,1/2,1/3,1/5,1/6"},
		{"?status=erased", ""},
	}
	for _, tt := range tests {
		if got := seqs(list(tt.q)); got != tt.want {
			t.Errorf("records%s = %s, want %s", tt.q, got, tt.want)
		}
	}

	// Paging: three pages of three, with and without a status filter.
	var got []string
	next := ""
	for page := 0; ; page++ {
		if page > 5 {
			t.Fatal("paging does not end")
		}
		l := list("?limit=3&after=" + next)
		got = append(got, seqs(l))
		if next = l.Next; next == "" {
			break
		}
	}
	if strings.Join(got, "|") != "1/1,1/2,1/3|1/4,1/5,1/6|1/7,2/1,2/2" {
		t.Errorf("pages %q", got)
	}
	l := list("?limit=2&status=complete")
	if seqs(l) != "1/1,1/2" || l.Next == "" {
		t.Fatalf("filtered page %s next %q", seqs(l), l.Next)
	}
	if l = list("?limit=10&status=complete&after=" + l.Next); seqs(l) != "1/3,1/5,1/6,2/1,2/2" || l.Next != "" {
		t.Errorf("second filtered page %s next %q", seqs(l), l.Next)
	}

	for _, q := range []string{"?status=lost", "?after=-1", "?after=x", "?limit=0", "?sealed=1"} {
		if rec := do(t, e.h, "GET", "/api/v1/records"+q, testToken, ""); rec.Code != 400 {
			t.Errorf("records%s: %d, want 400", q, rec.Code)
		}
	}

	rec := do(t, e.h, "GET", "/api/v1/devices/kiosk-1/records/"+ids[0].String(), testToken, "")
	if rec.Code != 200 {
		t.Fatalf("show: %d %s", rec.Code, rec.Body.String())
	}
	r := decodeInto[recordJSON](t, rec.Body.Bytes())
	if r.ID != ids[0] || r.Status != "complete" || len(r.Blobs) != 1 || !r.Blobs[0].Complete || r.SealedSize != 20 ||
		r.Meta["service"] != "passport" {
		t.Errorf("show %+v", r)
	}
	if strings.Contains(rec.Body.String(), "sealed-personal-body") {
		t.Error("show serves the sealed body")
	}
	for path, want := range map[string]int{
		"/api/v1/devices/kiosk-2/records/" + ids[0].String(): 404,
		"/api/v1/devices/kiosk-1/records/not-a-uuid":         400,
	} {
		if rec := do(t, e.h, "GET", path, testToken, ""); rec.Code != want {
			t.Errorf("%s: %d, want %d", path, rec.Code, want)
		}
	}

	d := decodeInto[deviceDetail](t, do(t, e.h, "GET", "/api/v1/devices/kiosk-1", testToken, "").Body.Bytes())
	if d.Sync.IncompleteBlobs != 2 {
		t.Errorf("sync %+v", d.Sync)
	}
}
