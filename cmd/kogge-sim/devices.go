package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/kogge-fleet/kogge/simulators/devices/camera"
	"github.com/kogge-fleet/kogge/simulators/devices/eid"
	"github.com/kogge-fleet/kogge/simulators/devices/fingerprint"
	"github.com/kogge-fleet/kogge/simulators/devices/gnss"
	"github.com/kogge-fleet/kogge/simulators/devices/payment"
	"github.com/kogge-fleet/kogge/simulators/devices/printer"
	"github.com/kogge-fleet/kogge/simulators/devices/vcard"
	"github.com/kogge-fleet/kogge/simulators/fleet"
)

// deliveryStarter is the delivery side of demo, chaos and bench runs:
// in-process bridges into the procedure simulators.
func deliveryStarter() fleet.DeliveryStarter {
	return fleet.ProcedureDelivery(fleet.DefaultBridgeTuning())
}

// DevicesConfig are the settings of kogge-sim devices.
type DevicesConfig struct {
	Dir      string `config:"dir" usage:"directory for the serial device links (default: a temporary directory per simulator)"`
	LogLevel string `config:"log-level" usage:"log level of the simulators (on stderr): debug, info, warn, error"`
}

// deviceKinds are the simulators `kogge-sim devices` knows, in order.
func deviceKinds() []string {
	return []string{"gnss", "printer", "payment", "eid", "vcard", "camera", "fingerprint"}
}

// closer is what every simulator offers to stop it.
type closer interface{ Close() error }

// devicesCmd runs the hardware simulators named as arguments (all when
// none) until ctx ends, printing where each one is.
func devicesCmd(ctx context.Context, args, environ []string, stdout, stderr io.Writer) error {
	cfg := DevicesConfig{LogLevel: "info"}
	kinds, err := load(&cfg, "kogge-sim devices", args, environ, stdout)
	if err != nil {
		return err
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(cfg.LogLevel)); err != nil {
		return usageError{fmt.Errorf("log-level %q: want debug, info, warn or error", cfg.LogLevel)}
	}
	if len(kinds) == 0 {
		kinds = deviceKinds()
	}
	for _, k := range kinds {
		if !slices.Contains(deviceKinds(), k) {
			return usageError{fmt.Errorf("unknown device %q: want %s", k, strings.Join(deviceKinds(), ", "))}
		}
	}
	if cfg.Dir != "" {
		if err := os.MkdirAll(cfg.Dir, 0o700); err != nil {
			return err
		}
	}
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	var (
		running []closer
		failed  []error
	)
	defer func() {
		for i := len(running) - 1; i >= 0; i-- {
			running[i].Close()
		}
	}()
	for _, k := range kinds {
		c, where, err := startDevice(ctx, k, cfg.Dir, logger.With("device", k))
		if err != nil {
			failed = append(failed, fmt.Errorf("%s: %w", k, err))
			fmt.Fprintf(stdout, "  %-12s not running: %v\n", k, err)
			continue
		}
		running = append(running, c)
		fmt.Fprintf(stdout, "  %-12s %s\n", k, where)
	}
	if len(running) == 0 {
		return errors.Join(failed...)
	}
	fmt.Fprintf(stdout, "%d simulators running; Ctrl-C stops them\n", len(running))
	<-ctx.Done()
	return nil
}

// startDevice starts one simulator with its defaults and says where it is.
func startDevice(ctx context.Context, kind, dir string, logger *slog.Logger) (closer, string, error) {
	var (
		s    closer
		what string
		err  error
	)
	switch kind {
	case "gnss":
		s, err = gnss.Start(ctx, gnss.Options{Dir: dir, Log: logger})
		what = "NMEA 0183 receiver walking Bremen's market square"
	case "printer":
		s, err = printer.Start(ctx, printer.Options{Serial: true, Dir: dir, Log: logger})
		what = "ESC/POS receipt printer"
	case "payment":
		s, err = payment.Start(ctx, payment.Options{Serial: true, Dir: dir, Log: logger})
		what = "ZVT card terminal (the amount's last two digits choose the outcome)"
	case "eid":
		s, err = eid.Start(ctx, eid.Options{Logger: logger})
		what = "AusweisApp SDK (WebSocket)"
	case "vcard":
		s, err = vcard.Start(ctx, vcard.Options{Logger: logger})
		what = "virtual eID card at vpcd (PC/SC through pcscd)"
	case "camera":
		s, err = camera.Start(ctx, camera.Options{Logger: logger})
		what = "camera (MJPEG)"
	case "fingerprint":
		link := ""
		if dir != "" {
			link = filepath.Join(dir, "fingerprint0")
		}
		s, err = fingerprint.Start(ctx, fingerprint.Options{Link: link, Logger: logger})
		what = "fingerprint module"
	default:
		return nil, "", fmt.Errorf("the %s simulator is not part of this build", kind)
	}
	if err != nil {
		return nil, "", err
	}
	return s, what + " at " + endpoints(s), nil
}

// endpoints lists where a simulator can be reached, by the accessors it
// has.
func endpoints(s any) string {
	var out []string
	if e, ok := s.(interface{ Endpoint() string }); ok {
		out = append(out, e.Endpoint())
	}
	if e, ok := s.(interface{ URL() string }); ok {
		out = append(out, e.URL())
	}
	if e, ok := s.(interface{ SerialEndpoint() string }); ok {
		out = append(out, e.SerialEndpoint())
	}
	if e, ok := s.(interface{ SnapshotURL() string }); ok {
		out = append(out, e.SnapshotURL())
	}
	if len(out) == 0 {
		return "(no address)"
	}
	return strings.Join(out, ", ")
}
