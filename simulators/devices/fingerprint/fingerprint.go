// Package fingerprint simulates an R30x fingerprint module on a real
// pseudo-terminal: it answers the module's packet protocol (GenImg,
// UpImage with data packets, Img2Tz, VfyPwd, ReadSysPara) with scripted
// fingers — none, a good print, a poor one, or a smudge the sensor cannot
// take — from synthetic ridge patterns. Unplug and Replug pull and put
// back the cable; Endpoint can be a symlink that follows the new
// pseudo-terminal, as /dev/serial/by-id does for a USB adapter.
package fingerprint

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"image"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"

	fp "github.com/kogge-fleet/kogge/drivers/fingerprint"
)

// Finger is what lies on the sensor.
type Finger int

// The fingers of a script.
const (
	NoFinger Finger = iota // GenImg answers "no finger"
	Good                   // a clear print
	Poor                   // a faint, noisy, partial print
	Smudge                 // GenImg answers "failed to take the image"
	Smudged                // an image is taken, but of a smeared print
	Partial                // an image is taken, but of a finger's edge only
)

func (f Finger) String() string {
	switch f {
	case NoFinger:
		return "none"
	case Good:
		return "good"
	case Poor:
		return "poor"
	case Smudge:
		return "smudge"
	case Smudged:
		return "smudged"
	case Partial:
		return "partial"
	}
	return fmt.Sprintf("finger(%d)", int(f))
}

// Step is a part of the script: Finger for Polls image attempts (GenImg);
// Polls 0 means for good. After the last step the last finger stays.
type Step struct {
	Finger Finger
	Polls  int
}

// Options configure the simulator. The zero value means the defaults.
type Options struct {
	// Link, if set, is a symlink kept pointing at the current
	// pseudo-terminal; Endpoint returns it.
	Link string
	// Script of fingers ([{Good 0}]: a good finger at once).
	Script []Step
	// Address and Password of the module (DefaultAddress, 0).
	Address  uint32
	Password uint32
	// Seed varies the synthetic prints (1).
	Seed uint64
	// Logger receives the simulator's log lines (slog.Default()).
	Logger *slog.Logger
}

func (o Options) withDefaults() Options {
	if len(o.Script) == 0 {
		o.Script = []Step{{Finger: Good}}
	}
	if o.Address == 0 {
		o.Address = fp.DefaultAddress
	}
	if o.Seed == 0 {
		o.Seed = 1
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return o
}

// Simulator is a running simulated module.
type Simulator struct {
	opts Options
	log  *slog.Logger
	wg   sync.WaitGroup

	mu       sync.Mutex
	master   *os.File
	slave    *os.File
	path     string
	script   []Step
	polls    int // GenImg attempts in the current step
	buffer   *image.Gray
	silent   bool
	captures int
	last     Finger // the finger of the last image taken
	good     *image.Gray
	poor     *image.Gray
	smudged  *image.Gray
	partial  *image.Gray
	closed   bool
	stop     chan struct{}
}

// Start opens a pseudo-terminal and serves the module on it until Close
// or until ctx ends.
func Start(ctx context.Context, opts Options) (*Simulator, error) {
	opts = opts.withDefaults()
	s := &Simulator{opts: opts, log: opts.Logger.With("sim", "fingerprint"), script: append([]Step(nil), opts.Script...),
		buffer: EmptyImage(fp.SensorWidth, fp.SensorHeight, opts.Seed), stop: make(chan struct{}),
		// Made once, so that answers do not wait for them.
		good:    GoodImage(fp.SensorWidth, fp.SensorHeight, opts.Seed),
		poor:    PoorImage(fp.SensorWidth, fp.SensorHeight, opts.Seed),
		smudged: SmudgedImage(fp.SensorWidth, fp.SensorHeight, opts.Seed),
		partial: PartialImage(fp.SensorWidth, fp.SensorHeight, opts.Seed)}
	if err := s.Replug(); err != nil {
		return nil, err
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		select {
		case <-ctx.Done():
			s.Unplug()
		case <-s.stop:
		}
	}()
	return s, nil
}

// Endpoint is the serial device to give the driver: the symlink if
// Options.Link is set, else the pseudo-terminal.
func (s *Simulator) Endpoint() string {
	if s.opts.Link != "" {
		return s.opts.Link
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.path
}

// SetFinger replaces the script with one finger for good.
func (s *Simulator) SetFinger(f Finger) {
	s.SetScript([]Step{{Finger: f}})
}

// SetScript replaces the script.
func (s *Simulator) SetScript(script []Step) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.script, s.polls = append([]Step(nil), script...), 0
}

// SetSilent makes the module stop answering (or answer again).
func (s *Simulator) SetSilent(silent bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.silent = silent
}

// Inject writes raw bytes into the line, as noise from a loose contact.
func (s *Simulator) Inject(b []byte) error {
	s.mu.Lock()
	m := s.master
	s.mu.Unlock()
	if m == nil {
		return errors.New("fingerprint simulator unplugged")
	}
	_, err := m.Write(b)
	return err
}

// Captures counts the images taken (GenImg with a finger).
func (s *Simulator) Captures() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.captures
}

// Unplug pulls the cable: the pseudo-terminal goes away.
func (s *Simulator) Unplug() {
	s.mu.Lock()
	m, sl := s.master, s.slave
	s.master, s.slave = nil, nil
	s.mu.Unlock()
	if m != nil {
		m.Close()
		sl.Close()
	}
}

// Replug puts the cable back: a new pseudo-terminal (and the link points
// at it).
func (s *Simulator) Replug() error {
	s.Unplug()
	master, slave, path, err := openPTY()
	if err != nil {
		return fmt.Errorf("fingerprint simulator: %w", err)
	}
	if s.opts.Link != "" {
		tmp := s.opts.Link + ".new"
		os.Remove(tmp)
		err := os.Symlink(path, tmp)
		if err == nil {
			err = os.Rename(tmp, s.opts.Link)
		}
		if err != nil {
			master.Close()
			slave.Close()
			return fmt.Errorf("fingerprint simulator: link %s: %w", filepath.Base(s.opts.Link), err)
		}
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		master.Close()
		slave.Close()
		return errors.New("fingerprint simulator closed")
	}
	s.master, s.slave, s.path = master, slave, path
	s.wg.Add(1)
	s.mu.Unlock()
	go func() {
		defer s.wg.Done()
		s.serve(master)
	}()
	return nil
}

// Close unplugs the module and waits for its goroutines.
func (s *Simulator) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	s.mu.Unlock()
	close(s.stop)
	s.Unplug()
	s.wg.Wait()
	if s.opts.Link != "" {
		os.Remove(s.opts.Link)
	}
	return nil
}

// serve answers commands on one pseudo-terminal until it is closed.
func (s *Simulator) serve(master *os.File) {
	br := bufio.NewReader(master)
	for {
		p, err := fp.ReadPacket(br)
		if err != nil {
			var pe *os.PathError
			if errors.As(err, &pe) || errors.Is(err, os.ErrClosed) || errors.Is(err, io.EOF) {
				return // unplugged
			}
			s.log.Debug("fingerprint simulator: bad packet", "err", err)
			if errors.Is(err, fp.ErrChecksum) {
				s.send(master, fp.PIDAck, []byte{fp.CodeReceiveError})
			}
			continue
		}
		if p.Address != s.opts.Address || p.PID != fp.PIDCommand || len(p.Payload) == 0 {
			continue
		}
		s.mu.Lock()
		silent := s.silent
		s.mu.Unlock()
		if silent {
			continue
		}
		s.handle(master, p.Payload)
	}
}

func (s *Simulator) handle(w *os.File, cmd []byte) {
	switch cmd[0] {
	case fp.InsVfyPwd:
		if len(cmd) != 5 {
			s.send(w, fp.PIDAck, []byte{fp.CodeReceiveError})
			return
		}
		if binary.BigEndian.Uint32(cmd[1:]) != s.opts.Password {
			s.send(w, fp.PIDAck, []byte{fp.CodeWrongPassword})
			return
		}
		s.send(w, fp.PIDAck, []byte{fp.CodeOK})
	case fp.InsReadSysPara:
		b := []byte{fp.CodeOK}
		b = binary.BigEndian.AppendUint16(b, 0)    // status register
		b = binary.BigEndian.AppendUint16(b, 9)    // system identifier
		b = binary.BigEndian.AppendUint16(b, 1000) // library size
		b = binary.BigEndian.AppendUint16(b, 3)    // security level
		b = binary.BigEndian.AppendUint32(b, s.opts.Address)
		b = binary.BigEndian.AppendUint16(b, 2) // data packets of 128 bytes
		b = binary.BigEndian.AppendUint16(b, 6) // 57600 baud
		s.send(w, fp.PIDAck, b)
	case fp.InsGenImg:
		s.send(w, fp.PIDAck, []byte{s.genImg()})
	case fp.InsImg2Tz:
		s.mu.Lock()
		kind := s.last
		s.mu.Unlock()
		code := byte(fp.CodeOK)
		if kind == Poor || kind == Smudged || kind == Partial {
			code = fp.CodeTooFewPoints
		}
		s.send(w, fp.PIDAck, []byte{code})
	case fp.InsUpImage:
		s.mu.Lock()
		data := fp.PackImage(s.buffer)
		s.mu.Unlock()
		if !s.send(w, fp.PIDAck, []byte{fp.CodeOK}) {
			return
		}
		const chunk = 128
		for off := 0; off < len(data); off += chunk {
			end := min(off+chunk, len(data))
			pid := byte(fp.PIDData)
			if end == len(data) {
				pid = fp.PIDEnd
			}
			if !s.send(w, pid, data[off:end]) {
				return
			}
		}
	default:
		s.send(w, fp.PIDAck, []byte{fp.CodeReceiveError})
	}
}

// genImg runs one image attempt through the script.
func (s *Simulator) genImg() byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	step := s.script[0]
	s.polls++
	if step.Polls > 0 && s.polls >= step.Polls && len(s.script) > 1 {
		s.script, s.polls = s.script[1:], 0
	}
	switch step.Finger {
	case Good:
		s.buffer = s.good
	case Poor:
		s.buffer = s.poor
	case Smudged:
		s.buffer = s.smudged
	case Partial:
		s.buffer = s.partial
	case Smudge:
		return fp.CodeImageFailed
	default:
		return fp.CodeNoFinger
	}
	s.captures++
	s.last = step.Finger
	return fp.CodeOK
}

// send writes one packet; false when the line is gone.
func (s *Simulator) send(w *os.File, pid byte, payload []byte) bool {
	b, err := fp.Packet{Address: s.opts.Address, PID: pid, Payload: payload}.Encode()
	if err != nil {
		s.log.Error("fingerprint simulator: encode", "err", err)
		return false
	}
	_, err = w.Write(b)
	return err == nil
}
