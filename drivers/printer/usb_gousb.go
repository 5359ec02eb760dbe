//go:build cgo

package printer

import (
	"context"
	"errors"
	"fmt"

	"github.com/google/gousb"
)

// gousbPrinter is a claimed printer-class interface.
type gousbPrinter struct {
	ctx  *gousb.Context
	dev  *gousb.Device
	cfg  *gousb.Config
	intf *gousb.Interface
	out  *gousb.OutEndpoint
	in   *gousb.InEndpoint // nil for a unidirectional printer
}

var _ usbTransport = (*gousbPrinter)(nil)

func openGoUSB(ctx context.Context, id USBID) (usbTransport, error) {
	uctx := gousb.NewContext()
	p, err := claimPrinter(uctx, id)
	if err != nil {
		uctx.Close()
		return nil, err
	}
	return p, nil
}

func claimPrinter(uctx *gousb.Context, id USBID) (*gousbPrinter, error) {
	var found *gousb.InterfaceSetting
	var cfgNum int
	devs, err := uctx.OpenDevices(func(desc *gousb.DeviceDesc) bool {
		if found != nil {
			return false
		}
		if id != (USBID{}) && (desc.Vendor != gousb.ID(id.Vendor) || desc.Product != gousb.ID(id.Product)) {
			return false
		}
		for _, cfg := range desc.Configs {
			for _, intf := range cfg.Interfaces {
				for _, alt := range intf.AltSettings {
					if alt.Class == gousb.ClassPrinter {
						found, cfgNum = &alt, cfg.Number
						return true
					}
				}
			}
		}
		return false
	})
	for _, d := range devs[min(1, len(devs)):] {
		d.Close()
	}
	if len(devs) == 0 {
		if err == nil {
			err = errors.New("no such device")
		}
		return nil, fmt.Errorf("find %s: %w", id, err)
	}
	p := &gousbPrinter{ctx: uctx, dev: devs[0]}
	if err := p.claim(found, cfgNum); err != nil {
		p.Close()
		return nil, fmt.Errorf("claim %s: %w", id, err)
	}
	return p, nil
}

func (p *gousbPrinter) claim(alt *gousb.InterfaceSetting, cfgNum int) error {
	if err := p.dev.SetAutoDetach(true); err != nil {
		return err
	}
	var err error
	if p.cfg, err = p.dev.Config(cfgNum); err != nil {
		return err
	}
	if p.intf, err = p.cfg.Interface(alt.Number, alt.Alternate); err != nil {
		return err
	}
	for _, ep := range alt.Endpoints {
		if ep.TransferType != gousb.TransferTypeBulk {
			continue
		}
		switch {
		case ep.Direction == gousb.EndpointDirectionOut && p.out == nil:
			if p.out, err = p.intf.OutEndpoint(ep.Number); err != nil {
				return err
			}
		case ep.Direction == gousb.EndpointDirectionIn && p.in == nil:
			if p.in, err = p.intf.InEndpoint(ep.Number); err != nil {
				return err
			}
		}
	}
	if p.out == nil {
		return errors.New("printer interface has no bulk-out endpoint")
	}
	return nil
}

func (p *gousbPrinter) WriteContext(ctx context.Context, b []byte) (int, error) {
	return p.out.WriteContext(ctx, b)
}

func (p *gousbPrinter) ReadContext(ctx context.Context, b []byte) (int, error) {
	if p.in == nil {
		return 0, errors.New("printer is unidirectional: it cannot report its status")
	}
	return p.in.ReadContext(ctx, b)
}

func (p *gousbPrinter) Close() error {
	if p.intf != nil {
		p.intf.Close()
	}
	var err error
	if p.cfg != nil {
		err = p.cfg.Close()
	}
	if p.dev != nil {
		err = errors.Join(err, p.dev.Close())
	}
	return errors.Join(err, p.ctx.Close())
}
