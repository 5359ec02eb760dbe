// Package ptyline gives the device simulators a pseudo-terminal that plays a
// serial line: the simulator holds the master side, the driver opens the
// slave path as it would open /dev/ttyUSB0.
package ptyline

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/creack/pty"
	"golang.org/x/sys/unix"
)

// Line is a pseudo-terminal playing a serial device. The simulator also
// holds the slave open, so that the line keeps its raw settings and
// survives the driver's reconnects.
type Line struct {
	Master *os.File // pollable: deadlines work and Close ends blocked I/O
	Slave  *os.File
	Path   string // /dev/pts/N
}

// Open opens a pseudo-terminal in raw mode.
func Open() (*Line, error) {
	m, s, err := pty.Open()
	if err != nil {
		return nil, fmt.Errorf("open pseudo-terminal: %w", err)
	}
	if err := makeRaw(s); err != nil {
		m.Close()
		s.Close()
		return nil, err
	}
	// pty.Open's master is in blocking mode (Fd() sets it), so deadlines
	// would not work on it. A non-blocking duplicate goes to the poller.
	fd, err := unix.Dup(int(m.Fd()))
	m.Close()
	if err != nil {
		s.Close()
		return nil, fmt.Errorf("duplicate pseudo-terminal: %w", err)
	}
	if err := unix.SetNonblock(fd, true); err != nil {
		unix.Close(fd)
		s.Close()
		return nil, fmt.Errorf("duplicate pseudo-terminal: %w", err)
	}
	return &Line{Master: os.NewFile(uintptr(fd), "/dev/ptmx"), Slave: s, Path: s.Name()}, nil
}

// makeRaw puts the terminal into raw mode (cfmakeraw): no echo, no line
// editing, no CR/LF translation, 8 bits.
func makeRaw(f *os.File) error {
	fd := int(f.Fd())
	t, err := unix.IoctlGetTermios(fd, unix.TCGETS)
	if err != nil {
		return fmt.Errorf("read terminal settings: %w", err)
	}
	t.Iflag &^= unix.IGNBRK | unix.BRKINT | unix.PARMRK | unix.ISTRIP | unix.INLCR | unix.IGNCR | unix.ICRNL | unix.IXON
	t.Oflag &^= unix.OPOST
	t.Lflag &^= unix.ECHO | unix.ECHONL | unix.ICANON | unix.ISIG | unix.IEXTEN
	t.Cflag &^= unix.CSIZE | unix.PARENB
	t.Cflag |= unix.CS8
	t.Cc[unix.VMIN], t.Cc[unix.VTIME] = 1, 0
	if err := unix.IoctlSetTermios(fd, unix.TCSETS, t); err != nil {
		return fmt.Errorf("set terminal to raw mode: %w", err)
	}
	return nil
}

// DropUnread discards what the device side has not read once more than
// limit bytes wait, as a UART overruns when nobody reads it. Without it a
// simulator writing to a line nobody reads would block.
func (l *Line) DropUnread(limit int) {
	n, err := unix.IoctlGetInt(int(l.Slave.Fd()), unix.TIOCINQ)
	if err == nil && n > limit {
		unix.IoctlSetInt(int(l.Slave.Fd()), unix.TCFLSH, unix.TCIFLUSH)
	}
}

// Close closes both sides.
func (l *Line) Close() error {
	err := l.Master.Close()
	if serr := l.Slave.Close(); err == nil {
		err = serr
	}
	return err
}

// PointLink makes link a symbolic link to target, replacing what was there
// in one step, as udev maintains /dev/serial/by-id links.
func PointLink(link, target string) error {
	tmp := filepath.Join(filepath.Dir(link), "."+filepath.Base(link)+".new")
	os.Remove(tmp)
	if err := os.Symlink(target, tmp); err != nil {
		return fmt.Errorf("link %s: %w", link, err)
	}
	if err := os.Rename(tmp, link); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("link %s: %w", link, err)
	}
	return nil
}
