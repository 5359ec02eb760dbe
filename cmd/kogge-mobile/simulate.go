package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/draw"
	"image/jpeg"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/kogge-fleet/kogge/agent"
	agentmqtt "github.com/kogge-fleet/kogge/agent/mqtt"
	agentsync "github.com/kogge-fleet/kogge/agent/sync"
	"github.com/kogge-fleet/kogge/agent/twin"
	"github.com/kogge-fleet/kogge/drivers/gnss"
	"github.com/kogge-fleet/kogge/drivers/printer"
	fleetserver "github.com/kogge-fleet/kogge/fleet-server"
	"github.com/kogge-fleet/kogge/fleet-server/bridge/bridgeconfig"
	mobileagent "github.com/kogge-fleet/kogge/mobile-agent"
	"github.com/kogge-fleet/kogge/mobile-agent/enforcement"
	"github.com/kogge-fleet/kogge/mobile-agent/roadwork"
	"github.com/kogge-fleet/kogge/mobile-agent/roadwork/photo"
	"github.com/kogge-fleet/kogge/mobile-agent/shift"
	"github.com/kogge-fleet/kogge/protocol/seal"
	simgnss "github.com/kogge-fleet/kogge/simulators/devices/gnss"
	simprinter "github.com/kogge-fleet/kogge/simulators/devices/printer"
	"github.com/kogge-fleet/kogge/simulators/fleet"
	"github.com/kogge-fleet/kogge/simulators/fleet/faultproxy"
	"github.com/kogge-fleet/kogge/simulators/procedures"
)

// The simulation's cast.
const (
	simDevice  = "handheld-sim-1"
	simGroup   = "handhelds"
	simOfficer = "4711"
	simPIN     = "1234"
	simAPIKey  = "kogge-mobile-sim-key"
	// simTimeout bounds the whole simulation.
	simTimeout = 3 * time.Minute
)

// defaultScript is the offline part of the simulation: a warden's notice
// and a damage report. %[1]s is the evidence photo.
const defaultScript = `login 4711 1234
shift start
notice new
notice plate D "HB-AB 123"
notice vehicle VW grau
notice gnss
notice address "Am Markt" 21
notice offence search gehweg parkten
notice offence add 112454
notice valve VL05 HR11
notice photo %[1]s
notice check
notice issue
report new pothole high
report gnss
report address Osterdeich 12
report note "Schlagloch in der Fahrbahnmitte, etwa 40 cm breit"
report photo %[1]s
report submit
cases
status
`

// simulation is the running simulation: what it started, to stop it in
// reverse order.
type simulation struct {
	out     io.Writer
	start   time.Time
	log     *slog.Logger
	dir     string
	stopped []func() error
}

func (s *simulation) say(format string, args ...any) {
	fmt.Fprintf(s.out, "[%5.1fs] "+format+"\n", append([]any{time.Since(s.start).Seconds()}, args...)...)
}

// defer registers a stop function.
func (s *simulation) onStop(f func() error) { s.stopped = append(s.stopped, f) }

func (s *simulation) close() error {
	var errs []error
	for i := len(s.stopped) - 1; i >= 0; i-- {
		errs = append(errs, s.stopped[i]())
	}
	return errors.Join(errs...)
}

// simulate runs the end-to-end simulation (see the command's
// documentation).
func simulate(ctx context.Context, cfg Config, stdin io.Reader, stdout, stderr io.Writer) (err error) {
	ctx, cancel := context.WithTimeout(ctx, simTimeout)
	defer cancel()
	dir, err := os.MkdirTemp("", "kogge-mobile-sim-")
	if err != nil {
		return err
	}
	logFile, err := os.Create(filepath.Join(dir, "simulation.log"))
	if err != nil {
		os.RemoveAll(dir)
		return err
	}
	log, _ := cfg.Log.Logger(logFile)
	s := &simulation{out: stdout, start: time.Now(), log: log, dir: dir}
	defer func() {
		if cerr := s.close(); cerr != nil && err == nil {
			err = fmt.Errorf("stop: %w", cerr)
		}
		logFile.Close()
		if cfg.Keep || err != nil {
			fmt.Fprintf(stdout, "data and log kept in %s\n", dir)
		} else {
			os.RemoveAll(dir)
		}
	}()
	s.say("kogge-mobile --simulate: everything on loopback in this process; log in %s", filepath.Join(dir, "simulation.log"))
	return s.run(ctx, cfg, stdin)
}

func (s *simulation) run(ctx context.Context, cfg Config, stdin io.Reader) error {
	// The procedures.
	drop := filepath.Join(s.dir, "owi-drop")
	if err := os.MkdirAll(drop, 0o700); err != nil {
		return err
	}
	owiSim, err := procedures.NewOWIDrop(procedures.DropDirOptions{Dir: drop, Prefix: "OWI"})
	if err != nil {
		return err
	}
	s.onStop(owiSim.Close)
	pctx, stopDrop := context.WithCancel(context.WithoutCancel(ctx))
	var dropWG sync.WaitGroup
	dropWG.Go(func() { owiSim.Run(pctx) })
	s.onStop(func() error { stopDrop(); dropWG.Wait(); return nil })
	o311, err := procedures.NewOpen311(procedures.Open311Options{APIKey: simAPIKey})
	if err != nil {
		return err
	}
	s.onStop(o311.Close)
	s.say("procedures: owi case records into the drop directory %s; Open311 GeoReport v2 at %s", drop, o311.URL())

	// The offices' keys: the public halves go to the handheld, the
	// private ones to the bridges.
	offices := map[string]seal.Recipient{}
	secrets := map[string]string{}
	for _, office := range []string{mobileagent.DefaultNoticeOffice, mobileagent.DefaultReportOffice} {
		r, secret, err := seal.GenerateKey(office, office+"-1")
		if err != nil {
			return err
		}
		offices[office], secrets[office] = r, secret
	}
	caFile := filepath.Join(s.dir, "open311-ca.pem")
	if err := os.WriteFile(caFile, o311.CA().PEM, 0o600); err != nil {
		return err
	}
	runner := bridgeconfig.Runner{Concurrency: 4, Visibility: 20 * time.Second, IdleWait: 50 * time.Millisecond,
		DrainTimeout: 5 * time.Second, PollInterval: 300 * time.Millisecond}
	owiBridge := bridgeconfig.Default()
	owiBridge.Office, owiBridge.Connector, owiBridge.Bridge = mobileagent.DefaultNoticeOffice, bridgeconfig.KindOWI, runner
	owiBridge.KeySecrets = []string{offices[owiBridge.Office].KeyID + "=" + secrets[owiBridge.Office]}
	owiBridge.Procedure.Transport, owiBridge.Procedure.Dir, owiBridge.Procedure.ReceiptTimeout = "dropdir", drop, 10*time.Second
	o311Bridge := bridgeconfig.Default()
	o311Bridge.Office, o311Bridge.Connector, o311Bridge.Bridge = mobileagent.DefaultReportOffice, bridgeconfig.KindOpen311, runner
	o311Bridge.KeySecrets = []string{offices[o311Bridge.Office].KeyID + "=" + secrets[o311Bridge.Office]}
	o311Bridge.Procedure.URL, o311Bridge.Procedure.APIKey, o311Bridge.Procedure.CA = o311.URL(), simAPIKey, caFile
	o311Bridge.Procedure.ServiceCodes = []string{"pothole=001", "damaged-sign=002", "streetlight=003", "*=099"}
	o311Bridge.Procedure.Timeout = 5 * time.Second
	o311Bridge.StateDir = filepath.Join(s.dir, "open311-state")

	// The fleet server with its bridges in-process.
	srv, err := fleet.StartServer(ctx, fleet.ServerConfig{
		DataDir: filepath.Join(s.dir, "server"), Logger: s.log.With("side", "server"), Keepalive: 5 * time.Second,
		Customize: func(c *fleetserver.Config) {
			c.Delivery.RetryBase, c.Delivery.RetryMax = time.Second, 2*time.Second
			c.Bridges = append(c.Bridges, owiBridge, o311Bridge)
		},
	})
	if err != nil {
		return fmt.Errorf("fleet server: %w", err)
	}
	s.onStop(srv.Stop)
	s.say("fleet server: API %s, broker %s, bridges for %s (owi) and %s (open311) in-process",
		srv.APIURL(), srv.BrokerAddr(), owiBridge.Office, o311Bridge.Office)

	// Enrollment through the real path; the group's twin carries the
	// offices' keys.
	api := srv.API()
	if _, err := api.CreateGroup(ctx, simGroup, "Handhelds (kogge-mobile --simulate)"); err != nil {
		return fmt.Errorf("create group: %w", err)
	}
	keys := map[string]any{}
	for n, r := range offices {
		keys[n] = map[string]any{"key_id": r.KeyID, "public_key": r.PublicKey}
	}
	if _, err := api.SetGroupTwin(ctx, simGroup, map[string]any{twin.KeyOffices: keys, twin.KeyHeartbeat: 10}); err != nil {
		return fmt.Errorf("group twin: %w", err)
	}
	hdir := filepath.Join(s.dir, "handheld")
	ident, err := fleet.EnrollDevice(ctx, api, srv.EnrollURL(), filepath.Join(hdir, "identity"), simDevice, simGroup,
		inventory("SIM-0001", DevicesConfig{GNSS: "sim", Printer: "sim"}))
	if err != nil {
		return err
	}
	s.say("handheld enrolled as %s with a one-time code at %s", ident.DeviceID, srv.EnrollURL())

	// Its link to the broker runs through a proxy that is down: the
	// handheld starts offline.
	proxy, err := faultproxy.New(srv.BrokerAddr(), faultproxy.Options{Logger: s.log.With("side", "proxy")})
	if err != nil {
		return err
	}
	proxy.Set(faultproxy.Faults{Down: true})
	var proxyWG sync.WaitGroup
	proxyWG.Go(func() { proxy.Run(pctx) })
	s.onStop(func() error { proxy.Close(); proxyWG.Wait(); return nil })

	// The simulated peripherals and their real drivers.
	devDir := filepath.Join(s.dir, "dev")
	if err := os.MkdirAll(devDir, 0o700); err != nil {
		return err
	}
	gsim, err := simgnss.Start(pctx, simgnss.Options{Interval: 100 * time.Millisecond, Dir: devDir,
		Log: s.log.With("side", "gnss-sim")})
	if err != nil {
		return fmt.Errorf("GNSS simulator: %w", err)
	}
	s.onStop(gsim.Close)
	psim, err := simprinter.Start(pctx, simprinter.Options{Log: s.log.With("side", "printer-sim")})
	if err != nil {
		return fmt.Errorf("printer simulator: %w", err)
	}
	s.onStop(psim.Close)
	rx, err := gnss.NewSerial(gsim.Endpoint(), gnss.Options{Log: s.log.With("peripheral", "gnss")})
	if err != nil {
		return err
	}
	prn, err := printer.NewTCP(psim.Endpoint(), printer.Options{Log: s.log.With("peripheral", "printer")})
	if err != nil {
		return err
	}
	s.onStop(prn.Close)
	s.say("GNSS receiver on the pseudo-terminal %s, printer at %s", gsim.Endpoint(), psim.Endpoint())

	hash, err := shift.HashPIN(simPIN, shift.DefaultParams)
	if err != nil {
		return err
	}
	h, err := startHandheld(ctx, handheldParams{
		dir: hdir, ident: ident, broker: "ssl://" + proxy.Addr(), log: s.log.With("side", "handheld"),
		cfg: mobileagent.Config{
			Device: ident.DeviceID, Software: version(), NoticePrefix: "SIM1",
			Issuer: enforcement.Office{Name: "Freie Hansestadt Bremen", Unit: "Ordnungsamt – Verkehrsüberwachung",
				Address: "Stresemannstraße 48, 28207 Bremen", Contact: "0421 361-0", IBAN: "DE89 3704 0044 0532 0130 00"},
			Officers: []shift.Officer{{ID: simOfficer, Name: "Erika Muster", Crew: "Mitte", PINHash: hash}},
		},
		devs:        devices{gnss: rx, printer: prn},
		offices:     offices,
		mqtt:        agentmqtt.Options{KeepAlive: 5 * time.Second, MinBackoff: 100 * time.Millisecond, MaxBackoff: 500 * time.Millisecond, ConnectTimeout: 3 * time.Second},
		agent:       agent.Options{Sync: agentsync.Options{AckTimeout: 2 * time.Second, MaxBackoff: 2 * time.Second, HelloTimeout: 2 * time.Second}},
		peripherals: 500 * time.Millisecond,
	})
	if err != nil {
		return err
	}
	s.onStop(h.stop)
	app := h.app
	s.say("handheld running, OFFLINE (its link to the broker is down)")

	// Offline: the script.
	if err := s.waitFor(ctx, "a GNSS fix", 20*time.Second, func() (bool, string) {
		_, err := rx.Position(ctx)
		return err == nil, fmt.Sprint(err)
	}); err != nil {
		return err
	}
	script, name, err := s.script(cfg, stdin)
	if err != nil {
		return err
	}
	s.say("script %s:", name)
	sh := mobileagent.NewShell(app, &indent{w: s.out}, mobileagent.ShellOptions{Lang: "de"})
	if err := sh.Run(ctx, strings.NewReader(script)); err != nil {
		return fmt.Errorf("script %s: %w", name, err)
	}
	number, report := sh.LastNotice(), sh.LastReport()
	if number == "" || report == uuid.Nil {
		return fmt.Errorf("script %s issued no notice or filed no report: the simulation needs both", name)
	}
	notice, _ := app.NoticeEntry(number)

	// The printer simulator reads the notice back.
	rctx, rcancel := context.WithTimeout(ctx, 10*time.Second)
	receipt, err := psim.Next(rctx)
	rcancel()
	if err != nil {
		return fmt.Errorf("the printer simulator printed nothing: %w", err)
	}
	if !strings.Contains(receipt.Text, number) || len(receipt.QR) == 0 || !strings.HasPrefix(receipt.QR[0], "BCD") {
		return fmt.Errorf("the printed notice lacks its number %s or its GiroCode:\n%s", number, receipt.Text)
	}
	s.say("printer simulator read back notice %s: %d lines, GiroCode %q…, cut %s",
		number, len(receipt.Lines), strings.SplitN(receipt.QR[0], "\n", 4)[:3], receipt.Cut)

	q, err := app.Queue(ctx)
	if err != nil {
		return err
	}
	if q != 2 || app.Online() {
		return fmt.Errorf("offline: %d records queued, online %v; want 2 queued and offline", q, app.Online())
	}
	s.say("offline: notice and report saved on the handheld, %d records queued; %d connection attempts refused",
		q, proxy.Stats().Refused)

	// Online.
	proxy.Set(faultproxy.Faults{})
	s.say("link to the broker is up")
	if err := s.waitFor(ctx, "the notice accepted by the fine office with its reference", 60*time.Second, func() (bool, string) {
		e, _ := app.NoticeEntry(number)
		_, atOWI := owiSim.Ledger().Reference(notice.ID.String())
		return atOWI && e.Status == mobileagent.NoticeAccepted && e.Reference != "", fmt.Sprintf("%s %s, at the owi procedure: %v", e.Status, e.Reference, atOWI)
	}); err != nil {
		return err
	}
	e, _ := app.NoticeEntry(number)
	owiRef, _ := owiSim.Ledger().Reference(notice.ID.String())
	s.say("notice %s reached the owi procedure as %s; the handheld shows %q, reference %s",
		number, owiRef, e.Status.Label("de"), e.Reference)

	var request procedures.Request
	if err := s.waitFor(ctx, "the report received by road maintenance with its request number", 60*time.Second, func() (bool, string) {
		r, _ := app.ReportEntry(report)
		var ok bool
		request, ok = findRequest(o311, report)
		return ok && r.Status == roadwork.StatusReceived && r.Reference != "", fmt.Sprintf("%s %s, at the Open311 procedure: %v", r.Status, r.Reference, ok)
	}); err != nil {
		return err
	}
	if md, err := photo.Metadata(request.Media); err != nil || len(md) > 0 {
		return fmt.Errorf("the photo at the Open311 procedure is no clean JPEG: metadata %v, %v", md, err)
	}
	r, _ := app.ReportEntry(report)
	s.say("report reached the Open311 procedure as request %s (service %s, public photo of %d bytes without metadata); the handheld shows %q, reference %s",
		request.ID, request.ServiceCode, len(request.Media), r.Status.Label("de"), r.Reference)

	// Road maintenance works on it; the status comes back.
	for _, step := range []struct {
		status, notes string
		want          roadwork.Status
	}{
		{"open", "In Bearbeitung: Reparatur beauftragt", roadwork.StatusInProgress},
		{"closed", "Schlagloch verfüllt", roadwork.StatusSolved},
	} {
		if err := o311.Advance(request.ID, step.status, step.notes); err != nil {
			return fmt.Errorf("advance the request: %w", err)
		}
		s.say("Open311: request %s set to %s, %q", request.ID, step.status, step.notes)
		if err := s.waitFor(ctx, "the handheld to show "+string(step.want), 60*time.Second, func() (bool, string) {
			r, _ := app.ReportEntry(report)
			return r.Status == step.want, fmt.Sprintf("%s %q", r.Status, r.Note)
		}); err != nil {
			return err
		}
		r, _ := app.ReportEntry(report)
		s.say("the handheld shows the report %q: %s", r.Status.Label("de"), r.Note)
	}
	if err := sh.Exec(ctx, "cases"); err != nil {
		return err
	}
	if u, d := owiSim.Stats(); u != 1 || d != 0 {
		return fmt.Errorf("owi procedure: %d cases, %d duplicates; want 1 and 0", u, d)
	}
	if u, d := o311.Stats(); u != 1 || d != 0 {
		return fmt.Errorf("Open311 procedure: %d requests, %d duplicates; want 1 and 0", u, d)
	}
	s.say("done: one notice and one report, each delivered once, statuses back on the handheld")
	return nil
}

// script returns the offline script: the file of --script, or the
// default with an evidence photo.
func (s *simulation) script(cfg Config, stdin io.Reader) (text, name string, err error) {
	switch cfg.Script {
	case "":
		photo := filepath.Join(s.dir, "evidence.jpg")
		if err := os.WriteFile(photo, evidencePhoto(), 0o600); err != nil {
			return "", "", err
		}
		return fmt.Sprintf(defaultScript, quote(photo)), "(built in)", nil
	case "-":
		b, err := io.ReadAll(io.LimitReader(stdin, 1<<20))
		return string(b), "(standard input)", err
	default:
		b, err := os.ReadFile(cfg.Script)
		return string(b), cfg.Script, err
	}
}

// quote quotes a path for the script language.
func quote(s string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`
}

// waitFor polls cond until it holds, then says how long it took.
func (s *simulation) waitFor(ctx context.Context, what string, timeout time.Duration, cond func() (bool, string)) error {
	start := time.Now()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		ok, state := cond()
		if ok {
			s.log.Info("waited", "for", what, "took", time.Since(start))
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for %s: %w (%s)", what, ctx.Err(), state)
		case <-deadline.C:
			return fmt.Errorf("%s: not within %v (%s)", what, timeout, state)
		case <-tick.C:
		}
	}
}

// findRequest finds the Open311 request of a report.
func findRequest(o *procedures.Open311, id uuid.UUID) (procedures.Request, bool) {
	for _, r := range o.Requests() {
		if r.Attributes["kogge_record_id"] == id.String() && r.ID != "" {
			return r, true
		}
	}
	return procedures.Request{}, false
}

// indent writes the script's output indented under the step lines.
type indent struct {
	w   io.Writer
	mid bool
}

func (i *indent) Write(p []byte) (int, error) {
	var b bytes.Buffer
	for _, c := range p {
		if !i.mid {
			b.WriteString("          ")
		}
		b.WriteByte(c)
		i.mid = c != '\n'
	}
	if _, err := i.w.Write(b.Bytes()); err != nil {
		return 0, err
	}
	return len(p), nil
}

// glyphs is a 5×7 font for the evidence photo's plate.
var glyphs = map[rune][7]string{
	'H': {"#...#", "#...#", "#...#", "#####", "#...#", "#...#", "#...#"},
	'B': {"####.", "#...#", "#...#", "####.", "#...#", "#...#", "####."},
	'A': {".###.", "#...#", "#...#", "#####", "#...#", "#...#", "#...#"},
	'1': {"..#..", ".##..", "..#..", "..#..", "..#..", "..#..", ".###."},
	'2': {".###.", "#...#", "....#", "...#.", "..#..", ".#...", "#####"},
	'3': {"####.", "....#", "....#", ".###.", "....#", "....#", "####."},
}

// evidencePhoto is a street scene as a camera writes it: asphalt, a car's
// rear with a licence plate, and an EXIF block with a position and a
// camera serial that the handheld must strip.
func evidencePhoto() []byte {
	const w, h = 960, 720
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := range h {
		for x := range w {
			g := uint8(95 + (x*7+y*13)%23)
			img.Set(x, y, color.RGBA{g, g, g + 4, 255})
		}
	}
	fill := func(r image.Rectangle, c color.Color) {
		draw.Draw(img, r, image.NewUniform(c), image.Point{}, draw.Src)
	}
	fill(image.Rect(200, 220, 760, 600), color.RGBA{30, 60, 120, 255}) // the car
	// A European plate, 4.7:1: black frame, white ground, the EU strip,
	// characters 70 % of its height.
	plate := image.Rect(320, 460, 320+329, 460+70)
	fill(plate, color.RGBA{20, 20, 20, 255})
	fill(plate.Inset(2), color.White)
	fill(image.Rect(plate.Min.X+2, plate.Min.Y+2, plate.Min.X+30, plate.Max.Y-2), color.RGBA{0, 51, 153, 255})
	const dot = 7
	x, y := plate.Min.X+44, plate.Min.Y+(70-7*dot)/2
	for _, r := range "HBA123" {
		for gy, row := range glyphs[r] {
			for gx, c := range row {
				if c == '#' {
					fill(image.Rect(x+gx*dot, y+gy*dot, x+(gx+1)*dot, y+(gy+1)*dot), color.RGBA{10, 10, 10, 255})
				}
			}
		}
		x += 6 * dot
	}
	var buf bytes.Buffer
	jpeg.Encode(&buf, img, &jpeg.Options{Quality: 88})
	b := buf.Bytes()
	exif := []byte("Exif\x00\x00MM\x00\x2a\x00\x00\x00\x08\x00\x00GPS 53.0758N 8.8071E SERIAL-SIMCAM-0001")
	out := append([]byte{}, b[:2]...)
	out = append(out, 0xff, 0xe1, byte((len(exif)+2)>>8), byte(len(exif)+2))
	out = append(out, exif...)
	return append(out, b[2:]...)
}
