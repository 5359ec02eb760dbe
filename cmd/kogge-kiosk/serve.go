package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"fyne.io/fyne/v2/app"

	"github.com/kogge-fleet/kogge/agent"
	"github.com/kogge-fleet/kogge/agent/enroll"
	agentmqtt "github.com/kogge-fleet/kogge/agent/mqtt"
	"github.com/kogge-fleet/kogge/agent/store"
	"github.com/kogge-fleet/kogge/agent/update"
	"github.com/kogge-fleet/kogge/drivers/camera"
	"github.com/kogge-fleet/kogge/drivers/eid"
	"github.com/kogge-fleet/kogge/drivers/fingerprint"
	"github.com/kogge-fleet/kogge/drivers/payment"
	"github.com/kogge-fleet/kogge/drivers/printer"
	"github.com/kogge-fleet/kogge/kiosk"
	"github.com/kogge-fleet/kogge/kiosk/ui"
)

// inventory are the peripherals a terminal reports at enrollment.
func inventory(serial string) enroll.Inventory {
	var ps []enroll.Peripheral
	for _, n := range []string{"camera", "fingerprint", "eid", "payment", "printer"} {
		ps = append(ps, enroll.Peripheral{Name: n, Kind: n})
	}
	return enroll.Inventory{Model: "Kogge Kiosk K1", Serial: serial, Software: version(), Peripherals: ps}
}

// agentRun is a running agent over its store.
type agentRun struct {
	st  *store.Store
	ag  *agent.Agent
	wg  sync.WaitGroup
	err error
}

// startAgent opens the terminal's identity and store and runs its agent
// until ctx ends; wait for it with stop. With upd (nil: updates off) the
// agent runs an updater with selfTest as the terminal's health check.
func startAgent(ctx context.Context, dir string, ident *enroll.Identity, broker string, tuning agentmqtt.Options,
	upd *update.Launched, selfTest func(context.Context) error, log *slog.Logger) (*agentRun, error) {
	if broker == "" {
		broker = ident.Broker
	}
	st, err := store.Open(filepath.Join(dir, "agent.db"), store.Options{Logger: log.With("component", "store")})
	if err != nil {
		return nil, err
	}
	tuning.Logger = log.With("component", "mqtt")
	software := upd.Software(version())
	tr, err := agentmqtt.New(agentmqtt.Config{Broker: broker, Device: ident.DeviceID, TLS: ident.TLSConfig(), Software: software}, tuning)
	if err != nil {
		st.Close()
		return nil, err
	}
	aopts := agent.Options{Logger: log}
	if upd != nil {
		if aopts.Updater, err = upd.NewUpdater(ident.Server, ident.TLSConfig(), st.Close, selfTest); err != nil {
			st.Close()
			return nil, err
		}
	}
	ag, err := agent.New(agent.Config{Device: ident.DeviceID, Software: software}, st, tr, aopts)
	if err != nil {
		st.Close()
		return nil, err
	}
	r := &agentRun{st: st, ag: ag}
	r.wg.Go(func() { r.err = ag.Run(ctx) })
	return r, nil
}

// stop waits for the agent (its ctx must have ended) and closes the store.
func (r *agentRun) stop() error {
	r.wg.Wait()
	return errors.Join(r.err, r.st.Close())
}

// updateApp is the app name the terminal's update artifacts must target.
const updateApp = "kiosk"

// serve runs the terminal with its configured devices until ctx ends.
func serve(ctx context.Context, cfg Config, log *slog.Logger) error {
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
			return fmt.Errorf("no identity in %s (%v): enroll the terminal once with enroll.server, enroll.code and enroll.ca-fingerprint", idDir, err)
		}
		ident, err = enroll.Enroll(ctx, idDir, enroll.Request{
			Server: cfg.Enroll.Server, Code: cfg.Enroll.Code, CAFingerprint: cfg.Enroll.CAFingerprint,
			DeviceID: cfg.Enroll.DeviceID, Inventory: inventory(cfg.Enroll.Serial),
		}, enroll.Options{})
		if err != nil {
			return fmt.Errorf("enroll: %w", err)
		}
		log.Info("enrolled", "device", ident.DeviceID, "server", ident.Server)
	}
	log = log.With("device", ident.DeviceID)
	devices, closeDevices, err := openDevices(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer closeDevices()

	actx, stopAgent := context.WithCancel(context.Background()) // the agent outlives the kiosk's last session
	var selfTest update.LateSelfTest
	rt, err := startAgent(actx, cfg.DataDir, ident, cfg.Broker, agentmqtt.Options{}, upd, selfTest.Run, log)
	if err != nil {
		stopAgent()
		return err
	}
	defer func() {
		stopAgent()
		if err := rt.stop(); err != nil {
			log.Warn("agent stopped with an error", "err", err)
		}
	}()
	kopts := kiosk.Options{Logger: log}
	if err := cfg.quality(&kopts); err != nil {
		return err
	}
	k, err := kiosk.New(cfg.kiosk(upd.Software(version())), rt.ag, rt.st, devices, kopts)
	if err != nil {
		return err
	}
	selfTest.Set(k.SelfTest)
	var wg sync.WaitGroup
	wg.Go(func() { k.Run(ctx) })
	defer wg.Wait()
	if cfg.Headless {
		log.Info("kogge-kiosk running headless: sessions wait at their welcome screen, what they show is logged")
		headless(ctx, k, log)
		return nil
	}
	// The touch screen runs on this, the main, goroutine, as fyne needs.
	lang := "de"
	if len(cfg.Languages) > 0 {
		lang = cfg.Languages[0]
	}
	u, err := ui.New(app.NewWithID("org.kogge.kiosk"), ui.Options{Language: lang, Windowed: cfg.Windowed, Logger: log.With("component", "ui")})
	if err != nil {
		return err
	}
	log.Info("kogge-kiosk running")
	return u.Run(ctx, k.NextSession, k.Admin())
}

// headless runs the sessions without a UI: it logs what each shows. A
// session waits at its welcome screen until the terminal stops (or a
// peripheral fails).
func headless(ctx context.Context, k *kiosk.Kiosk, log *slog.Logger) {
	for ctx.Err() == nil {
		s := k.NextSession(ctx)
		for v := range s.Views() {
			log.Info("screen", "step", v.Step.String(), "message", v.Message, "number", v.Number, "args", v.Args)
		}
	}
}

// openDevices opens the configured peripherals.
func openDevices(ctx context.Context, cfg Config, log *slog.Logger) (kiosk.Devices, func(), error) {
	var (
		d       kiosk.Devices
		closers []func() error
	)
	closeAll := func() {
		for i := len(closers) - 1; i >= 0; i-- {
			closers[i]()
		}
	}
	fail := func(err error) (kiosk.Devices, func(), error) {
		closeAll()
		return kiosk.Devices{}, nil, err
	}
	dl := func(kind string) *slog.Logger { return log.With("peripheral", kind) }
	if strings.HasPrefix(cfg.Devices.Camera, "http://") || strings.HasPrefix(cfg.Devices.Camera, "https://") {
		d.Camera = camera.NewMJPEG(cfg.Devices.Camera, camera.MJPEGOptions{Logger: dl("camera")})
	} else {
		d.Camera = camera.NewV4L2(cfg.Devices.Camera, camera.V4L2Options{Logger: dl("camera")})
	}
	closers = append(closers, d.Camera.Stop)
	octx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	scanner, err := fingerprint.Open(octx, cfg.Devices.Fingerprint, fingerprint.Options{Logger: dl("fingerprint")})
	if err != nil {
		return fail(fmt.Errorf("fingerprint scanner %s: %w", cfg.Devices.Fingerprint, err))
	}
	d.Scanner = scanner
	closers = append(closers, scanner.Close)
	prn, err := openPrinter(cfg.Devices.Printer, printer.Options{Log: dl("printer")})
	if err != nil {
		return fail(fmt.Errorf("printer %s: %w", cfg.Devices.Printer, err))
	}
	d.Printer = prn
	closers = append(closers, prn.Close)
	if !cfg.Fee.AtCounter {
		pay, err := openPayment(cfg.Devices.Payment, payment.Options{Log: dl("payment")})
		if err != nil {
			return fail(fmt.Errorf("payment terminal %s: %w", cfg.Devices.Payment, err))
		}
		d.Payment = pay
		closers = append(closers, pay.Close)
	}
	if cfg.EID.Enabled {
		kernel, err := eid.Dial(octx, cfg.EID.URL, eid.Options{Logger: dl("eid")})
		if err != nil {
			return fail(fmt.Errorf("AusweisApp at %s: %w", cfg.EID.URL, err))
		}
		d.EID = kernel
		closers = append(closers, kernel.Close)
	}
	return d, closeAll, nil
}

// openPrinter opens a printer at host:port or a serial port.
func openPrinter(addr string, opts printer.Options) (*printer.Device, error) {
	if strings.HasPrefix(addr, "/") {
		return printer.NewSerial(addr, opts)
	}
	return printer.NewTCP(addr, opts)
}

// openPayment opens a ZVT terminal at host:port or a serial port.
func openPayment(addr string, opts payment.Options) (*payment.Client, error) {
	if strings.HasPrefix(addr, "/") {
		return payment.NewSerial(addr, opts)
	}
	return payment.NewTCP(addr, opts)
}
