// Package gnss simulates a GNSS receiver that writes NMEA 0183 to a serial
// line, for the tests of drivers/gnss and for manual runs of the handheld.
//
// The receiver is a pseudo-terminal: the driver opens Endpoint() (a stable
// symbolic link to the current /dev/pts/N, like udev's /dev/serial/by-id
// links) with go.bug.st/serial as it would open real hardware. Once per
// epoch the simulator writes RMC, GGA and GSA for a position moving along
// a route at a constant speed; one epoch is one simulated second, written
// every Options.Interval of real time (a time-lapse when shorter).
//
// Faults, scripted by epoch in Options.Script or triggered by the methods:
// loss of fix (RMC "V", GGA quality 0, GSA mode 1), garbage lines (bad
// checksums, binary noise, overlong lines), and unplugging: the pty is
// closed and the link removed; on replug a new pty appears behind the same
// link.
package gnss

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/kogge-fleet/kogge/simulators/devices/ptyline"
)

// Point is a WGS 84 position in degrees.
type Point struct{ Lat, Lon float64 }

// DefaultRoute is a walk around Bremen's market square, about 400 m.
func DefaultRoute() []Point {
	return []Point{
		{53.07585, 8.80717}, {53.07626, 8.80824}, {53.07560, 8.80930},
		{53.07487, 8.80856}, {53.07520, 8.80740},
	}
}

// EventKind is a scripted fault.
type EventKind uint8

const (
	// LoseFix reports no fix for Event.Epochs epochs.
	LoseFix EventKind = iota + 1
	// Garbage writes Event.Text (or a default mix of noise) as lines.
	Garbage
	// Unplug removes the device for Event.Epochs epochs, then replugs it.
	Unplug
)

// Event is a fault at an epoch (0 is the first epoch).
type Event struct {
	Epoch  int
	Kind   EventKind
	Epochs int
	Text   string
}

// Options configure a simulator. The zero value is usable.
type Options struct {
	// Route is walked at Speed and starts over at its end. Default
	// DefaultRoute().
	Route []Point
	// Speed is metres per second. Default 1.4 (walking).
	Speed float64
	// Interval is the real time between epochs. Default 1 s.
	Interval time.Duration
	// Manual disables the clock: epochs are written only by Step.
	Manual bool
	// Start is the simulated UTC time of epoch 0. Default: now, to the
	// second.
	Start time.Time
	// Satellites and HDOP describe the fix. Defaults 9 and 0.9.
	Satellites int
	HDOP       float64
	// Talker is the NMEA talker id. Default "GN" (multi-constellation).
	Talker string
	// Script lists faults by epoch.
	Script []Event
	// Dir holds the device link. Default: a new temporary directory,
	// removed by Close.
	Dir string
	// Name is the link's name in Dir. Default "gnss0".
	Name string
	// Log receives what the simulator does. Default: discard.
	Log *slog.Logger
}

func (o *Options) setDefaults() {
	if len(o.Route) == 0 {
		o.Route = DefaultRoute()
	}
	if o.Speed == 0 {
		o.Speed = 1.4
	}
	if o.Interval == 0 {
		o.Interval = time.Second
	}
	if o.Start.IsZero() {
		o.Start = time.Now().UTC().Truncate(time.Second)
	}
	if o.Satellites == 0 {
		o.Satellites = 9
	}
	if o.HDOP == 0 {
		o.HDOP = 0.9
	}
	if o.Talker == "" {
		o.Talker = "GN"
	}
	if o.Name == "" {
		o.Name = "gnss0"
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
}

// Validate reports options that cannot work.
func (o *Options) Validate() error {
	for _, p := range o.Route {
		if math.Abs(p.Lat) > 90 || math.Abs(p.Lon) > 180 {
			return fmt.Errorf("route point %v is not a position", p)
		}
	}
	switch {
	case o.Speed < 0 || o.Interval < 0:
		return errors.New("speed and interval must not be negative")
	case o.Satellites < 0 || o.Satellites > 12:
		return fmt.Errorf("%d satellites: GSA lists 0 to 12", o.Satellites)
	case len(o.Talker) != 2:
		return fmt.Errorf("talker %q is not two letters", o.Talker)
	case strings.ContainsRune(o.Name, '/'):
		return fmt.Errorf("name %q must not contain a slash", o.Name)
	}
	return nil
}

// Simulator is a running receiver.
type Simulator struct {
	opts    Options
	log     *slog.Logger
	link    string
	tempDir string // removed by Close, if we made it

	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu        sync.Mutex
	line      *ptyline.Line // nil while unplugged
	epoch     int           // next epoch to write
	noFix     int           // epochs left without fix
	replugIn  int           // epochs until replug, while unplugged by the script
	closed    bool
	writeErrs int
}

// Start plugs in a receiver. It runs until ctx is done or Close.
func Start(ctx context.Context, opts Options) (*Simulator, error) {
	opts.setDefaults()
	if err := opts.Validate(); err != nil {
		return nil, fmt.Errorf("gnss simulator: %w", err)
	}
	s := &Simulator{opts: opts, log: opts.Log}
	if opts.Dir == "" {
		dir, err := os.MkdirTemp("", "kogge-gnss-")
		if err != nil {
			return nil, fmt.Errorf("gnss simulator: %w", err)
		}
		s.tempDir, opts.Dir = dir, dir
	}
	s.link = filepath.Join(opts.Dir, opts.Name)
	if err := s.plug(); err != nil {
		s.cleanup()
		return nil, fmt.Errorf("gnss simulator: %w", err)
	}
	ctx, s.cancel = context.WithCancel(ctx)
	if !opts.Manual {
		s.wg.Add(1)
		go s.clock(ctx)
	}
	s.wg.Add(1)
	go func() { // Close on ctx, so that callers may rely on either
		defer s.wg.Done()
		<-ctx.Done()
		s.unplugLocked(true)
	}()
	return s, nil
}

// Endpoint is the device path to open: a link that stays the same across
// unplug and replug.
func (s *Simulator) Endpoint() string { return s.link }

// Device is the current /dev/pts path, "" while unplugged.
func (s *Simulator) Device() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.line == nil {
		return ""
	}
	return s.line.Path
}

// Close unplugs the receiver for good and waits for its goroutines.
func (s *Simulator) Close() error {
	s.cancel()
	s.wg.Wait()
	s.cleanup()
	return nil
}

func (s *Simulator) cleanup() {
	os.Remove(s.link)
	if s.tempDir != "" {
		os.RemoveAll(s.tempDir)
	}
}

func (s *Simulator) clock(ctx context.Context) {
	defer s.wg.Done()
	t := time.NewTicker(s.opts.Interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			s.step()
		}
	}
}

// Step writes the next epoch now. With Options.Manual it is the only clock.
func (s *Simulator) Step() { s.step() }

// Epoch returns the number of epochs written (or skipped while unplugged).
func (s *Simulator) Epoch() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.epoch
}

// LoseFix makes the next n epochs report no fix.
func (s *Simulator) LoseFix(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.noFix = n
}

// Garbage writes text as it is, or a mix of noise if text is empty.
func (s *Simulator) Garbage(text string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.writeLocked(garbage(text))
}

// Unplug removes the device: the pty closes (the driver's reads fail) and
// the link disappears.
func (s *Simulator) Unplug() {
	s.unplugLocked(false)
}

func (s *Simulator) unplugLocked(final bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if final {
		s.closed = true
	}
	if s.line == nil {
		return
	}
	os.Remove(s.link)
	s.line.Close()
	s.line = nil
	s.log.Info("gnss simulator unplugged")
}

// Replug plugs the device in again behind the same link, on a new pty.
func (s *Simulator) Replug() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.replugIn = 0
	if s.closed {
		return errors.New("gnss simulator is closed")
	}
	if s.line != nil {
		return nil
	}
	return s.plugLocked()
}

func (s *Simulator) plug() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.plugLocked()
}

func (s *Simulator) plugLocked() error {
	l, err := ptyline.Open()
	if err != nil {
		return err
	}
	if err := ptyline.PointLink(s.link, l.Path); err != nil {
		l.Close()
		return err
	}
	s.line = l
	s.log.Info("gnss simulator plugged in", "link", s.link, "device", l.Path)
	return nil
}

// Truth returns the simulated position of an epoch.
func (s *Simulator) Truth(epoch int) Point {
	p, _ := s.at(float64(epoch) * s.opts.Speed)
	return p
}

func (s *Simulator) step() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return
	}
	k := s.epoch
	s.epoch++
	for _, e := range s.opts.Script {
		if e.Epoch != k {
			continue
		}
		switch e.Kind {
		case LoseFix:
			s.noFix = e.Epochs
		case Garbage:
			s.writeLocked(garbage(e.Text))
		case Unplug:
			if s.line != nil {
				os.Remove(s.link)
				s.line.Close()
				s.line = nil
				s.replugIn = max(e.Epochs, 1)
				s.log.Info("gnss simulator unplugged by script", "epoch", k)
			}
		}
	}
	if s.line == nil {
		if s.replugIn > 0 {
			s.replugIn--
			if s.replugIn == 0 {
				if err := s.plugLocked(); err != nil {
					s.log.Error("gnss simulator replug failed", "err", err)
				}
			}
		}
		return
	}
	t := s.opts.Start.Add(time.Duration(k) * time.Second)
	if s.noFix > 0 {
		s.noFix--
		s.writeLocked(noFixEpoch(s.opts.Talker, t))
		return
	}
	pos, course := s.at(float64(k) * s.opts.Speed)
	s.writeLocked(fixEpoch(s.opts.Talker, t, pos, s.opts.Speed, course, s.opts.Satellites, s.opts.HDOP))
}

// writeLocked writes to the line without ever blocking for long.
func (s *Simulator) writeLocked(b []byte) {
	if s.line == nil {
		return
	}
	s.line.DropUnread(2048)
	s.line.Master.SetWriteDeadline(time.Now().Add(time.Second))
	if _, err := s.line.Master.Write(b); err != nil {
		s.writeErrs++
		if s.writeErrs == 1 {
			s.log.Warn("gnss simulator write failed", "err", err)
		}
	}
}

// at returns the position and course after walking dist metres along the
// closed route.
func (s *Simulator) at(dist float64) (Point, float64) {
	r := s.opts.Route
	if len(r) == 1 {
		return r[0], 0
	}
	total := 0.0
	for i := range r {
		total += metres(r[i], r[(i+1)%len(r)])
	}
	if total == 0 {
		return r[0], 0
	}
	dist = math.Mod(dist, total)
	for i := range r {
		a, b := r[i], r[(i+1)%len(r)]
		d := metres(a, b)
		if dist <= d && d > 0 {
			f := dist / d
			return Point{a.Lat + f*(b.Lat-a.Lat), a.Lon + f*(b.Lon-a.Lon)}, bearing(a, b)
		}
		dist -= d
	}
	return r[0], 0
}

const earthRadius = 6371000.0

// metres is the distance between two nearby points (equirectangular).
func metres(a, b Point) float64 {
	x := rad(b.Lon-a.Lon) * math.Cos(rad(a.Lat+b.Lat)/2)
	y := rad(b.Lat - a.Lat)
	return math.Hypot(x, y) * earthRadius
}

func bearing(a, b Point) float64 {
	x := rad(b.Lon-a.Lon) * math.Cos(rad(a.Lat+b.Lat)/2)
	y := rad(b.Lat - a.Lat)
	deg := math.Atan2(x, y) * 180 / math.Pi
	return math.Mod(deg+360, 360)
}

func rad(deg float64) float64 { return deg * math.Pi / 180 }
