package camera

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"image/jpeg"
	"io"
	"log/slog"
	"mime"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/kogge-fleet/kogge/drivers"
)

// MJPEGOptions tune [MJPEG]. The zero value means the defaults.
type MJPEGOptions struct {
	// FrameTimeout bounds the wait for a frame when the caller's ctx has
	// no deadline, and the connection's setup (5 s).
	FrameTimeout time.Duration
	// MaxFrameBytes bounds one JPEG (8 MiB).
	MaxFrameBytes int
	// Logger receives the driver's log lines (slog.Default()).
	Logger *slog.Logger
	// Now is the clock (time.Now).
	Now func() time.Time
}

func (o MJPEGOptions) withDefaults() MJPEGOptions {
	if o.FrameTimeout == 0 {
		o.FrameTimeout = 5 * time.Second
	}
	if o.MaxFrameBytes == 0 {
		o.MaxFrameBytes = 8 << 20
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return o
}

// MJPEG reads a camera's MJPEG stream over HTTP. It asks for a mode with
// the query parameters resolution=WxH and fps=N (the convention of many IP
// cameras); the camera answers with the nearest mode it has, which the
// first frame's size reveals.
type MJPEG struct {
	url    string
	opts   MJPEGOptions
	log    *slog.Logger
	client *http.Client

	mu     sync.Mutex
	run    *stream
	status drivers.Status
}

// stream is one running HTTP stream and the goroutine that reads it.
type stream struct {
	cancel context.CancelFunc
	done   chan struct{} // closed when the reader ends
	frames chan Frame    // holds the newest frame
	err    error         // why the reader ended; read after done
	mode   Mode
}

// NewMJPEG returns a camera for the stream at streamURL.
func NewMJPEG(streamURL string, opts MJPEGOptions) *MJPEG {
	opts = opts.withDefaults()
	tr := &http.Transport{
		DialContext:           (&net.Dialer{Timeout: opts.FrameTimeout}).DialContext,
		ResponseHeaderTimeout: opts.FrameTimeout,
		DisableCompression:    true,
	}
	return &MJPEG{url: streamURL, opts: opts, log: opts.Logger.With("driver", "camera", "url", streamURL),
		client: &http.Client{Transport: tr}, status: drivers.Status{State: drivers.StateMissing, Reason: "camera not started"}}
}

// Start connects, asks for want and waits for the first frame.
func (c *MJPEG) Start(ctx context.Context, want Mode) (Mode, error) {
	c.Stop()
	u, err := url.Parse(c.url)
	if err != nil {
		return Mode{}, fmt.Errorf("camera url %q: %w", c.url, err)
	}
	q := u.Query()
	if want.Width > 0 && want.Height > 0 {
		q.Set("resolution", fmt.Sprintf("%dx%d", want.Width, want.Height))
	}
	if want.FPS > 0 {
		q.Set("fps", strconv.Itoa(want.FPS))
	}
	u.RawQuery = q.Encode()

	sctx, cancel := context.WithCancel(context.Background()) // the stream outlives Start's ctx
	req, err := http.NewRequestWithContext(sctx, http.MethodGet, u.String(), nil)
	if err != nil {
		cancel()
		return Mode{}, err
	}
	stop := context.AfterFunc(ctx, cancel) // until the first frame, ctx may abort
	defer stop()
	resp, err := c.client.Do(req)
	if err != nil {
		cancel()
		err = c.fail(err)
		return Mode{}, fmt.Errorf("start camera: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		resp.Body.Close()
		cancel()
		c.setStatus(drivers.Status{State: drivers.StateError, Reason: "camera answered HTTP " + resp.Status})
		return Mode{}, fmt.Errorf("start camera: HTTP %s", resp.Status)
	}
	mt, params, err := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	if err != nil || !strings.HasPrefix(mt, "multipart/") || params["boundary"] == "" {
		resp.Body.Close()
		cancel()
		c.setStatus(drivers.Status{State: drivers.StateError, Reason: "camera sends no MJPEG stream"})
		return Mode{}, fmt.Errorf("start camera: content type %q is no multipart stream", resp.Header.Get("Content-Type"))
	}
	s := &stream{cancel: cancel, done: make(chan struct{}), frames: make(chan Frame, 1)}
	fps := want.FPS
	if v, err := strconv.Atoi(resp.Header.Get("X-Framerate")); err == nil && v > 0 {
		fps = v
	}
	go func() {
		defer close(s.done)
		defer resp.Body.Close()
		s.err = c.read(NewPartReader(resp.Body, params["boundary"], c.opts.MaxFrameBytes), s)
	}()
	// The first frame tells the resolution.
	wait := time.NewTimer(c.opts.FrameTimeout)
	defer wait.Stop()
	select {
	case f := <-s.frames:
		select { // Next returns it, unless a newer one came
		case s.frames <- f:
		default:
		}
		b := f.Image.Bounds()
		s.mode = Mode{Width: b.Dx(), Height: b.Dy(), FPS: fps}
	case <-s.done:
		cancel()
		err := c.fail(s.err)
		return Mode{}, fmt.Errorf("start camera: stream ended before the first frame: %w", err)
	case <-ctx.Done():
		cancel()
		<-s.done
		return Mode{}, fmt.Errorf("start camera: %w", ctxErr(ctx.Err()))
	case <-wait.C:
		cancel()
		<-s.done
		c.setStatus(drivers.Status{State: drivers.StateError, Reason: "camera sends no frames"})
		return Mode{}, fmt.Errorf("start camera: no frame within %v: %w", c.opts.FrameTimeout, drivers.ErrTimeout)
	}
	c.mu.Lock()
	c.run = s
	c.status = drivers.Status{State: drivers.StateOK}
	c.mu.Unlock()
	return s.mode, nil
}

// read decodes parts into frames until the stream ends. A frame that does
// not decode is dropped.
func (c *MJPEG) read(pr *PartReader, s *stream) error {
	var seq uint64
	bad := 0
	for {
		part, err := pr.Next()
		if err != nil {
			return err
		}
		seq++
		img, err := jpeg.Decode(bytes.NewReader(part.Body))
		if err != nil {
			if bad++; bad%30 == 1 {
				c.log.Warn("camera: dropped a frame that does not decode", "err", err, "bad_frames", bad)
			}
			continue
		}
		f := Frame{Image: img, Time: c.opts.Now(), Seq: seq}
		if ts := part.Header.Get("X-Timestamp"); ts != "" {
			if ms, err := strconv.ParseInt(ts, 10, 64); err == nil && ms > 0 {
				f.Time = time.UnixMilli(ms)
			}
		}
		for sent := false; !sent; { // keep only the newest frame; never block
			select {
			case s.frames <- f:
				sent = true
			default:
				select {
				case <-s.frames:
				default:
				}
			}
		}
	}
}

// Next returns the newest frame, waiting for one if needed.
func (c *MJPEG) Next(ctx context.Context) (Frame, error) {
	c.mu.Lock()
	s := c.run
	c.mu.Unlock()
	if s == nil {
		return Frame{}, ErrNotStarted
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.opts.FrameTimeout)
		defer cancel()
	}
	select {
	case f := <-s.frames:
		c.setStatus(drivers.Status{State: drivers.StateOK})
		return f, nil
	case <-s.done:
		select { // a frame that came before the end
		case f := <-s.frames:
			return f, nil
		default:
		}
		err := c.fail(s.err)
		return Frame{}, fmt.Errorf("camera stream ended: %w", err)
	case <-ctx.Done():
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			c.setStatus(drivers.Status{State: drivers.StateDegraded, Reason: "camera frames are late"})
		}
		return Frame{}, fmt.Errorf("next frame: %w", ctxErr(ctx.Err()))
	}
}

// Stop ends the stream.
func (c *MJPEG) Stop() error {
	c.mu.Lock()
	s := c.run
	c.run = nil
	c.mu.Unlock()
	if s != nil {
		s.cancel()
		<-s.done
	}
	return nil
}

// Status is the state the stream was last found in.
func (c *MJPEG) Status() drivers.Status {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.status
}

func (c *MJPEG) setStatus(st drivers.Status) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.status = st
}

// fail records and translates why the connection failed.
func (c *MJPEG) fail(err error) error {
	switch {
	case err == nil:
		err = errors.New("stream closed")
	case errors.Is(err, context.Canceled):
		return err
	}
	var nerr net.Error
	if errors.Is(err, syscall.ECONNREFUSED) || errors.As(err, &nerr) || errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		c.setStatus(drivers.Status{State: drivers.StateMissing, Reason: "camera not reachable at " + c.url + ": check its cable and power"})
		return fmt.Errorf("%w: %v", drivers.ErrDisconnected, err)
	}
	c.setStatus(drivers.Status{State: drivers.StateError, Reason: "camera stream broken: " + err.Error()})
	return err
}

func ctxErr(err error) error {
	if errors.Is(err, context.DeadlineExceeded) {
		return drivers.ErrTimeout
	}
	return err
}
