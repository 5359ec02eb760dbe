package camera_test

import (
	"context"
	"image/jpeg"
	"io"
	"log/slog"
	"net/http"
	"testing"
	"time"

	"github.com/kogge-fleet/kogge/drivers/camera"
	camsim "github.com/kogge-fleet/kogge/simulators/devices/camera"
)

func TestSnapshot(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	sim, err := camsim.Start(ctx, camsim.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer sim.Close()
	for _, tc := range []struct {
		query string
		w, h  int
	}{{"", 320, 240}, {"?resolution=1250x1590", 1200, 1600}, {"?resolution=junk", 320, 240}} {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, sim.SnapshotURL()+tc.query, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		img, err := jpeg.Decode(resp.Body)
		resp.Body.Close()
		if err != nil {
			t.Fatalf("%s: %v", tc.query, err)
		}
		if b := img.Bounds(); b.Dx() != tc.w || b.Dy() != tc.h {
			t.Errorf("%q: %v, want %dx%d", tc.query, b, tc.w, tc.h)
		}
	}
}

func TestOptions(t *testing.T) {
	ctx := context.Background()
	for _, opts := range []camsim.Options{
		{Modes: []camera.Mode{{Width: 0, Height: 10, FPS: 1}}},
		{Quality: 101},
		{Dir: t.TempDir()}, // no images in it
	} {
		if sim, err := camsim.Start(ctx, opts); err == nil {
			sim.Close()
			t.Errorf("started with %+v", opts)
		}
	}
}
