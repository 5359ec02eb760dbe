// Package camera simulates an IP camera for the camera driver: an
// MJPEG-over-HTTP stream (multipart/x-mixed-replace) at
// http://127.0.0.1:<port>/stream?resolution=WxH&fps=N, the nearest of its
// modes to the wish, and single frames at /snapshot.jpg. The frames show
// a scripted scene: synthetic heads (a shaded face with hair, eyes, brows,
// nose and mouth, neck and shoulders, on the uniform grey of ID photos,
// drawn so that a face detector finds them) that move, grow, sway, tilt,
// close their eyes or open their mouths, several faces, lighting changes
// and blur — or the PNG and JPEG files of a directory, for the photo
// checks on real photos. The default script passes kiosk/photo's
// mandatory checks in [CaptureMode]; [Scenarios] fail them one way each.
package camera

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"image/jpeg"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/kogge-fleet/kogge/drivers/camera"
)

// Options configure the simulator. The zero value means the defaults.
type Options struct {
	// Addr to listen on ("127.0.0.1:0").
	Addr string
	// Modes the camera offers (320x240, 640x480 and 1280x720 at 15 fps,
	// 1600x1200 at 10, the portrait 1200x1600 at 10, and the 5-megapixel
	// 2592x1944 at 10, the [CaptureMode] for ID photos).
	Modes []camera.Mode
	// Script of the scene (DefaultScript()).
	Script []Step
	// Dir, if set, holds PNG or JPEG files shown in turn (sorted by name)
	// instead of synthetic faces; the script's light and blur still apply.
	Dir string
	// Quality of the JPEG frames (85).
	Quality int
	// Logger receives the simulator's log lines (slog.Default()).
	Logger *slog.Logger
}

func (o Options) withDefaults() Options {
	if o.Addr == "" {
		o.Addr = "127.0.0.1:0"
	}
	if len(o.Modes) == 0 {
		o.Modes = []camera.Mode{{Width: 320, Height: 240, FPS: 15}, {Width: 640, Height: 480, FPS: 15},
			{Width: 1280, Height: 720, FPS: 15}, {Width: 1600, Height: 1200, FPS: 10}, {Width: 1200, Height: 1600, FPS: 10},
			CaptureMode()}
	}
	if len(o.Script) == 0 {
		o.Script = DefaultScript()
	}
	if o.Quality == 0 {
		o.Quality = 85
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return o
}

// Validate checks the options after defaults are filled in.
func (o Options) Validate() error {
	for _, m := range o.Modes {
		if m.Width <= 0 || m.Height <= 0 || m.FPS <= 0 || m.Width > 8192 || m.Height > 8192 || m.FPS > 120 {
			return fmt.Errorf("camera mode %v out of range", m)
		}
	}
	if o.Quality < 1 || o.Quality > 100 {
		return fmt.Errorf("JPEG quality %d: must be 1 to 100", o.Quality)
	}
	return nil
}

// CaptureMode is the mode to take ID photos in: the smallest of the
// simulator's modes that holds a 1244×1600 photo without upscaling.
// Preview in [PreviewMode], which shows the same field of view.
func CaptureMode() camera.Mode { return camera.Mode{Width: 2592, Height: 1944, FPS: 10} }

// PreviewMode is the mode for the live preview during the photo step.
func PreviewMode() camera.Mode { return camera.Mode{Width: 640, Height: 480, FPS: 15} }

// Boundary separates the stream's parts.
const Boundary = "koggeframe"

// Simulator is a running simulated camera.
type Simulator struct {
	opts Options
	log  *slog.Logger
	srv  *http.Server
	base string
	wg   sync.WaitGroup
	stop chan struct{}
	once sync.Once

	mu      sync.Mutex
	scene   *scene
	frozen  bool
	streams map[int]context.CancelCauseFunc
	next    int
}

// errDropped aborts the streams on Drop.
var errDropped = errors.New("camera dropped")

// Start listens and serves until Close or until ctx ends.
func Start(ctx context.Context, opts Options) (*Simulator, error) {
	opts = opts.withDefaults()
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	sc := &scene{script: opts.Script}
	if opts.Dir != "" {
		imgs, err := loadImages(opts.Dir)
		if err != nil {
			return nil, fmt.Errorf("camera simulator: %w", err)
		}
		sc.files = imgs
	}
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", opts.Addr)
	if err != nil {
		return nil, fmt.Errorf("camera simulator: listen on %s: %w", opts.Addr, err)
	}
	s := &Simulator{opts: opts, log: opts.Logger.With("sim", "camera"), base: "http://" + ln.Addr().String(),
		stop: make(chan struct{}), scene: sc, streams: map[int]context.CancelCauseFunc{}}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /stream", s.serveStream)
	mux.HandleFunc("GET /snapshot.jpg", s.serveSnapshot)
	s.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	s.wg.Add(2)
	go func() {
		defer s.wg.Done()
		if err := s.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error("camera simulator: serve", "err", err)
		}
	}()
	go func() {
		defer s.wg.Done()
		select {
		case <-ctx.Done():
			s.shutdown()
		case <-s.stop:
		}
	}()
	return s, nil
}

// Endpoint is the stream's URL for the driver.
func (s *Simulator) Endpoint() string { return s.base + "/stream" }

// SnapshotURL is the address of single frames.
func (s *Simulator) SnapshotURL() string { return s.base + "/snapshot.jpg" }

// SetScript replaces the scene's script; streams continue with it from
// their current frame number.
func (s *Simulator) SetScript(script []Step) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.scene = &scene{script: script, files: s.scene.files}
}

// Freeze stops (or resumes) sending frames while keeping connections
// open, as a camera whose sensor hangs.
func (s *Simulator) Freeze(frozen bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.frozen = frozen
}

// Drop cuts every open stream abruptly, as an unplugged camera.
func (s *Simulator) Drop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, cancel := range s.streams {
		cancel(errDropped)
	}
}

// Close stops the simulator and waits for its goroutines.
func (s *Simulator) Close() error {
	s.shutdown()
	s.wg.Wait()
	return nil
}

func (s *Simulator) shutdown() {
	s.once.Do(func() {
		close(s.stop)
		s.Drop()
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		if err := s.srv.Shutdown(ctx); err != nil {
			s.srv.Close()
		}
	})
}

// mode reads resolution=WxH and fps=N and picks the nearest mode.
func (s *Simulator) mode(r *http.Request) camera.Mode {
	want := s.opts.Modes[0]
	if res := r.URL.Query().Get("resolution"); res != "" {
		w, h, ok := strings.Cut(res, "x")
		wi, err1 := strconv.Atoi(w)
		hi, err2 := strconv.Atoi(h)
		if ok && err1 == nil && err2 == nil && wi > 0 && hi > 0 {
			want.Width, want.Height = wi, hi
		}
	}
	if fps, err := strconv.Atoi(r.URL.Query().Get("fps")); err == nil && fps > 0 {
		want.FPS = fps
	}
	m := camera.Nearest(s.opts.Modes, want)
	if want.FPS > 0 && want.FPS < m.FPS {
		m.FPS = want.FPS // a camera can always send fewer frames
	}
	return m
}

func (s *Simulator) frame(n int, m camera.Mode) ([]byte, error) {
	s.mu.Lock()
	sc := s.scene
	s.mu.Unlock()
	return sc.encoded(sc.key(n, m.Width, m.Height), func() ([]byte, error) {
		var buf bytes.Buffer
		err := jpeg.Encode(&buf, sc.render(n, m.Width, m.Height), &jpeg.Options{Quality: s.opts.Quality})
		return buf.Bytes(), err
	})
}

func (s *Simulator) serveSnapshot(w http.ResponseWriter, r *http.Request) {
	b, err := s.frame(0, s.mode(r))
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "image/jpeg")
	w.Write(b)
}

func (s *Simulator) serveStream(w http.ResponseWriter, r *http.Request) {
	m := s.mode(r)
	ctx, cancel := context.WithCancelCause(r.Context())
	s.mu.Lock()
	id := s.next
	s.next++
	s.streams[id] = cancel
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.streams, id)
		s.mu.Unlock()
		cancel(nil)
	}()
	rc := http.NewResponseController(w)
	w.Header().Set("Content-Type", "multipart/x-mixed-replace; boundary="+Boundary)
	w.Header().Set("X-Resolution", fmt.Sprintf("%dx%d", m.Width, m.Height))
	w.Header().Set("X-Framerate", strconv.Itoa(m.FPS))
	w.Header().Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	// Send the header at once, as a camera does, not with the first frame,
	// whose first rendering takes a while.
	if err := rc.Flush(); err != nil {
		return
	}
	tick := time.NewTicker(time.Second / time.Duration(m.FPS))
	defer tick.Stop()
	for n := 0; ; {
		s.mu.Lock()
		frozen := s.frozen
		s.mu.Unlock()
		if !frozen {
			b, err := s.frame(n, m)
			if err != nil {
				s.log.Error("camera simulator: encode", "err", err)
				return
			}
			fmt.Fprintf(w, "--%s\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\nX-Timestamp: %d\r\n\r\n",
				Boundary, len(b), time.Now().UnixMilli())
			w.Write(b)
			w.Write([]byte("\r\n"))
			if err := rc.Flush(); err != nil {
				return
			}
			n++
		}
		select {
		case <-tick.C:
		case <-ctx.Done():
			if errors.Is(context.Cause(ctx), errDropped) {
				panic(http.ErrAbortHandler) // cut the connection, no clean end
			}
			return
		}
	}
}
