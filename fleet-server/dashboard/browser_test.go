package dashboard

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/google/uuid"

	"github.com/kogge-fleet/kogge/fleet-server/alerts"
	"github.com/kogge-fleet/kogge/fleet-server/dashboard/auth"
	"github.com/kogge-fleet/kogge/fleet-server/store"
	"github.com/kogge-fleet/kogge/protocol"
)

// The browser tests drive Debian's Chromium headless with chromedp against
// a dashboard over the real services, with a device that connects over
// MQTT (the broker's plain development listener) and whose connection the
// test cuts. One browser serves all of them.

var updateScreenshots = flag.Bool("update-screenshots", false, "write screenshots of the main pages to docs/screenshots")

// axeVersion is the axe-core release the accessibility check runs, pinned.
const axeVersion = "4.10.3"

const chromiumPath = "/usr/bin/chromium"

// needChromium returns the browser's path; without it the test fails in CI
// and is skipped elsewhere.
func needChromium(t *testing.T) string {
	t.Helper()
	if _, err := os.Stat(chromiumPath); err != nil {
		if inCI() {
			t.Fatalf("%s is missing; the dashboard's browser tests need Debian's chromium package (make deps)", chromiumPath)
		}
		t.Skipf("%s is missing (apt-get install chromium); skipping the browser tests", chromiumPath)
	}
	return chromiumPath
}

// axeSource returns axe-core's script, installed with npm at the pinned
// version into the user's cache directory (outside the repository) when it
// is not there yet. Without npm or the registry the check fails in CI and
// is skipped elsewhere ("" returned).
func axeSource(t *testing.T) string {
	t.Helper()
	cache, err := os.UserCacheDir()
	if err != nil {
		cache = os.TempDir()
	}
	dir := filepath.Join(cache, "kogge-axe", axeVersion)
	file := filepath.Join(dir, "node_modules", "axe-core", "axe.min.js")
	installed := func() bool {
		var pkg struct{ Version string }
		b, err := os.ReadFile(filepath.Join(dir, "node_modules", "axe-core", "package.json"))
		if err != nil || json.Unmarshal(b, &pkg) != nil || pkg.Version != axeVersion {
			return false
		}
		_, err = os.Stat(file)
		return err == nil
	}
	if !installed() {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		cmd := exec.CommandContext(ctx, "npm", "install", "--prefix", dir, "--no-save", "--no-package-lock",
			"--ignore-scripts", "--no-audit", "--no-fund", "axe-core@"+axeVersion)
		out, err := cmd.CombinedOutput()
		if err != nil || !installed() {
			msg := fmt.Sprintf("installing axe-core@%s with npm failed: %v\n%s", axeVersion, err, out)
			if inCI() {
				t.Fatal(msg)
			}
			t.Log(msg + "\nskipping the accessibility check")
			return ""
		}
	}
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// fakeDevice is a device that speaks the wire protocol over the broker's
// development listener: it announces itself online (with its last will
// offline), sends heartbeats and answers commands. cut closes its TCP
// connection without a DISCONNECT, as a pulled cable would.
type fakeDevice struct {
	id     string
	client paho.Client
	seq    atomic.Uint64
	mu     sync.Mutex
	conn   net.Conn
	// cmds holds the commands received and not answered yet.
	cmds chan *protocol.Command
}

func startFakeDevice(t *testing.T, addr, id string) *fakeDevice {
	t.Helper()
	d := &fakeDevice{id: id, cmds: make(chan *protocol.Command, 16)}
	session := uuid.New()
	will := d.encode(t, &protocol.Presence{State: protocol.Offline, Session: session, At: protocol.At(time.Now())})
	stateTopic, _ := protocol.TopicFor(id, protocol.TypePresence)
	opts := paho.NewClientOptions().AddBroker("tcp://"+addr).SetClientID(id).SetUsername(id).
		SetCleanSession(true).SetAutoReconnect(false).SetConnectRetry(false).SetKeepAlive(5*time.Second).
		SetBinaryWill(stateTopic, will, 1, true).
		SetCustomOpenConnectionFn(func(u *url.URL, _ paho.ClientOptions) (net.Conn, error) {
			c, err := net.DialTimeout("tcp", u.Host, 5*time.Second)
			if err == nil {
				d.mu.Lock()
				d.conn = c
				d.mu.Unlock()
			}
			return c, err
		})
	d.client = paho.NewClient(opts)
	if tok := d.client.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("device %s cannot connect: %v", id, tok.Error())
	}
	t.Cleanup(func() { d.client.Disconnect(100) })
	cmdTopic, _ := protocol.TopicFor(id, protocol.TypeCommand)
	tok := d.client.Subscribe(cmdTopic, 1, func(_ paho.Client, m paho.Message) {
		env, err := protocol.DecodeOn(m.Topic(), m.Payload())
		if err != nil {
			return
		}
		if cmd, ok := env.Body.(*protocol.Command); ok {
			select {
			case d.cmds <- cmd:
			default:
			}
		}
	})
	if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("device %s cannot subscribe: %v", id, tok.Error())
	}
	d.publish(t, stateTopic, true, &protocol.Presence{State: protocol.Online, Session: session, Software: "1.4.2", At: protocol.At(time.Now())})
	hbTopic, _ := protocol.TopicFor(id, protocol.TypeHeartbeat)
	d.publish(t, hbTopic, false, &protocol.Heartbeat{QueueDepth: 2, OldestUnsentMillis: 90_000, DiskFree: 3 << 30,
		BudgetUsed: 40 << 20, BudgetTotal: 512 << 20, Battery: -1, Software: "1.4.2", Clock: protocol.At(time.Now()),
		Peripherals: []protocol.Peripheral{{Name: "CAM0", Kind: "camera", State: protocol.PeripheralOK},
			{Name: "PRN0", Kind: "printer", State: protocol.PeripheralDegraded, Reason: "paper low"}}})
	return d
}

func (d *fakeDevice) encode(t *testing.T, m protocol.Message) []byte {
	b, err := protocol.Encode(protocol.NewEnvelope(d.id, d.seq.Add(1), time.Now(), m))
	if err != nil {
		t.Errorf("encode %T: %v", m, err)
	}
	return b
}

func (d *fakeDevice) publish(t *testing.T, topic string, retained bool, m protocol.Message) {
	t.Helper()
	tok := d.client.Publish(topic, 1, retained, d.encode(t, m))
	if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("device %s: publish: %v", d.id, tok.Error())
	}
}

// answer waits for a command and reports it done.
func (d *fakeDevice) answer(t *testing.T) {
	t.Helper()
	select {
	case cmd := <-d.cmds:
		topic, _ := protocol.TopicFor(d.id, protocol.TypeCommandResult)
		d.publish(t, topic, false, &protocol.CommandResult{ID: cmd.ID, Outcome: protocol.OutcomeOK,
			Message: "done: " + cmd.Name, At: protocol.At(time.Now())})
	case <-time.After(10 * time.Second):
		t.Fatalf("device %s received no command", d.id)
	}
}

// cut drops the TCP connection: the broker publishes the last will.
func (d *fakeDevice) cut() {
	d.mu.Lock()
	defer d.mu.Unlock()
	if tc, ok := d.conn.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	d.conn.Close()
}

// seed fills the store with what the pages show: groups, devices with a
// health history, an alert rule with a firing alert and a dead letter.
func seed(t *testing.T, e *env) (deadLetter uuid.UUID, alertID string) {
	t.Helper()
	ctx := context.Background()
	e.addDevice("buergeramt-mitte", "kiosk-1")
	e.addDevice("buergeramt-mitte", "kiosk-2")
	e.addDevice("ordnungsdienst", "hand-1")
	now := time.Now()
	err := e.db.Ingest(ctx, func(tx *store.IngestTx) error {
		for i := 24; i >= 1; i-- {
			at := now.Add(-time.Duration(i) * time.Hour)
			hb := &protocol.Heartbeat{QueueDepth: uint32((i * 7) % 13), OldestUnsentMillis: uint64((i % 5) * 60000),
				DiskFree: uint64(3<<30 - i*(40<<20)), BudgetTotal: 512 << 20, BudgetUsed: uint64(i) << 20, Battery: int8(100 - i*3),
				Software: "2.0.1", Clock: protocol.At(at)}
			if err := tx.PutHeartbeat(ctx, "hand-1", hb, at.UnixMilli(), 1); err != nil {
				return err
			}
		}
		_, err := tx.ApplyPresence(ctx, "hand-1", &protocol.Presence{State: protocol.Offline, Session: uuid.New(),
			At: protocol.At(now.Add(-2 * time.Hour))}, now.Add(-2*time.Hour).UnixMilli())
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.rules.PutRule(ctx, alerts.Rule{ID: "offline", Name: "Device offline", Kind: alerts.Offline, Enabled: true,
		Params: alerts.Params{OfflineFor: alerts.Duration(15 * time.Minute)}, Notify: alerts.Notify{Emails: []string{"it@example.org"}}}); err != nil {
		t.Fatal(err)
	}
	if err := e.rules.Evaluate(ctx); err != nil {
		t.Fatal(err)
	}
	firing, err := e.db.Alerts(ctx, store.AlertFilter{FiringOnly: true})
	if err != nil || len(firing) != 1 {
		t.Fatalf("seeded alerts: %+v, %v", firing, err)
	}
	return e.deadLetter("hand-1", "owi-bussgeldstelle"), firing[0].ID
}

type axeResult struct {
	Passes     int            `json:"passes"`
	Violations []axeViolation `json:"violations"`
}

type axeViolation struct {
	ID     string   `json:"id"`
	Impact string   `json:"impact"`
	Help   string   `json:"help"`
	Nodes  []string `json:"nodes"`
}

func TestBrowser(t *testing.T) {
	chrome := needChromium(t)
	axe := axeSource(t)
	e := newEnv(t, envOptions{live: true})
	dead, alertID := seed(t, e)
	e.addUser("anna", auth.Admin, pw)
	vera := e.addUser("vera", auth.Viewer, pw)
	dev := startFakeDevice(t, e.broker.DevAddr().String(), "kiosk-1")
	eventually(t, "kiosk-1 online", 10*time.Second, func() bool {
		p, err := e.db.Presence(context.Background(), "kiosk-1")
		return err == nil && p.Online
	})

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(ctx,
		chromedp.ExecPath(chrome),
		chromedp.Flag("headless", true),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.Flag("disable-quic", true),
		chromedp.NoFirstRun,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 900),
	)
	defer cancelAlloc()
	bctx, cancelBrowser := chromedp.NewContext(allocCtx)
	defer cancelBrowser()

	run := func(t *testing.T, what string, steps ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		if err := chromedp.Do(bctx, steps...); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	eval := func(t *testing.T, js string) string {
		t.Helper()
		v, err := chromedp.Run(bctx, chromedp.Evaluate[string](js))
		if err != nil {
			t.Fatalf("evaluate %s: %v", js, err)
		}
		return v
	}
	// waitJS polls a JavaScript condition in the page.
	waitJS := func(t *testing.T, what, js string, timeout time.Duration) {
		t.Helper()
		deadline := time.Now().Add(timeout)
		for {
			ok, err := chromedp.Run(bctx, chromedp.Evaluate[bool](js))
			if err == nil && ok {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: not within %v (%v)", what, timeout, err)
			}
			time.Sleep(25 * time.Millisecond)
		}
	}
	checkAxe := func(t *testing.T, page string) {
		t.Helper()
		if axe == "" {
			return
		}
		run(t, "open "+page, chromedp.Navigate(e.URL+page), chromedp.WaitReady(chromedp.CSS("#main")))
		if _, err := chromedp.Run(bctx, chromedp.Evaluate[chromedp.Void](axe)); err != nil {
			t.Fatalf("inject axe-core: %v", err)
		}
		res, err := chromedp.Run(bctx, chromedp.Evaluate[axeResult](`axe.run(document, {runOnly: {type: 'tag',
			values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa']}}).then(r => ({passes: r.passes.length,
			violations: r.violations.map(v => ({id: v.id, impact: v.impact || '', help: v.help,
			nodes: v.nodes.slice(0, 5).map(n => n.target.join(' '))}))}))`, chromedp.EvalAwaitPromise))
		if err != nil {
			t.Fatalf("axe on %s: %v", page, err)
		}
		if res.Passes == 0 {
			t.Errorf("axe checked nothing on %s", page)
		}
		for _, v := range res.Violations {
			t.Errorf("WCAG 2.1 AA violation on %s: %s (%s): %s at %v", page, v.ID, v.Impact, v.Help, v.Nodes)
		}
	}
	shot := func(t *testing.T, name, page string) {
		t.Helper()
		if !*updateScreenshots {
			return
		}
		run(t, "open "+page, chromedp.Navigate(e.URL+page), chromedp.WaitReady(chromedp.CSS("#main")))
		if strings.Contains(page, "devices/") {
			waitJS(t, "live updates on", `document.getElementById('live-status')?.dataset.state === 'on'`, 5*time.Second)
		}
		png, err := chromedp.Run(bctx, chromedp.FullScreenshot(100))
		if err != nil {
			t.Fatal(err)
		}
		dir := filepath.Join("..", "..", "docs", "screenshots")
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name+".png"), png, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	login := func(t *testing.T, name string) {
		t.Helper()
		run(t, "sign in as "+name,
			chromedp.Navigate(e.URL+"/login"),
			chromedp.SendKeys(chromedp.CSS("#name"), name),
			chromedp.SendKeys(chromedp.CSS("#password"), pw),
			chromedp.Click(chromedp.CSS(`form[action="/login"] button[type=submit]`)),
			chromedp.WaitReady(chromedp.CSS(`form[action="/logout"]`)),
		)
	}

	t.Run("refused without a session", func(t *testing.T) {
		for _, page := range []string{"/overview", "/devices/kiosk-1", "/users", "/audit"} {
			run(t, "open "+page, chromedp.Navigate(e.URL+page), chromedp.WaitReady(chromedp.CSS("#password")))
			loc, err := chromedp.Run(bctx, chromedp.Location())
			if err != nil || !strings.Contains(loc, "/login?next=") {
				t.Errorf("%s without a session landed on %s (%v)", page, loc, err)
			}
		}
		checkAxe(t, "/login")
		shot(t, "login", "/login")
	})

	t.Run("sign in", func(t *testing.T) {
		login(t, "anna")
		loc, _ := chromedp.Run(bctx, chromedp.Location())
		if !strings.HasSuffix(loc, "/overview") {
			t.Fatalf("after sign-in at %s", loc)
		}
		if h1 := eval(t, `document.querySelector('h1').textContent`); h1 != "Overview" {
			t.Errorf("h1 %q", h1)
		}
	})

	t.Run("send a command and see its result", func(t *testing.T) {
		run(t, "send reboot",
			chromedp.Navigate(e.URL+"/devices/kiosk-1"),
			chromedp.WaitReady(chromedp.CSS("#c-name")),
			chromedp.SendKeys(chromedp.CSS("#c-name"), "reboot"),
			chromedp.Click(chromedp.CSS(`form[action$="/commands"] button[type=submit]`)),
			chromedp.WaitReady(chromedp.CSS(`.notice.ok`)),
		)
		waitJS(t, "live updates on", `document.getElementById('live-status').dataset.state === 'on'`, 10*time.Second)
		if st := eval(t, `document.querySelector('[data-command]').dataset.state`); st == "done" {
			t.Fatalf("the command is done before the device answered")
		}
		eval(t, `window.koggeMarker = 'kept'; 'ok'`)
		dev.answer(t)
		waitJS(t, "command done", `(() => { const r = document.querySelector('[data-command]');
			return !!r && r.dataset.state === 'done' && r.querySelector('[data-command-result]').textContent.includes('done: reboot'); })()`,
			15*time.Second)
		if eval(t, `window.koggeMarker || 'reloaded'`) != "kept" {
			t.Error("the page reloaded: the result did not arrive live")
		}
		cmds, _ := e.cmds.History(context.Background(), store.CommandFilter{Device: "kiosk-1"})
		if len(cmds) != 1 || cmds[0].State() != store.CommandDone {
			t.Errorf("commands in the store: %+v", cmds)
		}
	})

	t.Run("device goes offline live", func(t *testing.T) {
		run(t, "open the device", chromedp.Navigate(e.URL+"/devices/kiosk-1"), chromedp.WaitReady(chromedp.CSS("#main")))
		waitJS(t, "live updates on", `document.getElementById('live-status').dataset.state === 'on'`, 10*time.Second)
		if got := eval(t, `document.querySelector('[data-presence="kiosk-1"] .badge').className`); !strings.Contains(got, "state-online") {
			t.Fatalf("badge before the cut: %q", got)
		}
		eval(t, `window.koggeMarker = 'kept'; 'ok'`)
		dev.cut()
		waitJS(t, "kiosk-1 offline on the page", `(() => { const c = document.querySelector('[data-presence="kiosk-1"]');
			return c.dataset.state === 'offline' && c.textContent.includes('offline'); })()`, 15*time.Second)
		if eval(t, `window.koggeMarker || 'reloaded'`) != "kept" {
			t.Error("the page reloaded: the change did not arrive live")
		}
		waitJS(t, "screen readers told", `document.getElementById('live-announce').textContent.includes('kiosk-1')`, 5*time.Second)
	})

	t.Run("form post without CSRF token refused", func(t *testing.T) {
		run(t, "post the language form without its token",
			chromedp.Navigate(e.URL+"/account"),
			chromedp.WaitReady(chromedp.CSS(`form[action="/account/lang"]`)),
		)
		eval(t, `document.querySelector('form[action="/account/lang"] input[name=csrf]').remove(); 'ok'`)
		run(t, "submit", chromedp.Click(chromedp.CSS(`form[action="/account/lang"] button[type=submit]`)),
			chromedp.WaitReady(chromedp.CSS(`.notice.error`)))
		if got := eval(t, `document.querySelector('.notice.error').textContent`); !strings.Contains(got, "security token") {
			t.Errorf("refusal text %q", got)
		}
	})

	t.Run("replay a dead letter", func(t *testing.T) {
		run(t, "replay",
			chromedp.Navigate(e.URL+"/delivery"),
			chromedp.WaitReady(chromedp.CSS(`tr[data-record="`+dead.String()+`"]`)),
			chromedp.Click(chromedp.CSS(`tr[data-record="`+dead.String()+`"] form[action$="/replay"] button`)),
			chromedp.WaitReady(chromedp.CSS(`.notice.ok`)),
		)
		if n := eval(t, `String(document.querySelectorAll('tr[data-record]').length)`); n != "0" {
			t.Errorf("%s dead letters left on the page", n)
		}
		ds, err := e.queue.Deliveries(context.Background(), store.DeliveryFilter{State: store.DeliveryQueued})
		if err != nil || len(ds) != 1 || ds[0].Record != dead {
			t.Errorf("queued after the replay: %+v, %v", ds, err)
		}
	})

	t.Run("every page passes axe-core", func(t *testing.T) {
		for _, page := range []string{"/overview", "/devices", "/devices/kiosk-1",
			"/devices/hand-1", "/records", "/delivery", "/alerts", "/alerts/" + alertID,
			"/alert-rules/offline", "/audit", "/users", "/users/" + vera.ID, "/account"} {
			checkAxe(t, page)
		}
		// And in German.
		run(t, "switch to German", chromedp.Navigate(e.URL+"/lang?to=de&back=/overview"), chromedp.WaitReady(chromedp.CSS("#main")))
		if lang := eval(t, `document.documentElement.lang`); lang != "de" {
			t.Errorf("lang after the switch: %q", lang)
		}
		for _, page := range []string{"/overview", "/devices/hand-1", "/alerts"} {
			checkAxe(t, page)
		}
		run(t, "back to English", chromedp.Navigate(e.URL+"/lang?to=en&back=/overview"), chromedp.WaitReady(chromedp.CSS("#main")))
	})

	t.Run("screenshots", func(t *testing.T) {
		if !*updateScreenshots {
			t.Skip("run with -update-screenshots to write docs/screenshots")
		}
		// Something online and something to replay, for the pictures.
		startFakeDevice(t, e.broker.DevAddr().String(), "kiosk-2")
		e.deadLetter("hand-1", "owi-bussgeldstelle")
		for _, p := range [][2]string{{"overview", "/overview"}, {"devices", "/devices"}, {"device", "/devices/hand-1"},
			{"records", "/records"}, {"delivery", "/delivery"}, {"alerts", "/alerts"}, {"alert-rule", "/alert-rules/offline"},
			{"audit", "/audit"}, {"users", "/users"}, {"account", "/account"}} {
			shot(t, p[0], p[1])
		}
	})

	t.Run("a viewer cannot send commands", func(t *testing.T) {
		run(t, "sign out", chromedp.Navigate(e.URL+"/overview"), chromedp.WaitReady(chromedp.CSS(`form[action="/logout"]`)),
			chromedp.Click(chromedp.CSS(`form[action="/logout"] button`)), chromedp.WaitReady(chromedp.CSS("#password")))
		login(t, "vera")
		run(t, "open the device", chromedp.Navigate(e.URL+"/devices/kiosk-1"), chromedp.WaitReady(chromedp.CSS("#main")))
		if got := eval(t, `String(document.querySelector('form[action$="/commands"]') === null)`); got != "true" {
			t.Error("the viewer sees the command form")
		}
		got, err := chromedp.Run(bctx, chromedp.Evaluate[string](`(async () => {
			const csrf = document.querySelector('form[action="/logout"] input[name=csrf]').value;
			const r = await fetch('/devices/kiosk-1/commands', {method: 'POST', body: new URLSearchParams({csrf, name: 'reboot'})});
			return String(r.status); })()`, chromedp.EvalAwaitPromise))
		if err != nil || got != "403" {
			t.Errorf("the viewer's forged command post: %q, %v", got, err)
		}
		cmds, err := e.cmds.History(context.Background(), store.CommandFilter{Device: "kiosk-1"})
		if err != nil || len(cmds) != 1 {
			t.Errorf("commands of kiosk-1: %d, %v; want only the admin's", len(cmds), err)
		}
	})
}
