package dashboard

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/kogge-fleet/kogge/fleet-server/audit"
	"github.com/kogge-fleet/kogge/fleet-server/dashboard/auth"
	"github.com/kogge-fleet/kogge/fleet-server/rollout"
	"github.com/kogge-fleet/kogge/protocol/artifact"
)

// withRollouts serves the environment's dashboard again with the rollout
// service, and returns the service.
func withRollouts(t *testing.T, e *env) *rollout.Service {
	t.Helper()
	key, err := artifact.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	ro, err := rollout.New(e.db, e.cmds, e.audit, rollout.Options{Keys: artifact.NewKeyring(key.Public().(ed25519.PublicKey)),
		Logger: slogDiscard()})
	if err != nil {
		t.Fatal(err)
	}
	h, err := New(Services{Registry: e.reg, Fleet: e.db, Users: e.db, Commands: e.cmds, Twin: e.twin, Rules: e.rules,
		Alerts: e.db, Audit: e.audit, Delivery: e.queue, Rollouts: ro},
		Options{Logger: slogDiscard(), Password: testParams, PollEvery: 50 * time.Millisecond, Lang: "en"})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- h.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	e.h, e.URL = h, srv.URL
	bin := bytes.Repeat([]byte("kogge"), 3000)
	m, err := artifact.Describe(artifact.Manifest{Name: "kogge-kiosk", Version: "1.5.0", Apps: []string{"kiosk"}, Platform: "linux/amd64",
		Created: time.Now()}, bytes.NewReader(bin))
	if err != nil {
		t.Fatal(err)
	}
	signed, err := artifact.Sign(m, key)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ro.Upload(context.Background(), signed, bytes.NewReader(bin), "api-token:test"); err != nil {
		t.Fatal(err)
	}
	return ro
}

func TestRolloutPages(t *testing.T) {
	e := newEnv(t, envOptions{})
	for _, d := range []string{"kiosk-1", "kiosk-2", "kiosk-3"} {
		e.addDevice("mitte", d)
	}
	ro := withRollouts(t, e)
	ctx := context.Background()
	arts, _ := ro.Artifacts(ctx)

	e.addUser("anna", auth.Admin, pw)
	e.addUser("otto", auth.Operator, pw)
	e.addUser("vera", auth.Viewer, pw)
	admin := e.client()
	admin.login("anna", pw)

	p := admin.get("/rollouts")
	if p.status != http.StatusOK || !strings.Contains(p.body, "kogge-kiosk") || !strings.Contains(p.body, "Start the rollout") ||
		!strings.Contains(p.body, `href="/rollouts"`) {
		t.Fatalf("rollouts page: %d\n%s", p.status, p.body)
	}
	// A bad form is shown again with what was entered and the reason.
	bad := admin.post("/rollouts", url.Values{"csrf": {p.csrf()}, "artifact": {arts[0].ID.String()}, "group": {"mitte"},
		"waves": {"0"}, "soak": {"1m"}})
	if bad.status != http.StatusBadRequest || !strings.Contains(bad.body, `value="0"`) || !strings.Contains(bad.body, "wave") {
		t.Fatalf("bad waves: %d\n%s", bad.status, bad.body)
	}
	if bad = admin.post("/rollouts", url.Values{"csrf": {p.csrf()}, "artifact": {arts[0].ID.String()}, "soak": {"lange"}}); bad.status != http.StatusBadRequest ||
		!strings.Contains(bad.body, "not a duration") {
		t.Errorf("bad soak: %d", bad.status)
	}
	created := admin.post("/rollouts", url.Values{"csrf": {p.csrf()}, "artifact": {arts[0].ID.String()}, "group": {"mitte"},
		"waves": {"1,100%"}, "success": {"1"}, "errors": {"0"}, "soak": {"1m"}, "window": {"always"}})
	m := regexp.MustCompile(`^/rollouts/([0-9a-f-]{36})\?done=done.rollout_started$`).FindStringSubmatch(created.location)
	if created.status != http.StatusSeeOther || m == nil {
		t.Fatalf("create: %d %q\n%s", created.status, created.location, created.body)
	}
	id := m[1]
	ro.Step(ctx)
	p = admin.get(created.location)
	for _, want := range []string{"The rollout started", "kogge-kiosk 1.5.0", "command sent", "running", "Pause",
		`data-count="rollout-` + id + `-sent">1<`, `data-count="rollout-` + id + `-wave-1-in_progress">1<`, "wave 1 started"} {
		if !strings.Contains(p.body, want) {
			t.Errorf("rollout page lacks %q", want)
		}
	}

	// A viewer sees, and may not act.
	viewer := e.client()
	viewer.login("vera", pw)
	if p := viewer.get("/rollouts/" + id); p.status != http.StatusOK || strings.Contains(p.body, "Pause") {
		t.Errorf("viewer: %d, actions shown: %v", p.status, strings.Contains(p.body, "Pause"))
	}
	if p := viewer.get("/rollouts"); strings.Contains(p.body, "Start the rollout") {
		t.Error("a viewer is offered the form")
	}
	if p := viewer.post("/rollouts/"+id+"/pause", url.Values{"csrf": {viewer.token()}}); p.status != http.StatusForbidden {
		t.Errorf("viewer pauses: %d", p.status)
	}

	// An operator pauses, resumes and aborts (with a reason and the
	// confirmation).
	op := e.client()
	op.login("otto", pw)
	tok := op.token()
	if p := op.post("/rollouts/"+id+"/pause", url.Values{"csrf": {tok}}); p.location != "/rollouts/"+id+"?done=done.rollout_paused" {
		t.Fatalf("pause: %d %q", p.status, p.location)
	}
	if p := op.post("/rollouts/"+id+"/pause", url.Values{"csrf": {tok}}); p.status != http.StatusConflict {
		t.Errorf("pause twice: %d", p.status)
	}
	if p := op.post("/rollouts/"+id+"/resume", url.Values{"csrf": {tok}}); p.location != "/rollouts/"+id+"?done=done.rollout_resumed" {
		t.Fatalf("resume: %d %q", p.status, p.location)
	}
	if p := op.post("/rollouts/"+id+"/abort", url.Values{"csrf": {tok}, "reason": {"broken"}}); p.status != http.StatusBadRequest {
		t.Errorf("abort without the confirmation: %d", p.status)
	}
	if p := op.post("/rollouts/"+id+"/abort", url.Values{"csrf": {tok}, "reason": {"camera driver broken"}, "confirm": {"yes"}}); p.location != "/rollouts/"+id+"?done=done.rollout_aborted" {
		t.Fatalf("abort: %d %q", p.status, p.location)
	}
	if p := op.get("/rollouts/" + id); !strings.Contains(p.body, "camera driver broken") || strings.Contains(p.body, ">Pause<") {
		t.Errorf("after the abort:\n%s", p.body)
	}
	if p := op.get("/rollouts/00000000-0000-0000-0000-000000000000"); p.status != http.StatusNotFound {
		t.Errorf("unknown rollout: %d", p.status)
	}

	// Every action is in the audit log, as the user who did it.
	entries, err := e.audit.List(ctx, audit.Filter{Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	var acts []string
	for _, en := range entries {
		if strings.HasPrefix(en.Action, "rollout.") {
			acts = append(acts, en.Actor+" "+en.Action)
		}
	}
	for _, want := range []string{"dashboard:anna rollout.create", "dashboard:otto rollout.pause", "dashboard:otto rollout.resume", "dashboard:otto rollout.abort"} {
		if !slices.Contains(acts, want) {
			t.Errorf("audit lacks %q: %v", want, acts)
		}
	}
}

// TestRolloutLiveProgress checks that a rollout's progress reaches an
// open page over the websocket as counts keyed for its elements.
func TestRolloutLiveProgress(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.addDevice("mitte", "kiosk-1")
	ro := withRollouts(t, e)
	e.addUser("vera", auth.Viewer, pw)
	c := e.client()
	c.login("vera", pw)
	u, _ := url.Parse(e.URL)
	hdr := http.Header{"Origin": {e.URL}}
	for _, ck := range c.c.Jar.Cookies(u) {
		hdr.Add("Cookie", ck.Name+"="+ck.Value)
	}
	ws, resp, err := websocket.DefaultDialer.Dial("ws://"+u.Host+"/ws", hdr)
	if err != nil {
		t.Fatalf("websocket: %v (%v)", err, resp)
	}
	defer ws.Close()
	eventually(t, "the page's connection", 5*time.Second, func() bool { return e.h.hub.size() == 1 })

	ctx := context.Background()
	arts, _ := ro.Artifacts(ctx)
	r, err := ro.Create(ctx, rollout.Spec{Artifact: arts[0].ID, Window: "always"}, "dashboard:vera")
	if err != nil {
		t.Fatal(err)
	}
	r.Counts[rollout.DevSent], r.Counts[rollout.DevPending] = 1, 0
	r.Waves[0].InProgress = 1
	e.h.RolloutChanged(r)
	ws.SetReadDeadline(time.Now().Add(5 * time.Second))
	for {
		_, b, err := ws.ReadMessage()
		if err != nil {
			t.Fatal(err)
		}
		var m liveMessage
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatal(err)
		}
		if m.Type != "counts" || m.ID != r.ID.String() {
			continue
		}
		key := "rollout-" + r.ID.String() + "-"
		if m.Counts[key+"sent"] != 1 || m.Counts[key+"wave"] != 1 || m.Counts[key+"wave-1-in_progress"] != 1 || m.State != rollout.Running {
			t.Errorf("live message: %+v", m)
		}
		return
	}
}

func slogDiscard() *slog.Logger { return slog.New(slog.DiscardHandler) }
