package store

import (
	"context"
	"errors"
	"testing"

	"github.com/kogge-fleet/kogge/protocol"
)

func TestTwinStore(t *testing.T) {
	backends(t, func(t *testing.T, db *DB) {
		ctx := context.Background()
		addTestDevices(t, db, "g", "d1")
		if _, err := db.PutTwinGroup(ctx, "nogroup", []byte(`{}`), 1); !errors.Is(err, ErrNotFound) {
			t.Errorf("PutTwinGroup(unknown) = %v, want ErrNotFound", err)
		}
		if err := db.PutTwinOverride(ctx, "nobody", []byte(`{}`), 1); !errors.Is(err, ErrNotFound) {
			t.Errorf("PutTwinOverride(unknown) = %v, want ErrNotFound", err)
		}
		for i, cfg := range []string{`{"a":1}`, `{"a":2}`} {
			v, err := db.PutTwinGroup(ctx, "g", []byte(cfg), int64(10+i))
			if err != nil || v != uint64(i+1) {
				t.Fatalf("PutTwinGroup = %d, %v; want version %d", v, err, i+1)
			}
		}
		g, err := db.TwinGroup(ctx, "g")
		if err != nil || string(g.Config) != `{"a":2}` || g.Version != 2 || g.UpdatedAt != 11 {
			t.Errorf("TwinGroup = %+v, %v", g, err)
		}
		if err := db.PutTwinOverride(ctx, "d1", []byte(`{"b":true}`), 12); err != nil {
			t.Fatal(err)
		}
		in, err := db.TwinInputs(ctx, "d1")
		if err != nil || in.Group != "g" || string(in.GroupConfig) != `{"a":2}` || string(in.Override) != `{"b":true}` ||
			in.Desired.Version != 0 {
			t.Errorf("TwinInputs = %+v, %v", in, err)
		}
		for _, c := range []struct {
			from uint64
			cfg  string
			want bool
		}{{0, `{"x":1}`, true}, {0, `{"x":2}`, false}, {1, `{"x":2}`, true}, {1, `{"x":3}`, false}} {
			ok, err := db.PutTwinDesired(ctx, "d1", c.from, []byte(c.cfg), 20)
			if err != nil || ok != c.want {
				t.Errorf("PutTwinDesired(from %d) = %v, %v; want %v", c.from, ok, err, c.want)
			}
		}
		d, err := db.TwinDesired(ctx, "d1")
		if err != nil || d.Version != 2 || string(d.Config) != `{"x":2}` || d.Published != 0 {
			t.Errorf("TwinDesired = %+v, %v", d, err)
		}
		if page, _ := db.TwinDesiredPage(ctx, "", 10, true); len(page) != 1 {
			t.Errorf("unpublished page = %+v", page)
		}
		for _, v := range []uint64{2, 1} {
			if err := db.MarkTwinPublished(ctx, "d1", v); err != nil {
				t.Fatal(err)
			}
		}
		if d, _ := db.TwinDesired(ctx, "d1"); d.Published != 2 {
			t.Errorf("published = %d, want 2", d.Published)
		}
		if page, _ := db.TwinDesiredPage(ctx, "", 10, true); len(page) != 0 {
			t.Errorf("unpublished page after publishing = %+v", page)
		}
		if page, _ := db.TwinDesiredPage(ctx, "", 10, false); len(page) != 1 {
			t.Errorf("page = %+v", page)
		}
		if err := db.PutTwinOverride(ctx, "d1", nil, 13); err != nil {
			t.Fatal(err)
		}
		if in, _ := db.TwinInputs(ctx, "d1"); in.Override != nil {
			t.Errorf("override after removal = %s", in.Override)
		}
		if _, err := db.TwinReported(ctx, "d1"); !errors.Is(err, ErrNotFound) {
			t.Errorf("TwinReported before a report = %v", err)
		}
		ingest(t, db, func(ctx context.Context, tx *IngestTx) error {
			return tx.PutTwinReported(ctx, "d1", &protocol.TwinReported{Version: 1, Rejected: 2, Reason: "bad volume",
				Config: map[string]any{"x": uint64(1), "raw": []byte{1}}}, 30)
		})
		r, err := db.TwinReported(ctx, "d1")
		if err != nil || r.Version != 1 || r.Rejected != 2 || r.Reason != "bad volume" || string(r.Config) != `{"raw":"AQ==","x":1}` ||
			r.ReportedAt != 30 {
			t.Errorf("TwinReported = %+v (%s), %v", r, r.Config, err)
		}
	})
}
