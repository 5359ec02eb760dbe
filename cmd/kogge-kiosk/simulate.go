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
	"sync"
	"time"

	"github.com/kogge-fleet/kogge/agent"
	agentmqtt "github.com/kogge-fleet/kogge/agent/mqtt"
	"github.com/kogge-fleet/kogge/drivers/camera"
	"github.com/kogge-fleet/kogge/drivers/eid"
	"github.com/kogge-fleet/kogge/drivers/fingerprint"
	"github.com/kogge-fleet/kogge/drivers/payment"
	"github.com/kogge-fleet/kogge/drivers/printer"
	"github.com/kogge-fleet/kogge/kiosk"
	simcamera "github.com/kogge-fleet/kogge/simulators/devices/camera"
	simeid "github.com/kogge-fleet/kogge/simulators/devices/eid"
	simfinger "github.com/kogge-fleet/kogge/simulators/devices/fingerprint"
	simpayment "github.com/kogge-fleet/kogge/simulators/devices/payment"
	simprinter "github.com/kogge-fleet/kogge/simulators/devices/printer"
	"github.com/kogge-fleet/kogge/simulators/fleet"
)

// The simulated office and terminal.
const (
	simOffice   = "buergeramt-mitte"
	simGroup    = "mitte"
	simDevice   = "kiosk-mitte-1"
	simTCToken  = "https://eid.kogge.test/tcToken?service=ausweisantrag"
	simReader   = "Kogge Virtual Reader"
	simDeadline = 50 * time.Second // the whole run
)

// simulate runs one citizen through the whole chain in this process (see
// the command's documentation). The logs of every part go to a file; it
// is kept, with the run's data, when the simulation fails.
func simulate(ctx context.Context, cfg Config, out io.Writer) (err error) {
	ctx, cancel := context.WithTimeout(ctx, simDeadline)
	defer cancel()
	dir, err := os.MkdirTemp("", "kogge-kiosk-simulate-*")
	if err != nil {
		return err
	}
	logFile, err := os.Create(filepath.Join(dir, "simulate.log"))
	if err != nil {
		os.RemoveAll(dir)
		return err
	}
	defer func() {
		logFile.Close()
		if err != nil {
			err = fmt.Errorf("%w\n(logs and data kept in %s)", err, dir)
			return
		}
		os.RemoveAll(dir)
	}()
	log, _ := LogConfig{Level: cfg.Log.Level, Format: "text"}.Logger(logFile)
	started := time.Now()
	say := func(format string, args ...any) {
		fmt.Fprintf(out, "%5.1fs  %s\n", time.Since(started).Seconds(), fmt.Sprintf(format, args...))
	}

	// The fleet server with its in-process bridge into the procedure.
	offices, err := fleet.GenerateOffices(simOffice)
	if err != nil {
		return err
	}
	delivery, err := fleet.ProcedureDelivery(fleet.DefaultBridgeTuning())(ctx, filepath.Join(dir, "procedures"), offices,
		log.With("side", "delivery"))
	if err != nil {
		return fmt.Errorf("procedure simulator: %w", err)
	}
	defer delivery.Close()
	srv, err := fleet.StartServer(ctx, fleet.ServerConfig{DataDir: filepath.Join(dir, "server"), Logger: log.With("side", "server")},
		delivery.Hook())
	if err != nil {
		return err
	}
	defer srv.Stop()
	say("fleet server      %s (broker %s)", srv.APIURL(), srv.BrokerAddr())
	say("procedure         %s", strings.ReplaceAll(delivery.Describe(), "\n", "\n                  "))

	// Enrollment, as a technician does it.
	api := srv.API()
	if _, err := api.CreateGroup(ctx, simGroup, "Bezirk Mitte (simulated)"); err != nil {
		return fmt.Errorf("create the device group: %w", err)
	}
	if _, err := api.SetGroupTwin(ctx, simGroup, offices.Twin()); err != nil {
		return fmt.Errorf("put the office's key in the group's twin: %w", err)
	}
	kioskDir := filepath.Join(dir, "kiosk")
	ident, err := fleet.EnrollDevice(ctx, api, srv.EnrollURL(), filepath.Join(kioskDir, "identity"), simDevice, simGroup,
		inventory("SIM-0001"))
	if err != nil {
		return err
	}
	say("enrolled          %s through %s with a one-time code", ident.DeviceID, srv.EnrollURL())
	actx, stopAgent := context.WithCancel(context.Background())
	rt, err := startAgent(actx, kioskDir, ident, "", agentmqtt.Options{
		KeepAlive: 5 * time.Second, MinBackoff: 100 * time.Millisecond, MaxBackoff: 2 * time.Second,
	}, nil, nil, log.With("side", "kiosk"))
	if err != nil {
		stopAgent()
		return err
	}
	defer func() {
		stopAgent()
		if serr := rt.stop(); serr != nil {
			log.Warn("agent stopped with an error", "err", serr)
		}
	}()
	if err := poll(ctx, "the office's key in the terminal's twin", func() bool {
		_, ok := rt.ag.Config().Offices[simOffice]
		return ok
	}); err != nil {
		return err
	}
	say("agent             connected; the key of %s arrived in the twin", simOffice)

	// The hardware.
	dev, sims, err := startSimulators(ctx, dir, log)
	defer sims.close()
	if err != nil {
		return err
	}
	say("camera            MJPEG %s", sims.camera.Endpoint())
	say("fingerprint       R30x on %s", sims.finger.Endpoint())
	say("payment terminal  ZVT %s", sims.payment.Endpoint())
	say("printer           ESC/POS %s", sims.printer.Endpoint())
	say("eID               AusweisApp SDK %s", sims.eid.Endpoint())

	kcfg := cfg.kiosk(version())
	kcfg.Flow.Office, kcfg.Flow.Terminal, kcfg.NumberPrefix = simOffice, "Bürgeramt Mitte, Terminal 1 (simuliert)", "KMI1"
	kcfg.Flow.EID.Enabled, kcfg.Flow.EID.TCTokenURL = true, simTCToken
	kcfg.Flow.PayAtCounter = false
	// The simulated camera's capture mode: the photo is cut from the
	// frames the checks judged, so they must hold 1244x1600.
	kcfg.Flow.Photo.Mode = simcamera.CaptureMode()
	kopts := kiosk.Options{Logger: log.With("side", "kiosk")}
	if err := cfg.quality(&kopts); err != nil {
		return err
	}
	k, err := kiosk.New(kcfg, rt.ag, rt.st, dev, kopts)
	if err != nil {
		return err
	}
	kctx, stopKiosk := context.WithCancel(ctx)
	var kwg sync.WaitGroup
	kwg.Go(func() { k.Run(kctx) })
	defer func() {
		stopKiosk()
		kwg.Wait()
	}()

	// One citizen.
	s := k.NextSession(ctx)
	o, ok := s.(kiosk.Outcomer)
	if !ok {
		v := <-s.Views()
		return fmt.Errorf("the terminal is out of service: %s %v", v.Message, v.Args)
	}
	c := &citizen{pin: "123456", say: say, insertCard: func() error {
		return sims.eid.Emulator().InsertCard(simReader, eid.DefaultCard())
	}}
	last, err := c.walk(s, time.Until(deadline(ctx)))
	if err != nil {
		return err
	}
	outcome, err := o.Outcome(ctx)
	if err != nil {
		return err
	}
	if !outcome.Saved {
		return fmt.Errorf("the application was not saved (ended at %s %s)", last.Step, last.Message)
	}
	say("saved             application %s as record %s", outcome.Number, outcome.Record)
	if !outcome.Printed {
		return errors.New("the receipt was not printed")
	}
	receipt, err := sims.printer.Next(ctx)
	if err != nil {
		return fmt.Errorf("the printer got no receipt: %w", err)
	}
	if !slices.Contains(receipt.QR, outcome.Number) {
		return fmt.Errorf("the receipt's QR codes %v do not hold the number %s", receipt.QR, outcome.Number)
	}
	say("receipt           printed with the QR code %s", outcome.Number)

	// Until the procedure's receipt is back on the terminal.
	var st agent.Status
	lastState := agent.State(0)
	err = poll(ctx, "the procedure's receipt on the terminal", func() bool {
		st, err = rt.ag.Status(ctx, outcome.Record)
		if err == nil && st.State != lastState {
			lastState = st.State
			say("record            %s", st.State)
		}
		return err == nil && (st.State == agent.Accepted || st.State == agent.Failed || st.State == agent.Rejected)
	})
	if err != nil {
		return err
	}
	if st.State != agent.Accepted {
		return fmt.Errorf("the record ended %s: %s%s", st.State, st.Reason, st.Note)
	}
	found := false
	for _, d := range delivery.Deliveries() {
		if d.Record == outcome.Record && d.Procedure == simOffice && !d.Duplicate {
			found = true
		}
	}
	if !found {
		return fmt.Errorf("record %s is accepted but not in the idpass simulator's ledger", outcome.Record)
	}
	say("procedure         the idpass simulator imported it: reference %s", st.Reference)
	say("done              in %.1fs", time.Since(started).Seconds())
	return nil
}

// simulators are the running device simulators.
type simulators struct {
	camera  *simcamera.Simulator
	finger  *simfinger.Simulator
	payment *simpayment.Simulator
	printer *simprinter.Simulator
	eid     *simeid.Simulator
	closers []func() error
}

func (s *simulators) close() {
	for i := len(s.closers) - 1; i >= 0; i-- {
		s.closers[i]()
	}
}

// startSimulators starts the device simulators and the real drivers on
// them.
func startSimulators(ctx context.Context, dir string, log *slog.Logger) (kiosk.Devices, *simulators, error) {
	s := &simulators{}
	var (
		d   kiosk.Devices
		err error
	)
	l := func(kind string) *slog.Logger { return log.With("simulator", kind) }
	if s.camera, err = simcamera.Start(ctx, simcamera.Options{Logger: l("camera")}); err != nil {
		return d, s, fmt.Errorf("camera simulator: %w", err)
	}
	s.closers = append(s.closers, s.camera.Close)
	if s.finger, err = simfinger.Start(ctx, simfinger.Options{Link: filepath.Join(dir, "finger0"), Logger: l("fingerprint")}); err != nil {
		return d, s, fmt.Errorf("fingerprint simulator: %w", err)
	}
	s.closers = append(s.closers, s.finger.Close)
	if s.payment, err = simpayment.Start(ctx, simpayment.Options{Log: l("payment")}); err != nil {
		return d, s, fmt.Errorf("payment simulator: %w", err)
	}
	s.closers = append(s.closers, s.payment.Close)
	if s.printer, err = simprinter.Start(ctx, simprinter.Options{Log: l("printer")}); err != nil {
		return d, s, fmt.Errorf("printer simulator: %w", err)
	}
	s.closers = append(s.closers, s.printer.Close)
	if s.eid, err = simeid.Start(ctx, simeid.Options{Logger: l("eid")}); err != nil {
		return d, s, fmt.Errorf("eID simulator: %w", err)
	}
	s.closers = append(s.closers, s.eid.Close)

	dl := func(kind string) *slog.Logger { return log.With("peripheral", kind) }
	// The simulated camera renders and encodes each 5-megapixel frame in
	// software: about 0.35 s, but 2 s under the race detector and more on a
	// loaded machine, where a real camera's first frame is there well
	// within the driver's default wait.
	cam := camera.NewMJPEG(s.camera.Endpoint(), camera.MJPEGOptions{FrameTimeout: 30 * time.Second, Logger: dl("camera")})
	s.closers = append(s.closers, cam.Stop)
	scanner, err := fingerprint.Open(ctx, s.finger.Endpoint(), fingerprint.Options{Logger: dl("fingerprint")})
	if err != nil {
		return d, s, fmt.Errorf("fingerprint driver: %w", err)
	}
	s.closers = append(s.closers, scanner.Close)
	pay, err := payment.NewTCP(s.payment.Endpoint(), payment.Options{Log: dl("payment")})
	if err != nil {
		return d, s, fmt.Errorf("payment driver: %w", err)
	}
	s.closers = append(s.closers, pay.Close)
	prn, err := printer.NewTCP(s.printer.Endpoint(), printer.Options{Log: dl("printer")})
	if err != nil {
		return d, s, fmt.Errorf("printer driver: %w", err)
	}
	s.closers = append(s.closers, prn.Close)
	kernel, err := eid.Dial(ctx, s.eid.Endpoint(), eid.Options{Logger: dl("eid")})
	if err != nil {
		return d, s, fmt.Errorf("eID driver: %w", err)
	}
	s.closers = append(s.closers, kernel.Close)
	return kiosk.Devices{Camera: cam, Scanner: scanner, EID: kernel, Payment: pay, Printer: prn}, s, nil
}

// poll checks cond every 50 ms until it holds or ctx ends.
func poll(ctx context.Context, what string, cond func() bool) error {
	t := time.NewTicker(50 * time.Millisecond)
	defer t.Stop()
	for !cond() {
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for %s: %w", what, ctx.Err())
		case <-t.C:
		}
	}
	return nil
}

// deadline is ctx's deadline.
func deadline(ctx context.Context) time.Time {
	d, _ := ctx.Deadline()
	return d
}
