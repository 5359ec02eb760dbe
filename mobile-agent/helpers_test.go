package mobileagent_test

import (
	"bytes"
	"context"
	"image"
	"image/color"
	"image/jpeg"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kogge-fleet/kogge/agent"
	"github.com/kogge-fleet/kogge/agent/store"
	agentsync "github.com/kogge-fleet/kogge/agent/sync"
	"github.com/kogge-fleet/kogge/agent/sync/synctest"
	"github.com/kogge-fleet/kogge/drivers/gnss"
	"github.com/kogge-fleet/kogge/drivers/printer"
	mobileagent "github.com/kogge-fleet/kogge/mobile-agent"
	"github.com/kogge-fleet/kogge/mobile-agent/enforcement"
	"github.com/kogge-fleet/kogge/mobile-agent/shift"
	"github.com/kogge-fleet/kogge/protocol"
	"github.com/kogge-fleet/kogge/protocol/seal"
)

const (
	device  = "hh-test-1"
	officer = "4711"
	pin     = "1234"
)

// testParams makes PIN hashes cheap: the tests check the app, not argon2.
var testParams = shift.Params{Memory: 64, Time: 1, Threads: 1}

// clock is the app's clock: real time plus an offset the test moves, so
// that fixes the fake receiver stamps with the real time stay fresh.
type clock struct {
	mu     sync.Mutex
	offset time.Duration
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return time.Now().Add(c.offset)
}

func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	c.offset += d
	c.mu.Unlock()
}

// logBuf collects log lines.
type logBuf struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// fixture is an app on an in-memory link (cut at the start: offline), a
// fake GNSS receiver and a fake printer, sealing for two offices whose
// keys the test holds.
type fixture struct {
	t       *testing.T
	app     *mobileagent.App
	st      *store.Store
	dir     string
	link    *synctest.Link
	gnss    *gnss.Fake
	printer *printer.Fake
	clock   *clock
	keys    map[string]*seal.Keyring
	pubs    []seal.Recipient
	logs    *logBuf
	changes atomic.Int64
	stop    func()

	fromDevice chan *protocol.Envelope
}

type fixtureOptions struct {
	dir      string
	pubs     []seal.Recipient
	keys     map[string]*seal.Keyring
	noRun    bool
	officers []shift.Officer
}

func newFixture(t *testing.T, fo fixtureOptions) *fixture {
	t.Helper()
	f := &fixture{t: t, dir: fo.dir, gnss: gnss.NewFake(), printer: printer.NewFake(), clock: &clock{},
		keys: fo.keys, pubs: fo.pubs, logs: &logBuf{}, fromDevice: make(chan *protocol.Envelope, 1024)}
	if f.dir == "" {
		f.dir = t.TempDir()
	}
	if f.keys == nil {
		f.keys = map[string]*seal.Keyring{}
		for _, office := range []string{mobileagent.DefaultNoticeOffice, mobileagent.DefaultReportOffice} {
			r, secret, err := seal.GenerateKey(office, office+"-1")
			if err != nil {
				t.Fatal(err)
			}
			k := seal.NewKeyring(office)
			if err := k.Add(r.KeyID, secret); err != nil {
				t.Fatal(err)
			}
			f.keys[office] = k
			f.pubs = append(f.pubs, r)
		}
	}
	logger := slog.New(slog.NewTextHandler(f.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	st, err := store.Open(filepath.Join(f.dir, "agent.db"), store.Options{Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	f.st = st
	f.link = synctest.NewLink()
	officers := fo.officers
	if officers == nil {
		officers = []shift.Officer{hashed(t, officer, "Erika Muster", "Verkehrsüberwachung Mitte", pin),
			hashed(t, "4712", "Max Mustermann", "Straßenbau Kolonne 3", "9876")}
	}
	f.gnss.SetFix(gnss.Fix{Lat: 53.07582, Lon: 8.80717, Accuracy: 4.5, HDOP: 0.9, Satellites: 9, Quality: "gps", Mode: 3})
	app, err := mobileagent.New(context.Background(), testConfig(officers), mobileagent.Deps{
		Store: st, Transport: f.link.Device(), Sequencer: enforcement.NewMemorySequencer(0),
		GNSS: f.gnss, Printer: f.printer,
	}, mobileagent.Options{
		Logger: logger, Clock: f.clock.Now, PeripheralInterval: 50 * time.Millisecond,
		Agent:    agentOptions(f.pubs),
		OnChange: func() { f.changes.Add(1) },
	})
	if err != nil {
		st.Close()
		t.Fatal(err)
	}
	f.app = app
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { f.drain(ctx) })
	if !fo.noRun {
		wg.Go(func() {
			if err := app.Run(ctx); err != nil {
				t.Errorf("app: %v", err)
			}
		})
	}
	var once sync.Once
	f.stop = func() {
		once.Do(func() {
			cancel()
			wg.Wait()
			f.link.Close()
			st.Close()
		})
	}
	t.Cleanup(func() {
		f.stop()
		if t.Failed() {
			t.Logf("log:\n%s", tail(f.logs.String(), 80))
		}
	})
	return f
}

func tail(s string, n int) string {
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// drain decodes what the device publishes.
func (f *fixture) drain(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case in := <-f.link.Server().Incoming():
			if in.Kind != agentsync.Message {
				continue
			}
			env, err := protocol.DecodeOn(in.Topic, in.Payload)
			if err != nil {
				continue
			}
			select {
			case f.fromDevice <- env:
			default:
			}
		}
	}
}

// send publishes a server message to the device.
func (f *fixture) send(msg protocol.Message) {
	f.t.Helper()
	topic, err := protocol.TopicFor(device, msg.Type())
	if err != nil {
		f.t.Fatal(err)
	}
	b, err := protocol.Encode(protocol.NewEnvelope(device, 0, time.Now(), msg))
	if err != nil {
		f.t.Fatal(err)
	}
	if err := f.link.Server().Publish(context.Background(), topic, b, false); err != nil {
		f.t.Fatal(err)
	}
}

// expectMessage waits for a device message that match accepts.
func (f *fixture) expectMessage(what string, match func(*protocol.Envelope) bool) *protocol.Envelope {
	f.t.Helper()
	deadline := time.After(15 * time.Second)
	for {
		select {
		case env := <-f.fromDevice:
			if match(env) {
				return env
			}
		case <-deadline:
			f.t.Fatalf("no %s from the device within 15s", what)
			return nil
		}
	}
}

func hashed(t testing.TB, id, name, crew, pin string) shift.Officer {
	t.Helper()
	h, err := shift.HashPIN(pin, testParams)
	if err != nil {
		t.Fatal(err)
	}
	return shift.Officer{ID: id, Name: name, Crew: crew, PINHash: h}
}

func testConfig(officers []shift.Officer) mobileagent.Config {
	return mobileagent.Config{
		Device: device, Software: "test-1", NoticePrefix: "HB42",
		Issuer: enforcement.Office{
			Name: "Freie Hansestadt Bremen", Unit: "Ordnungsamt – Verkehrsüberwachung",
			Address: "Stresemannstraße 48, 28207 Bremen", Contact: "0421 361-0",
			IBAN: "DE89 3704 0044 0532 0130 00",
		},
		Officers: officers,
	}
}

func agentOptions(pubs []seal.Recipient) agent.Options {
	return agent.Options{Offices: mobileagent.OfficeKeys(pubs...)}
}

// eventually polls cond until it holds or 15 s pass.
func eventually(t testing.TB, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		ok, state := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 15s (%s)", what, state)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// cameraJPEG is a street photo as a camera writes it: a JPEG with an
// EXIF block (with a GPS tag and a camera serial) after SOI.
func cameraJPEG(t testing.TB, w, h int) []byte {
	t.Helper()
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := range h {
		for x := range w {
			img.Set(x, y, color.RGBA{uint8(60 + x%80), uint8(70 + y%60), 90, 255})
		}
	}
	var buf bytes.Buffer
	if err := jpeg.Encode(&buf, img, &jpeg.Options{Quality: 80}); err != nil {
		t.Fatal(err)
	}
	b := buf.Bytes()
	exif := []byte("Exif\x00\x00MM\x00\x2a\x00\x00\x00\x08\x00\x00GPS 53.0758N 8.8071E SERIAL-CAM-4711")
	seg := []byte{0xff, 0xe1, byte((len(exif) + 2) >> 8), byte(len(exif) + 2)}
	out := append([]byte{}, b[:2]...)
	out = append(out, seg...)
	out = append(out, exif...)
	return append(out, b[2:]...)
}
