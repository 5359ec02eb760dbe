package printer

import (
	"context"
	"errors"
	"fmt"
)

// USBID names a USB printer by vendor and product id. The zero value
// means the first device with a printer-class interface.
type USBID struct{ Vendor, Product uint16 }

func (id USBID) String() string {
	if id == (USBID{}) {
		return "first USB printer"
	}
	return fmt.Sprintf("USB %04x:%04x", id.Vendor, id.Product)
}

// usbTransport is what the driver needs of a USB printer-class device:
// the bulk-out endpoint for jobs and the bulk-in endpoint for status
// answers. The real one is gousb's (usb_gousb.go); tests use a fake, since
// there is no USB in the test machines' kernels.
type usbTransport interface {
	WriteContext(ctx context.Context, p []byte) (int, error)
	ReadContext(ctx context.Context, p []byte) (int, error)
	Close() error
}

// usbOpener opens a USB printer.
type usbOpener func(ctx context.Context, id USBID) (usbTransport, error)

// NewUSB returns a printer on USB, opened through libusb (gousb). The
// kernel's usblp driver is detached from the device while it is open.
func NewUSB(id USBID, opts Options) (*Device, error) {
	return newUSB(id, openGoUSB, opts)
}

func newUSB(id USBID, open usbOpener, opts Options) (*Device, error) {
	dial := func(ctx context.Context) (link, error) {
		t, err := open(ctx, id)
		if err != nil {
			return nil, err
		}
		return &usbLink{t: t}, nil
	}
	return newDevice(id.String(), dial, opts)
}

type usbLink struct{ t usbTransport }

func (l *usbLink) write(ctx context.Context, p []byte) error {
	for len(p) > 0 {
		n, err := l.t.WriteContext(ctx, p)
		if err != nil {
			return linkErr(ctx, err)
		}
		if n == 0 {
			return linkErr(ctx, errors.New("USB write made no progress"))
		}
		p = p[n:]
	}
	return nil
}

func (l *usbLink) read(ctx context.Context, p []byte) (int, error) {
	n, err := l.t.ReadContext(ctx, p)
	return n, linkErr(ctx, err)
}

func (l *usbLink) close() error { return l.t.Close() }
