package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/kogge-fleet/kogge/agent"
	"github.com/kogge-fleet/kogge/agent/enroll"
	agentmqtt "github.com/kogge-fleet/kogge/agent/mqtt"
	"github.com/kogge-fleet/kogge/agent/store"
	"github.com/kogge-fleet/kogge/agent/update"
	"github.com/kogge-fleet/kogge/drivers/camera"
	"github.com/kogge-fleet/kogge/drivers/gnss"
	"github.com/kogge-fleet/kogge/drivers/printer"
	mobileagent "github.com/kogge-fleet/kogge/mobile-agent"
	"github.com/kogge-fleet/kogge/mobile-agent/enforcement"
	"github.com/kogge-fleet/kogge/mobile-agent/shift"
	"github.com/kogge-fleet/kogge/protocol/seal"
)

// inventory is what the handheld reports at enrollment.
func inventory(serial string, cfg DevicesConfig) enroll.Inventory {
	var ps []enroll.Peripheral
	for _, p := range []struct{ name, where string }{{"gnss", cfg.GNSS}, {"printer", cfg.Printer}, {"camera", cfg.Camera}} {
		if p.where != "" {
			ps = append(ps, enroll.Peripheral{Name: p.name, Kind: p.name})
		}
	}
	return enroll.Inventory{Model: "Kogge Handheld H1", Serial: serial, Software: version(), Peripherals: ps}
}

// updateApp is the app name the handheld's update artifacts must target.
const updateApp = "mobile-agent"

// serve runs the handheld with its configured devices: the touch UI, or
// a script headless.
func serve(ctx context.Context, cfg Config, stdin io.Reader, stdout io.Writer, log *slog.Logger) error {
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return err
	}
	upd, err := update.Launch(cfg.Update, updateApp, version(), cfg.DataDir, log)
	if err != nil {
		return err
	}
	idDir := filepath.Join(cfg.DataDir, "identity")
	ident, err := enroll.Load(idDir)
	if err != nil {
		if cfg.Enroll.Code == "" {
			return fmt.Errorf("no identity in %s (%v): enroll the handheld once with enroll.server, enroll.code and enroll.ca-fingerprint", idDir, err)
		}
		ident, err = enroll.Enroll(ctx, idDir, enroll.Request{
			Server: cfg.Enroll.Server, Code: cfg.Enroll.Code, CAFingerprint: cfg.Enroll.CAFingerprint,
			DeviceID: cfg.Enroll.DeviceID, Inventory: inventory(cfg.Enroll.Serial, cfg.Devices),
		}, enroll.Options{})
		if err != nil {
			return fmt.Errorf("enroll: %w", err)
		}
		log.Info("enrolled", "device", ident.DeviceID, "server", ident.Server)
	}
	log = log.With("device", ident.DeviceID)
	officers, err := readOfficers(cfg.OfficersFile)
	if err != nil {
		return err
	}
	offices, err := cfg.officeKeys()
	if err != nil {
		return err
	}
	devs, closeDevices, err := openDevices(cfg.Devices, log)
	if err != nil {
		return err
	}
	defer closeDevices()
	h, err := startHandheld(ctx, handheldParams{
		dir: cfg.DataDir, ident: ident, broker: cfg.Broker, cfg: cfg.app(ident.DeviceID, upd.Software(version()), officers),
		devs: devs, offices: offices, log: log, upd: upd,
	})
	if err != nil {
		return err
	}
	defer func() {
		if err := h.stop(); err != nil {
			log.Warn("the handheld stopped with an error", "err", err)
		}
	}()
	if cfg.Script != "" {
		return runScript(ctx, h.app, cfg.Script, cfg.UI.Lang, stdin, stdout)
	}
	return runUI(ctx, h.app, cfg.UI, log)
}

// runScript runs a script file ("-": stdin) on the app.
func runScript(ctx context.Context, app *mobileagent.App, file, lang string, stdin io.Reader, stdout io.Writer) error {
	r := stdin
	if file != "-" {
		f, err := os.Open(file)
		if err != nil {
			return fmt.Errorf("script: %w", err)
		}
		defer f.Close()
		r = f
	}
	sh := mobileagent.NewShell(app, stdout, mobileagent.ShellOptions{Lang: lang})
	if err := sh.Run(ctx, r); err != nil {
		return fmt.Errorf("script %s: %w", file, err)
	}
	return nil
}

// hashPIN reads a PIN (one line) and prints its hash.
func hashPIN(stdin io.Reader, stdout io.Writer) error {
	line, err := bufio.NewReader(io.LimitReader(stdin, 256)).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return err
	}
	pin := strings.TrimSpace(line)
	if err := shift.CheckPINFormat(pin); err != nil {
		return err
	}
	h, err := shift.HashPIN(pin, shift.DefaultParams)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintln(stdout, h)
	return err
}

// devices are the handheld's peripherals.
type devices struct {
	gnss    gnss.Receiver
	printer printer.Printer
	camera  camera.Camera
}

// openDevices opens the configured peripherals; none is required.
func openDevices(cfg DevicesConfig, log *slog.Logger) (devices, func(), error) {
	var (
		d       devices
		closers []func() error
	)
	closeAll := func() {
		for i := len(closers) - 1; i >= 0; i-- {
			closers[i]()
		}
	}
	dl := func(kind string) *slog.Logger { return log.With("peripheral", kind) }
	if cfg.GNSS != "" {
		g, err := gnss.NewSerial(cfg.GNSS, gnss.Options{Log: dl("gnss")})
		if err != nil {
			return devices{}, nil, fmt.Errorf("GNSS receiver %s: %w", cfg.GNSS, err)
		}
		d.gnss = g // the app runs it
	}
	if cfg.Printer != "" {
		var (
			p   *printer.Device
			err error
		)
		if strings.HasPrefix(cfg.Printer, "/") {
			p, err = printer.NewSerial(cfg.Printer, printer.Options{Log: dl("printer")})
		} else {
			p, err = printer.NewTCP(cfg.Printer, printer.Options{Log: dl("printer")})
		}
		if err != nil {
			closeAll()
			return devices{}, nil, fmt.Errorf("printer %s: %w", cfg.Printer, err)
		}
		d.printer = p
		closers = append(closers, p.Close)
	}
	switch c := cfg.Camera; {
	case c == "":
	case strings.HasPrefix(c, "http://") || strings.HasPrefix(c, "https://"):
		d.camera = camera.NewMJPEG(c, camera.MJPEGOptions{Logger: dl("camera")})
		closers = append(closers, d.camera.Stop)
	default:
		d.camera = camera.NewV4L2(c, camera.V4L2Options{Logger: dl("camera")})
		closers = append(closers, d.camera.Stop)
	}
	return d, closeAll, nil
}

// handheldParams are what startHandheld needs.
type handheldParams struct {
	dir     string // holds agent.db and notice.seq
	ident   *enroll.Identity
	broker  string // empty: the identity's
	cfg     mobileagent.Config
	devs    devices
	offices map[string]seal.Recipient
	log     *slog.Logger
	// mqtt and agent tune the agent (simulation: short timeouts).
	mqtt  agentmqtt.Options
	agent agent.Options
	// peripherals is how often the peripherals are checked (0: default).
	peripherals time.Duration
	// upd runs software updates; nil: off.
	upd *update.Launched
}

// handheld is a running app over its store.
type handheld struct {
	app    *mobileagent.App
	st     *store.Store
	cancel context.CancelFunc
	wg     sync.WaitGroup
	err    error
}

// startHandheld opens the store and the notice sequence and runs the app
// until stop.
func startHandheld(ctx context.Context, p handheldParams) (*handheld, error) {
	broker := p.broker
	if broker == "" {
		broker = p.ident.Broker
	}
	st, err := store.Open(filepath.Join(p.dir, "agent.db"), store.Options{Logger: p.log.With("component", "store")})
	if err != nil {
		return nil, err
	}
	seq, err := enforcement.OpenFileSequencer(filepath.Join(p.dir, "notice.seq"))
	if err != nil {
		st.Close()
		return nil, err
	}
	mo := p.mqtt
	mo.Logger = p.log.With("component", "mqtt")
	tr, err := agentmqtt.New(agentmqtt.Config{Broker: broker, Device: p.ident.DeviceID, TLS: p.ident.TLSConfig(), Software: p.cfg.Software}, mo)
	if err != nil {
		st.Close()
		return nil, err
	}
	ao := p.agent
	ao.Offices, ao.Logger = p.offices, p.log
	var selfTest update.LateSelfTest
	if p.upd != nil {
		if ao.Updater, err = p.upd.NewUpdater(p.ident.Server, p.ident.TLSConfig(), st.Close, selfTest.Run); err != nil {
			st.Close()
			return nil, err
		}
	}
	deps := mobileagent.Deps{Store: st, Transport: tr, Sequencer: seq}
	// Interfaces hold no typed nil: a missing device stays nil.
	if p.devs.gnss != nil {
		deps.GNSS = p.devs.gnss
	}
	if p.devs.printer != nil {
		deps.Printer = p.devs.printer
	}
	if p.devs.camera != nil {
		deps.Camera = p.devs.camera
	}
	app, err := mobileagent.New(ctx, p.cfg, deps, mobileagent.Options{
		Logger: p.log, Agent: ao, PeripheralInterval: p.peripherals,
	})
	if err != nil {
		st.Close()
		return nil, err
	}
	selfTest.Set(app.SelfTest)
	rctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	h := &handheld{app: app, st: st, cancel: cancel}
	h.wg.Go(func() { h.err = app.Run(rctx) })
	return h, nil
}

// stop ends the app and closes the store.
func (h *handheld) stop() error {
	h.cancel()
	h.wg.Wait()
	return errors.Join(h.err, h.st.Close())
}
