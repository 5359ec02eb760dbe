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
	"sync"
	"syscall"
	"time"

	"go.bug.st/serial"

	"github.com/kogge-fleet/kogge/drivers"
)

// Options tune [R30x]. The zero value means the defaults.
type Options struct {
	// Baud rate of the module (57600, the factory setting).
	Baud int
	// Address of the module (DefaultAddress).
	Address uint32
	// Password of the module (0, the factory setting).
	Password uint32
	// Width and Height of the sensor image (256 × 288).
	Width, Height int
	// PPI is the sensor's resolution (500).
	PPI int
	// ReplyTimeout bounds the wait for each packet from the module (2 s).
	ReplyTimeout time.Duration
	// PollInterval is the pause between attempts to take an image while
	// no finger is on the sensor (100 ms).
	PollInterval time.Duration
	// CaptureTimeout bounds Capture when ctx has no deadline (10 s).
	CaptureTimeout time.Duration
	// Logger receives the driver's log lines (slog.Default()).
	Logger *slog.Logger
	// Now is the clock (time.Now).
	Now func() time.Time
}

func (o Options) withDefaults() Options {
	if o.Baud == 0 {
		o.Baud = 57600
	}
	if o.Address == 0 {
		o.Address = DefaultAddress
	}
	if o.Width == 0 {
		o.Width = SensorWidth
	}
	if o.Height == 0 {
		o.Height = SensorHeight
	}
	if o.PPI == 0 {
		o.PPI = SensorPPI
	}
	if o.ReplyTimeout == 0 {
		o.ReplyTimeout = 2 * time.Second
	}
	if o.PollInterval == 0 {
		o.PollInterval = 100 * time.Millisecond
	}
	if o.CaptureTimeout == 0 {
		o.CaptureTimeout = 10 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return o
}

// Validate checks the options after defaults are filled in.
func (o Options) Validate() error {
	switch {
	case o.Baud%9600 != 0 || o.Baud < 9600 || o.Baud > 115200:
		return fmt.Errorf("baud rate %d: the modules run at 9600 × 1 to 12", o.Baud)
	case o.Width <= 0 || o.Height <= 0 || o.Width%2 != 0:
		return fmt.Errorf("image size %d×%d: the width must be even and positive", o.Width, o.Height)
	case o.ReplyTimeout <= 0 || o.PollInterval <= 0 || o.CaptureTimeout <= 0:
		return errors.New("reply timeout, poll interval and capture timeout must be positive")
	}
	return nil
}

// R30x drives a fingerprint module of the R30x family on a serial port. It
// opens the port lazily and again after the module was unplugged.
type R30x struct {
	path string
	opts Options
	log  *slog.Logger

	mu     sync.Mutex // one exchange at a time
	port   serial.Port
	br     *bufio.Reader
	stmu   sync.Mutex // guards status alone: Status must not wait for a capture
	status drivers.Status
	closed bool
}

// Open opens the module on the serial port at path and checks that it
// answers (password, system parameters).
func Open(ctx context.Context, path string, opts Options) (*R30x, error) {
	opts = opts.withDefaults()
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	s := &R30x{path: path, opts: opts, log: opts.Logger.With("driver", "fingerprint", "port", path)}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.connectLocked(ctx); err != nil {
		return nil, err
	}
	return s, nil
}

// errReadTimeout marks a read that ran into the port's timeout.
var errReadTimeout = errors.New("read timeout")

// errDeadline is a read cut short by the caller's deadline: not the
// module's fault.
var errDeadline = fmt.Errorf("the caller's deadline passed: %w", drivers.ErrTimeout)

type portReader struct{ port serial.Port }

func (r portReader) Read(p []byte) (int, error) {
	n, err := r.port.Read(p)
	if n == 0 && err == nil {
		return 0, errReadTimeout
	}
	return n, err
}

func (s *R30x) connectLocked(ctx context.Context) error {
	if s.closed {
		return errors.New("fingerprint scanner closed")
	}
	port, err := serial.Open(s.path, &serial.Mode{BaudRate: s.opts.Baud, DataBits: 8, Parity: serial.NoParity, StopBits: serial.OneStopBit})
	if err != nil {
		s.setStatus(drivers.Status{State: drivers.StateMissing, Reason: "fingerprint scanner not connected at " + s.path + ": plug it in"})
		return fmt.Errorf("open fingerprint scanner at %s: %w: %v", s.path, drivers.ErrDisconnected, err)
	}
	s.port, s.br = port, bufio.NewReaderSize(portReader{port}, 1024)
	pw := binary.BigEndian.AppendUint32([]byte{InsVfyPwd}, s.opts.Password)
	ack, err := s.commandLocked(ctx, pw)
	if err != nil {
		return fmt.Errorf("fingerprint scanner at %s: check password: %w", s.path, err)
	}
	switch ack.code {
	case CodeOK:
	case CodeWrongPassword:
		s.setStatus(drivers.Status{State: drivers.StateError, Reason: "fingerprint scanner refuses the configured password"})
		return fmt.Errorf("fingerprint scanner at %s: wrong module password", s.path)
	default:
		return s.unexpectedLocked("check password", ack.code)
	}
	ack, err = s.commandLocked(ctx, []byte{InsReadSysPara})
	if err != nil {
		return fmt.Errorf("fingerprint scanner at %s: read parameters: %w", s.path, err)
	}
	if ack.code != CodeOK || len(ack.data) < 16 {
		return s.unexpectedLocked("read parameters", ack.code)
	}
	s.log.Debug("fingerprint scanner ready", "packet_size", 32<<binary.BigEndian.Uint16(ack.data[12:14]),
		"baud", 9600*int(binary.BigEndian.Uint16(ack.data[14:16])))
	s.setStatus(drivers.Status{State: drivers.StateOK})
	return nil
}

// ack is a module's acknowledgement.
type ack struct {
	code byte
	data []byte
}

// commandLocked sends one command and reads its acknowledgement.
func (s *R30x) commandLocked(ctx context.Context, payload []byte) (ack, error) {
	if err := ctx.Err(); err != nil {
		return ack{}, ctxErr(err)
	}
	if s.port == nil {
		if err := s.connectLocked(ctx); err != nil {
			return ack{}, err
		}
	}
	b, err := Packet{Address: s.opts.Address, PID: PIDCommand, Payload: payload}.Encode()
	if err != nil {
		return ack{}, err
	}
	// Whatever is still in the input is stale: an answer that came late.
	s.port.ResetInputBuffer()
	s.br.Reset(portReader{s.port})
	if _, err := s.port.Write(b); err != nil {
		return ack{}, s.lostLocked(err)
	}
	p, err := s.readLocked(ctx)
	if err != nil {
		return ack{}, err
	}
	if p.PID != PIDAck || len(p.Payload) == 0 {
		s.setStatus(drivers.Status{State: drivers.StateError, Reason: fmt.Sprintf("fingerprint scanner answered packet %#02x to a command", p.PID)})
		return ack{}, fmt.Errorf("fingerprint scanner answered packet %#02x of %d bytes to a command", p.PID, len(p.Payload))
	}
	return ack{code: p.Payload[0], data: p.Payload[1:]}, nil
}

// readLocked reads one packet within the reply timeout (or ctx's deadline).
func (s *R30x) readLocked(ctx context.Context) (Packet, error) {
	timeout, byCaller := s.opts.ReplyTimeout, false
	if d, ok := ctx.Deadline(); ok && time.Until(d) < timeout {
		timeout, byCaller = max(time.Until(d), time.Millisecond), true
	}
	if err := s.port.SetReadTimeout(timeout); err != nil {
		return Packet{}, s.lostLocked(err)
	}
	p, err := ReadPacket(s.br)
	switch {
	case errors.Is(err, errReadTimeout):
		if byCaller || ctx.Err() != nil {
			return Packet{}, errDeadline
		}
		s.setStatus(drivers.Status{State: drivers.StateError, Reason: "fingerprint scanner does not answer: check its cable and power"})
		return Packet{}, fmt.Errorf("fingerprint scanner at %s: no answer within %v: %w", s.path, timeout, drivers.ErrTimeout)
	case errors.Is(err, ErrChecksum), errors.Is(err, errGarbage):
		s.setStatus(drivers.Status{State: drivers.StateDegraded, Reason: "fingerprint scanner line is noisy: " + err.Error()})
		return Packet{}, fmt.Errorf("fingerprint scanner at %s: %w", s.path, err)
	case err != nil:
		var pe *serial.PortError
		if errors.As(err, &pe) || isIOError(err) {
			return Packet{}, s.lostLocked(err)
		}
		return Packet{}, fmt.Errorf("fingerprint scanner at %s: %w", s.path, err)
	}
	if p.Address != s.opts.Address {
		return Packet{}, fmt.Errorf("fingerprint scanner at %s: packet from address %#08x, want %#08x", s.path, p.Address, s.opts.Address)
	}
	return p, nil
}

// lostLocked closes a port whose device went away; the next call opens it
// again.
func (s *R30x) lostLocked(err error) error {
	if s.port != nil {
		s.port.Close()
		s.port, s.br = nil, nil
	}
	s.setStatus(drivers.Status{State: drivers.StateMissing, Reason: "fingerprint scanner unplugged from " + s.path + ": plug it in"})
	s.log.Warn("fingerprint scanner lost", "err", err)
	return fmt.Errorf("fingerprint scanner at %s: %w: %v", s.path, drivers.ErrDisconnected, err)
}

func (s *R30x) unexpectedLocked(what string, code byte) error {
	s.setStatus(drivers.Status{State: drivers.StateError, Reason: fmt.Sprintf("fingerprint scanner answered code %#02x to %s", code, what)})
	return fmt.Errorf("fingerprint scanner at %s: %s: confirmation code %#02x", s.path, what, code)
}

// genImgLocked asks the module to take an image.
func (s *R30x) genImgLocked(ctx context.Context) (byte, error) {
	a, err := s.commandLocked(ctx, []byte{InsGenImg})
	if err != nil {
		return 0, err
	}
	switch a.code {
	case CodeOK, CodeNoFinger, CodeImageFailed:
		s.setStatus(drivers.Status{State: drivers.StateOK})
		return a.code, nil
	}
	return 0, s.unexpectedLocked("take an image", a.code)
}

// FingerPresent takes an image to see whether a finger is on the sensor.
func (s *R30x) FingerPresent(ctx context.Context) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	code, err := s.genImgLocked(ctx)
	if err != nil {
		return false, fmt.Errorf("detect a finger: %w", err)
	}
	return code != CodeNoFinger, nil
}

// Capture waits for a finger, takes the image and uploads it.
func (s *R30x) Capture(ctx context.Context) (Image, error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, s.opts.CaptureTimeout)
		defer cancel()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	poll := time.NewTimer(0)
	defer poll.Stop()
	<-poll.C
	for {
		code, err := s.genImgLocked(ctx)
		if errors.Is(err, errDeadline) || (errors.Is(err, drivers.ErrTimeout) && ctx.Err() != nil) {
			return Image{}, fmt.Errorf("capture: %w: %w", ErrNoFinger, drivers.ErrTimeout)
		}
		if err != nil {
			return Image{}, fmt.Errorf("capture: %w", err)
		}
		if code == CodeOK {
			break
		}
		if code == CodeImageFailed {
			return Image{}, fmt.Errorf("capture: %w: put the finger flat on the sensor and try again", ErrImageFailed)
		}
		poll.Reset(s.opts.PollInterval)
		select {
		case <-poll.C:
		case <-ctx.Done():
			return Image{}, fmt.Errorf("capture: %w: %w", ErrNoFinger, ctxErr(ctx.Err()))
		}
	}
	taken := s.opts.Now()
	g, err := s.uploadLocked(ctx)
	if err != nil {
		return Image{}, fmt.Errorf("capture: upload the image: %w", err)
	}
	return Image{Gray: g, PPI: s.opts.PPI, Time: taken}, nil
}

// uploadLocked reads the image buffer: an acknowledgement, then data
// packets up to an end packet.
func (s *R30x) uploadLocked(ctx context.Context) (*image.Gray, error) {
	a, err := s.commandLocked(ctx, []byte{InsUpImage})
	if err != nil {
		return nil, err
	}
	if a.code != CodeOK {
		return nil, s.unexpectedLocked("upload the image", a.code)
	}
	want := s.opts.Width * s.opts.Height / 2
	data := make([]byte, 0, want)
	for {
		p, err := s.readLocked(ctx)
		if err != nil {
			return nil, err
		}
		if p.PID != PIDData && p.PID != PIDEnd {
			return nil, fmt.Errorf("packet %#02x inside the image data", p.PID)
		}
		if len(data)+len(p.Payload) > want {
			return nil, fmt.Errorf("image data longer than the %d bytes of a %d×%d image", want, s.opts.Width, s.opts.Height)
		}
		data = append(data, p.Payload...)
		if p.PID == PIDEnd {
			break
		}
	}
	return UnpackImage(data, s.opts.Width, s.opts.Height)
}

// Status is the state the last exchange found.
func (s *R30x) Status() drivers.Status {
	s.stmu.Lock()
	defer s.stmu.Unlock()
	return s.status
}

func (s *R30x) setStatus(st drivers.Status) {
	s.stmu.Lock()
	defer s.stmu.Unlock()
	s.status = st
}

// Close closes the serial port.
func (s *R30x) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	if s.port == nil {
		return nil
	}
	err := s.port.Close()
	s.port, s.br = nil, nil
	return err
}

func ctxErr(err error) error {
	if errors.Is(err, context.DeadlineExceeded) {
		return drivers.ErrTimeout
	}
	return err
}

// isIOError reports errors of a device that went away.
func isIOError(err error) bool {
	return errors.Is(err, syscall.EIO) || errors.Is(err, syscall.ENXIO) || errors.Is(err, syscall.EBADF) ||
		errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF)
}
