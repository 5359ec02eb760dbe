package dashboard

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/kogge-fleet/kogge/fleet-server/alerts"
	"github.com/kogge-fleet/kogge/fleet-server/audit"
	"github.com/kogge-fleet/kogge/fleet-server/broker"
	"github.com/kogge-fleet/kogge/fleet-server/commands"
	"github.com/kogge-fleet/kogge/fleet-server/dashboard/auth"
	"github.com/kogge-fleet/kogge/fleet-server/delivery"
	"github.com/kogge-fleet/kogge/fleet-server/ingest"
	"github.com/kogge-fleet/kogge/fleet-server/presence"
	"github.com/kogge-fleet/kogge/fleet-server/registry"
	"github.com/kogge-fleet/kogge/fleet-server/store"
	"github.com/kogge-fleet/kogge/fleet-server/twin"
	"github.com/kogge-fleet/kogge/protocol"
)

// testParams are cheap argon2id parameters for tests.
var testParams = auth.Params{Memory: 1024, Time: 1, Threads: 1}

// recorder is a publisher that keeps nothing: the non-live environment has
// no broker.
type recorder struct {
	mu sync.Mutex
	n  int
}

func (r *recorder) Publish(string, []byte, bool) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.n++
	return nil
}

// env is a dashboard over the real services on a SQLite store in a
// temporary directory, served on loopback. With live, a real embedded
// broker (with its plain-TCP development listener), the ingest and the
// presence tracker run too, so that devices can connect.
type env struct {
	t      testing.TB
	db     *store.DB
	reg    *registry.Registry
	cmds   *commands.Service
	twin   *twin.Service
	queue  *delivery.Queue
	audit  *audit.Log
	rules  *alerts.Evaluator
	h      *Handler
	URL    string
	broker *broker.Broker
	logs   *logBuffer
}

type envOptions struct {
	live bool
	// tune changes the dashboard options.
	tune func(o *Options)
}

// logBuffer keeps the logs and shows them when the test fails.
type logBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func newEnv(t testing.TB, eo envOptions) *env {
	t.Helper()
	logs := &logBuffer{}
	t.Cleanup(func() {
		if t.Failed() {
			logs.mu.Lock()
			t.Logf("logs:\n%s", logs.b.String())
			logs.mu.Unlock()
		}
	})
	log := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelInfo}))
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	t.Cleanup(func() {
		cancel()
		wg.Wait()
	})
	db, err := store.Open(ctx, filepath.Join(t.TempDir(), "kogge.db"), store.Options{Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	e := &env{t: t, db: db, logs: logs}
	if e.reg, err = registry.New(ctx, db, registry.Options{Logger: log, BrokerAddress: "mqtts://127.0.0.1:8883"}); err != nil {
		t.Fatal(err)
	}
	var pub interface {
		Publish(topic string, payload []byte, retained bool) error
	} = &recorder{}
	if eo.live {
		e.broker, err = broker.New(e.reg.BrokerTLSConfig(), e.reg, broker.Options{Address: "127.0.0.1:0",
			DevAddress: "127.0.0.1:0", DevInsecure: true, Logger: log})
		if err != nil {
			t.Fatal(err)
		}
		pub = e.broker
		e.reg.OnRevoke(func(d string) { e.broker.DisconnectDevice(d) })
	}
	if e.cmds, err = commands.New(db, pub, commands.Options{Logger: log}); err != nil {
		t.Fatal(err)
	}
	if e.twin, err = twin.New(db, pub, twin.Options{Logger: log}); err != nil {
		t.Fatal(err)
	}
	if e.queue, err = delivery.New(db, pub, delivery.Options{Logger: log, MaxAttempts: 1}); err != nil {
		t.Fatal(err)
	}
	if e.audit, err = audit.New(db, audit.Options{Logger: log}); err != nil {
		t.Fatal(err)
	}
	opts := Options{Logger: log, Password: testParams, PollEvery: 50 * time.Millisecond, Lang: "en"}
	if eo.tune != nil {
		eo.tune(&opts)
	}
	var h *Handler
	if e.rules, err = alerts.New(db, alerts.Options{Logger: log, Every: time.Hour,
		OnChange: func(ev alerts.Event) { h.AlertChanged(ev) }}); err != nil {
		t.Fatal(err)
	}
	h, err = New(Services{Registry: e.reg, Fleet: db, Users: db, Commands: e.cmds, Twin: e.twin, Rules: e.rules,
		Alerts: db, Audit: e.audit, Delivery: e.queue}, opts)
	if err != nil {
		t.Fatal(err)
	}
	e.h = h
	run := func(name string, fn func(context.Context) error) {
		wg.Go(func() {
			if err := fn(ctx); err != nil && ctx.Err() == nil {
				t.Errorf("%s: %v", name, err)
			}
		})
	}
	run("dashboard", h.Run)
	run("commands", e.cmds.Run)
	if eo.live {
		in, err := ingest.New(db, e.broker, ingest.Options{Logger: log, LastSeenEvery: 100 * time.Millisecond,
			OnConnect: func(d string) { e.cmds.Connected(d); e.twin.Connected(d); e.queue.Connected(d) }})
		if err != nil {
			t.Fatal(err)
		}
		tr, err := presence.New(db, presence.Options{Logger: log, Keepalive: time.Minute, LastSeenResolution: 100 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		run("ingest", in.Run)
		run("presence", tr.Run)
		if err := e.broker.Start(ctx); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { e.broker.Close() })
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	e.URL = srv.URL
	return e
}

// addUser creates a local user.
func (e *env) addUser(name string, role auth.Role, password string) store.User {
	e.t.Helper()
	hash, err := auth.HashPassword(password, testParams)
	if err != nil {
		e.t.Fatal(err)
	}
	u := store.User{ID: uuid.Must(uuid.NewV7()).String(), Name: name, Role: string(role), PasswordHash: hash, CreatedAt: time.Now().UnixMilli()}
	if err := e.db.CreateUser(context.Background(), u); err != nil {
		e.t.Fatal(err)
	}
	return u
}

// addDevice creates group (if needed) and enrolls a device in it.
func (e *env) addDevice(group, id string) {
	e.t.Helper()
	ctx := context.Background()
	if _, err := e.reg.CreateGroup(ctx, group, "Group "+group); err != nil && !errors.Is(err, registry.ErrExists) {
		e.t.Fatal(err)
	}
	code, err := e.reg.CreateCode(ctx, group, registry.CodeOptions{})
	if err != nil {
		e.t.Fatal(err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		e.t.Fatal(err)
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, key)
	if err != nil {
		e.t.Fatal(err)
	}
	if _, err := e.reg.Enroll(ctx, registry.EnrollRequest{Code: code.Secret, DeviceID: id,
		Inventory: registry.Inventory{Model: "Kiosk K1", Serial: "SN-" + id, Software: "1.4.2", Location: "Rathaus EG",
			Peripherals: []registry.Peripheral{{Name: "CAM0", Kind: "camera"}}},
		CSR: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})}); err != nil {
		e.t.Fatal(err)
	}
}

// deadLetter stores a record of device for office and makes it a dead
// letter (one attempt, failed for good); it returns the record id.
func (e *env) deadLetter(device, office string) uuid.UUID {
	e.t.Helper()
	ctx := context.Background()
	var seq uint64
	if st, err := e.db.DeviceSync(ctx, device); err == nil {
		seq = st.High
	}
	r := &protocol.Record{ID: uuid.Must(uuid.NewV7()), Seq: seq + 1, Kind: "owi.violation", Office: office,
		CreatedAt: protocol.At(time.Now()), Meta: map[string]string{"tatbestand": "112402"}, Sealed: []byte("sealed")}
	err := e.db.Ingest(ctx, func(tx *store.IngestTx) error {
		now := time.Now().UnixMilli()
		if _, err := tx.AdvanceHigh(ctx, device, seq, seq+1, now); err != nil {
			return err
		}
		if _, err := tx.InsertRecord(ctx, device, r, now); err != nil {
			return err
		}
		_, err := tx.EnqueueDelivery(ctx, device, r.ID, now)
		return err
	})
	if err != nil {
		e.t.Fatal(err)
	}
	ds, err := e.queue.Lease(ctx, office, 10, time.Minute)
	if err != nil || len(ds) == 0 {
		e.t.Fatalf("lease: %v, %d", err, len(ds))
	}
	for _, d := range ds {
		if err := e.queue.Fail(ctx, d.ID, d.Attempt, "procedure refused the record", true); err != nil {
			e.t.Fatal(err)
		}
	}
	return r.ID
}

// client is a browser stand-in with a cookie jar that does not follow
// redirects.
type webClient struct {
	t    testing.TB
	base string
	c    *http.Client
}

func (e *env) client() *webClient {
	jar, _ := cookiejar.New(nil)
	return &webClient{t: e.t, base: e.URL, c: &http.Client{Jar: jar, Timeout: 10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

type page struct {
	status   int
	location string
	body     string
}

func (c *webClient) do(req *http.Request) page {
	c.t.Helper()
	resp, err := c.c.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return page{status: resp.StatusCode, location: resp.Header.Get("Location"), body: string(b)}
}

func (c *webClient) get(path string) page {
	c.t.Helper()
	req, _ := http.NewRequest(http.MethodGet, c.base+path, nil)
	return c.do(req)
}

func (c *webClient) post(path string, form url.Values) page {
	c.t.Helper()
	req, _ := http.NewRequest(http.MethodPost, c.base+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return c.do(req)
}

var csrfRE = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

func (p page) csrf() string {
	m := csrfRE.FindStringSubmatch(p.body)
	if m == nil {
		return ""
	}
	return m[1]
}

// login signs in and returns the page it lands on.
func (c *webClient) login(name, password string) page {
	c.t.Helper()
	p := c.get("/login")
	return c.post("/login", url.Values{"csrf": {p.csrf()}, "name": {name}, "password": {password}})
}

// token returns the session's CSRF token.
func (c *webClient) token() string {
	c.t.Helper()
	tok := c.get("/account").csrf()
	if tok == "" {
		c.t.Fatal("no CSRF token on /account: not signed in?")
	}
	return tok
}

// eventually polls cond until it holds or timeout passes.
func eventually(t testing.TB, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, timeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func inCI() bool { return os.Getenv("CI") == "true" }
