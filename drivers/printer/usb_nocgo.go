//go:build !cgo

package printer

import (
	"context"
	"errors"
)

func openGoUSB(context.Context, USBID) (usbTransport, error) {
	return nil, errors.New("USB printing needs a build with cgo and libusb")
}
