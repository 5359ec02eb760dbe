//go:build linux

package camera

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"image"
	"image/jpeg"
	"log/slog"
	"sync"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/kogge-fleet/kogge/drivers"
)

// V4L2 reads a Video4Linux2 capture device (/dev/videoN): it sets the
// format (MJPEG if the device offers it, else YUYV) at the size nearest to
// the wish (the driver picks it), asks for the frame rate, and streams
// through four memory-mapped buffers. Only 64-bit little-endian Linux
// (amd64, arm64) is supported: the ioctl structures below have its layout.
//
// This machine has no video device, so the code is tested only for its
// structure layouts, ioctl numbers and pixel conversion; a device test
// runs when KOGGE_TEST_V4L2 names a device.
type V4L2 struct {
	path string
	opts V4L2Options
	log  *slog.Logger

	mu     sync.Mutex
	fd     int // -1 when closed
	bufs   [][]byte
	format uint32
	mode   Mode
	seq    uint64
	stmu   sync.Mutex // guards status alone: Status must not wait for a capture
	status drivers.Status
}

// V4L2Options tune [V4L2]. The zero value means the defaults.
type V4L2Options struct {
	// FrameTimeout bounds Next when ctx has no deadline (5 s).
	FrameTimeout time.Duration
	// Buffers is the number of mapped buffers (4).
	Buffers int
	// Logger receives the driver's log lines (slog.Default()).
	Logger *slog.Logger
	// Now is the clock (time.Now).
	Now func() time.Time
}

func (o V4L2Options) withDefaults() V4L2Options {
	if o.FrameTimeout == 0 {
		o.FrameTimeout = 5 * time.Second
	}
	if o.Buffers == 0 {
		o.Buffers = 4
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return o
}

// NewV4L2 returns a camera for the device at path; it opens it on Start.
func NewV4L2(path string, opts V4L2Options) *V4L2 {
	opts = opts.withDefaults()
	return &V4L2{path: path, opts: opts, log: opts.Logger.With("driver", "camera", "device", path), fd: -1,
		status: drivers.Status{State: drivers.StateMissing, Reason: "camera not started"}}
}

// Pixel formats (fourcc) and constants from linux/videodev2.h.
const (
	pixMJPEG = 'M' | 'J'<<8 | 'P'<<16 | 'G'<<24
	pixYUYV  = 'Y' | 'U'<<8 | 'Y'<<16 | 'V'<<24

	bufTypeVideoCapture = 1
	memoryMmap          = 1
	fieldNone           = 1
	capVideoCapture     = 0x00000001
	capStreaming        = 0x04000000
	capDeviceCaps       = 0x80000000
)

// ioctl request numbers: _IOC(dir, 'V', nr, size).
func ioc(dir, nr, size uintptr) uintptr { return dir<<30 | size<<16 | 'V'<<8 | nr }

const (
	iocWrite = 1
	iocRead  = 2
)

var (
	vidiocQueryCap  = ioc(iocRead, 0, unsafe.Sizeof(v4l2Capability{}))
	vidiocEnumFmt   = ioc(iocRead|iocWrite, 2, unsafe.Sizeof(v4l2FmtDesc{}))
	vidiocSFmt      = ioc(iocRead|iocWrite, 5, unsafe.Sizeof(v4l2Format{}))
	vidiocReqBufs   = ioc(iocRead|iocWrite, 8, unsafe.Sizeof(v4l2RequestBuffers{}))
	vidiocQueryBuf  = ioc(iocRead|iocWrite, 9, unsafe.Sizeof(v4l2Buffer{}))
	vidiocQBuf      = ioc(iocRead|iocWrite, 15, unsafe.Sizeof(v4l2Buffer{}))
	vidiocDQBuf     = ioc(iocRead|iocWrite, 17, unsafe.Sizeof(v4l2Buffer{}))
	vidiocStreamOn  = ioc(iocWrite, 18, unsafe.Sizeof(int32(0)))
	vidiocStreamOff = ioc(iocWrite, 19, unsafe.Sizeof(int32(0)))
	vidiocSParm     = ioc(iocRead|iocWrite, 22, unsafe.Sizeof(v4l2StreamParm{}))
)

type v4l2Capability struct {
	Driver       [16]byte
	Card         [32]byte
	BusInfo      [32]byte
	Version      uint32
	Capabilities uint32
	DeviceCaps   uint32
	Reserved     [3]uint32
}

type v4l2FmtDesc struct {
	Index       uint32
	Type        uint32
	Flags       uint32
	Description [32]byte
	PixelFormat uint32
	MbusCode    uint32
	Reserved    [3]uint32
}

type v4l2PixFormat struct {
	Width        uint32
	Height       uint32
	PixelFormat  uint32
	Field        uint32
	BytesPerLine uint32
	SizeImage    uint32
	Colorspace   uint32
	Priv         uint32
	Flags        uint32
	YCbCrEnc     uint32
	Quantization uint32
	XferFunc     uint32
}

// v4l2Format: the union is 200 bytes, 8-aligned on 64-bit (v4l2_window
// holds pointers), so 4 bytes of padding follow the type.
type v4l2Format struct {
	Type uint32
	_    uint32
	Pix  v4l2PixFormat
	_    [200 - 48]byte
}

type v4l2RequestBuffers struct {
	Count        uint32
	Type         uint32
	Memory       uint32
	Capabilities uint32
	Flags        uint8
	Reserved     [3]uint8
}

type v4l2Timecode struct {
	Type     uint32
	Flags    uint32
	Frames   uint8
	Seconds  uint8
	Minutes  uint8
	Hours    uint8
	Userbits [4]uint8
}

// v4l2Buffer on 64-bit: the timeval is 8-aligned, the memory union is an
// offset (u32), a user pointer or a planes pointer (8 bytes).
type v4l2Buffer struct {
	Index     uint32
	Type      uint32
	BytesUsed uint32
	Flags     uint32
	Field     uint32
	_         uint32
	Timestamp unix.Timeval
	Timecode  v4l2Timecode
	Sequence  uint32
	Memory    uint32
	Offset    uint64 // m.offset in the low half on little-endian
	Length    uint32
	Reserved2 uint32
	RequestFD int32
	_         uint32
}

type v4l2Fract struct{ Numerator, Denominator uint32 }

type v4l2CaptureParm struct {
	Capability   uint32
	CaptureMode  uint32
	TimePerFrame v4l2Fract
	ExtendedMode uint32
	ReadBuffers  uint32
	Reserved     [4]uint32
}

type v4l2StreamParm struct {
	Type    uint32
	Capture v4l2CaptureParm
	_       [200 - 40]byte
}

func ioctl(fd int, req uintptr, arg unsafe.Pointer) error {
	for {
		_, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), req, uintptr(arg))
		switch e {
		case 0:
			return nil
		case unix.EINTR:
			continue
		}
		return e
	}
}

// Start opens the device, sets the format and starts streaming.
func (c *V4L2) Start(ctx context.Context, want Mode) (Mode, error) {
	c.Stop()
	if err := ctx.Err(); err != nil {
		return Mode{}, ctxErr(err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	fd, err := unix.Open(c.path, unix.O_RDWR|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		c.setStatus(drivers.Status{State: drivers.StateMissing, Reason: "no camera at " + c.path + ": plug it in"})
		return Mode{}, fmt.Errorf("open camera %s: %w: %v", c.path, drivers.ErrDisconnected, err)
	}
	m, err := c.setup(fd, want)
	if err != nil {
		c.teardownLocked(fd)
		c.setStatus(drivers.Status{State: drivers.StateError, Reason: err.Error()})
		return Mode{}, fmt.Errorf("start camera %s: %w", c.path, err)
	}
	c.fd, c.mode, c.seq = fd, m, 0
	c.setStatus(drivers.Status{State: drivers.StateOK})
	return m, nil
}

func (c *V4L2) setup(fd int, want Mode) (Mode, error) {
	var vcap v4l2Capability
	if err := ioctl(fd, vidiocQueryCap, unsafe.Pointer(&vcap)); err != nil {
		return Mode{}, fmt.Errorf("query capabilities: %w", err)
	}
	caps := vcap.Capabilities
	if caps&capDeviceCaps != 0 {
		caps = vcap.DeviceCaps
	}
	if caps&capVideoCapture == 0 || caps&capStreaming == 0 {
		return Mode{}, errors.New("the device does not stream video capture")
	}
	format := uint32(0)
	for i := uint32(0); i < 64; i++ {
		d := v4l2FmtDesc{Index: i, Type: bufTypeVideoCapture}
		if err := ioctl(fd, vidiocEnumFmt, unsafe.Pointer(&d)); err != nil {
			break
		}
		if d.PixelFormat == pixMJPEG || (d.PixelFormat == pixYUYV && format == 0) {
			format = d.PixelFormat
		}
	}
	if format == 0 {
		return Mode{}, errors.New("the device offers neither MJPEG nor YUYV")
	}
	f := v4l2Format{Type: bufTypeVideoCapture, Pix: v4l2PixFormat{
		Width: uint32(want.Width), Height: uint32(want.Height), PixelFormat: format, Field: fieldNone}}
	if err := ioctl(fd, vidiocSFmt, unsafe.Pointer(&f)); err != nil {
		return Mode{}, fmt.Errorf("set format: %w", err)
	}
	if f.Pix.PixelFormat != format {
		return Mode{}, fmt.Errorf("the device switched to pixel format %#x", f.Pix.PixelFormat)
	}
	m := Mode{Width: int(f.Pix.Width), Height: int(f.Pix.Height), FPS: want.FPS}
	if want.FPS > 0 {
		p := v4l2StreamParm{Type: bufTypeVideoCapture}
		p.Capture.TimePerFrame = v4l2Fract{Numerator: 1, Denominator: uint32(want.FPS)}
		if err := ioctl(fd, vidiocSParm, unsafe.Pointer(&p)); err == nil && p.Capture.TimePerFrame.Numerator > 0 {
			m.FPS = int(p.Capture.TimePerFrame.Denominator / p.Capture.TimePerFrame.Numerator)
		}
	}
	rb := v4l2RequestBuffers{Count: uint32(c.opts.Buffers), Type: bufTypeVideoCapture, Memory: memoryMmap}
	if err := ioctl(fd, vidiocReqBufs, unsafe.Pointer(&rb)); err != nil {
		return Mode{}, fmt.Errorf("request buffers: %w", err)
	}
	if rb.Count < 2 {
		return Mode{}, fmt.Errorf("the device grants %d buffers", rb.Count)
	}
	c.bufs = c.bufs[:0]
	for i := uint32(0); i < rb.Count; i++ {
		b := v4l2Buffer{Index: i, Type: bufTypeVideoCapture, Memory: memoryMmap}
		if err := ioctl(fd, vidiocQueryBuf, unsafe.Pointer(&b)); err != nil {
			return Mode{}, fmt.Errorf("query buffer %d: %w", i, err)
		}
		mem, err := unix.Mmap(fd, int64(uint32(b.Offset)), int(b.Length), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
		if err != nil {
			return Mode{}, fmt.Errorf("map buffer %d: %w", i, err)
		}
		c.bufs = append(c.bufs, mem)
		if err := ioctl(fd, vidiocQBuf, unsafe.Pointer(&b)); err != nil {
			return Mode{}, fmt.Errorf("queue buffer %d: %w", i, err)
		}
	}
	typ := int32(bufTypeVideoCapture)
	if err := ioctl(fd, vidiocStreamOn, unsafe.Pointer(&typ)); err != nil {
		return Mode{}, fmt.Errorf("stream on: %w", err)
	}
	c.format = format
	return m, nil
}

// Next waits (poll) for a filled buffer, decodes it and queues it again.
func (c *V4L2) Next(ctx context.Context) (Frame, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.fd < 0 {
		return Frame{}, ErrNotStarted
	}
	deadline := time.Now().Add(c.opts.FrameTimeout)
	if d, ok := ctx.Deadline(); ok {
		deadline = d
	}
	for {
		// Poll in short slices so that a cancelled ctx is noticed.
		wait := min(time.Until(deadline), 100*time.Millisecond)
		if wait <= 0 {
			c.setStatus(drivers.Status{State: drivers.StateDegraded, Reason: "camera frames are late"})
			return Frame{}, fmt.Errorf("next frame from %s: %w", c.path, drivers.ErrTimeout)
		}
		if err := ctx.Err(); err != nil {
			return Frame{}, ctxErr(err)
		}
		fds := []unix.PollFd{{Fd: int32(c.fd), Events: unix.POLLIN}}
		n, err := unix.Poll(fds, int(wait/time.Millisecond)+1)
		if err == unix.EINTR || n == 0 {
			continue
		}
		if err != nil || fds[0].Revents&(unix.POLLERR|unix.POLLHUP|unix.POLLNVAL) != 0 {
			c.setStatus(drivers.Status{State: drivers.StateMissing, Reason: "camera " + c.path + " went away: plug it in"})
			return Frame{}, fmt.Errorf("next frame from %s: %w", c.path, drivers.ErrDisconnected)
		}
		b := v4l2Buffer{Type: bufTypeVideoCapture, Memory: memoryMmap}
		if err := ioctl(c.fd, vidiocDQBuf, unsafe.Pointer(&b)); err != nil {
			if err == unix.EAGAIN {
				continue
			}
			c.setStatus(drivers.Status{State: drivers.StateMissing, Reason: "camera " + c.path + " went away: plug it in"})
			return Frame{}, fmt.Errorf("dequeue a frame from %s: %w: %v", c.path, drivers.ErrDisconnected, err)
		}
		taken := c.opts.Now()
		var img image.Image
		var derr error
		if int(b.Index) < len(c.bufs) && int(b.BytesUsed) <= len(c.bufs[b.Index]) {
			img, derr = decodeFrame(c.format, c.bufs[b.Index][:b.BytesUsed], c.mode.Width, c.mode.Height)
		} else {
			derr = fmt.Errorf("buffer %d of %d bytes out of range", b.Index, b.BytesUsed)
		}
		if err := ioctl(c.fd, vidiocQBuf, unsafe.Pointer(&b)); err != nil {
			return Frame{}, fmt.Errorf("requeue a buffer of %s: %w", c.path, err)
		}
		c.seq++
		if derr != nil {
			c.log.Warn("camera: dropped a frame", "err", derr)
			continue
		}
		c.setStatus(drivers.Status{State: drivers.StateOK})
		return Frame{Image: img, Time: taken, Seq: c.seq}, nil
	}
}

// decodeFrame turns a buffer into an image.
func decodeFrame(format uint32, data []byte, w, h int) (image.Image, error) {
	switch format {
	case pixMJPEG:
		return jpeg.Decode(bytes.NewReader(data))
	case pixYUYV:
		return yuyvToYCbCr(data, w, h)
	}
	return nil, fmt.Errorf("pixel format %#x", format)
}

// yuyvToYCbCr converts packed 4:2:2 (Y0 U Y1 V) into planar YCbCr.
func yuyvToYCbCr(data []byte, w, h int) (*image.YCbCr, error) {
	if w <= 0 || h <= 0 || w%2 != 0 || len(data) < w*h*2 {
		return nil, fmt.Errorf("YUYV frame of %d bytes for %d×%d", len(data), w, h)
	}
	img := image.NewYCbCr(image.Rect(0, 0, w, h), image.YCbCrSubsampleRatio422)
	for y := range h {
		row := data[y*w*2 : (y+1)*w*2]
		for x := 0; x < w; x += 2 {
			q := row[x*2 : x*2+4]
			img.Y[y*img.YStride+x] = q[0]
			img.Y[y*img.YStride+x+1] = q[2]
			img.Cb[y*img.CStride+x/2] = q[1]
			img.Cr[y*img.CStride+x/2] = q[3]
		}
	}
	return img, nil
}

// Stop ends streaming and closes the device.
func (c *V4L2) Stop() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.fd < 0 {
		return nil
	}
	typ := int32(bufTypeVideoCapture)
	ioctl(c.fd, vidiocStreamOff, unsafe.Pointer(&typ))
	c.teardownLocked(c.fd)
	c.fd = -1
	return nil
}

func (c *V4L2) teardownLocked(fd int) {
	for _, b := range c.bufs {
		unix.Munmap(b)
	}
	c.bufs = nil
	unix.Close(fd)
}

// Status is the state the device was last found in.
func (c *V4L2) Status() drivers.Status {
	c.stmu.Lock()
	defer c.stmu.Unlock()
	return c.status
}

func (c *V4L2) setStatus(st drivers.Status) {
	c.stmu.Lock()
	defer c.stmu.Unlock()
	c.status = st
}
