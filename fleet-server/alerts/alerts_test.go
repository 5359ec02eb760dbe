package alerts

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kogge-fleet/kogge/fleet-server/store"
	"github.com/kogge-fleet/kogge/protocol"
)

func TestOpeningHours(t *testing.T) {
	h := OpeningHours{Days: []int{1, 2, 3, 4, 5}, From: "08:00", To: "16:00", TimeZone: "Europe/Berlin"}
	if err := h.Validate(); err != nil {
		t.Fatal(err)
	}
	berlin, _ := time.LoadLocation("Europe/Berlin")
	at := func(s string) time.Time {
		v, err := time.ParseInLocation("2006-01-02 15:04", s, berlin)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	for _, tc := range []struct {
		from, to string
		want     time.Duration
	}{
		{"2025-03-04 07:00", "2025-03-04 09:30", 90 * time.Minute},           // Tuesday, opens at 8
		{"2025-03-04 15:00", "2025-03-05 09:00", 2 * time.Hour},              // an hour each day
		{"2025-03-07 15:00", "2025-03-10 08:30", 90 * time.Minute},           // Friday to Monday: the weekend does not count
		{"2025-03-08 09:00", "2025-03-09 12:00", 0},                          // Saturday and Sunday
		{"2025-03-28 15:00", "2025-03-31 09:00", 2 * time.Hour},              // over the change to summer time
		{"2025-03-04 10:00", "2025-03-04 09:00", 0},                          // backwards
		{"2024-01-01 00:00", "2025-03-04 09:00", 21*8*time.Hour + time.Hour}, // capped at 31 days: Feb 3 to Mar 3, 21 weekdays
	} {
		if got := h.Overlap(at(tc.from), at(tc.to)); got != tc.want {
			t.Errorf("Overlap(%s, %s) = %v, want %v", tc.from, tc.to, got, tc.want)
		}
	}
	if !h.Open(at("2025-03-04 08:00")) || h.Open(at("2025-03-04 16:00")) || h.Open(at("2025-03-08 10:00")) {
		t.Error("Open")
	}
	for _, bad := range []OpeningHours{
		{Days: nil, From: "08:00", To: "16:00"},
		{Days: []int{7}, From: "08:00", To: "16:00"},
		{Days: []int{1}, From: "8", To: "16:00"},
		{Days: []int{1}, From: "16:00", To: "08:00"},
		{Days: []int{1}, From: "08:00", To: "16:00", TimeZone: "Mars/Olympus"},
	} {
		if bad.Validate() == nil {
			t.Errorf("%+v accepted", bad)
		}
	}
}

func TestRuleValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		rule Rule
		ok   bool
	}{
		{"offline", Rule{Name: "x", Kind: Offline, Params: Params{OfflineFor: Duration(15 * time.Minute)}}, true},
		{"offline too short", Rule{Name: "x", Kind: Offline, Params: Params{OfflineFor: Duration(time.Second)}}, false},
		{"offline bad hours", Rule{Name: "x", Kind: Offline, Params: Params{OfflineFor: Duration(time.Hour), Hours: &OpeningHours{}}}, false},
		{"oldest", Rule{Name: "x", Kind: OldestUnsent, Params: Params{OldestUnsent: Duration(time.Hour)}}, true},
		{"peripheral", Rule{Name: "x", Kind: PeripheralFault}, true},
		{"delivery", Rule{Name: "x", Kind: DeliveryFailures, Params: Params{FailureRate: 0.2}}, true},
		{"delivery rate 0", Rule{Name: "x", Kind: DeliveryFailures}, false},
		{"delivery rate 2", Rule{Name: "x", Kind: DeliveryFailures, Params: Params{FailureRate: 2}}, false},
		{"cert", Rule{Name: "x", Kind: CertExpiring, Params: Params{CertWithin: Duration(14 * 24 * time.Hour)}}, true},
		{"cert no window", Rule{Name: "x", Kind: CertExpiring}, false},
		{"disk", Rule{Name: "x", Kind: DiskLow, Params: Params{BudgetUsedAbove: 90}}, true},
		{"disk nothing", Rule{Name: "x", Kind: DiskLow}, false},
		{"unknown kind", Rule{Name: "x", Kind: "cpu"}, false},
		{"no name", Rule{Kind: PeripheralFault}, false},
		{"targets", Rule{Name: "x", Kind: PeripheralFault, Notify: Notify{Webhooks: []string{"https://hooks.example.org/k"}, Emails: []string{"it@example.org"}}}, true},
		{"bad webhook", Rule{Name: "x", Kind: PeripheralFault, Notify: Notify{Webhooks: []string{"ftp://x"}}}, false},
		{"bad e-mail", Rule{Name: "x", Kind: PeripheralFault, Notify: Notify{Emails: []string{"IT <it@example.org>"}}}, false},
	} {
		err := tc.rule.Validate()
		if (err == nil) != tc.ok || (err != nil && !errors.Is(err, ErrInvalid)) {
			t.Errorf("%s: Validate = %v, want ok %v", tc.name, err, tc.ok)
		}
	}
	var d Duration
	if err := json.Unmarshal([]byte(`"90s"`), &d); err != nil || time.Duration(d) != 90*time.Second {
		t.Errorf("Duration from JSON: %v, %v", d, err)
	}
	if err := json.Unmarshal([]byte(`"soon"`), &d); err == nil {
		t.Error("duration \"soon\" accepted")
	}
}

type fakeDelivery struct{ rates []DestinationRate }

func (f fakeDelivery) FailureRates(context.Context, time.Time) ([]DestinationRate, error) {
	return f.rates, nil
}

type events struct {
	mu  sync.Mutex
	got []Event
}

func (e *events) add(ev Event) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.got = append(e.got, ev)
}

func (e *events) take() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []string
	for _, ev := range e.got {
		s := "resolved"
		if ev.Firing {
			s = "firing"
		}
		out = append(out, s+" "+ev.Rule.Name+" "+ev.Alert.Subject)
	}
	e.got = nil
	return out
}

func TestEvaluator(t *testing.T) {
	ctx := context.Background()
	db := openStore(t)
	berlin, _ := time.LoadLocation("Europe/Berlin")
	t0 := time.Date(2025, 3, 4, 9, 0, 0, 0, berlin) // a Tuesday
	clk := &clock{t: t0}
	day := int64(24 * time.Hour / time.Millisecond)
	addDevice(t, db, "mitte", "kiosk-1", t0.UnixMilli()+60*day)
	addDevice(t, db, "mitte", "kiosk-2", t0.UnixMilli()+5*day)
	addDevice(t, db, "od", "hand-1", t0.UnixMilli()+60*day)
	setPresence(t, db, "kiosk-1", true, t0.Add(-time.Hour))
	setPresence(t, db, "kiosk-2", false, t0.Add(-20*time.Minute))
	setPresence(t, db, "hand-1", false, t0.Add(-3*time.Hour))
	putHeartbeat(t, db, "kiosk-1", protocol.Heartbeat{QueueDepth: 3, OldestUnsentMillis: uint64((50 * time.Minute).Milliseconds()),
		DiskFree: 100 << 20, BudgetUsed: 95, BudgetTotal: 100, Battery: -1,
		Peripherals: []protocol.Peripheral{{Name: "CAM0", Kind: "camera", State: protocol.PeripheralError, Reason: "no signal"},
			{Name: "PRN0", Kind: "printer", State: protocol.PeripheralDegraded}}}, t0.Add(-15*time.Minute))
	putHeartbeat(t, db, "hand-1", protocol.Heartbeat{DiskFree: 5 << 30, Battery: 50,
		Peripherals: []protocol.Peripheral{{Name: "GNSS", Kind: "gnss", State: protocol.PeripheralDegraded}}}, t0.Add(-3*time.Hour))

	var ev events
	e, err := New(db, Options{Logger: slog.New(slog.DiscardHandler), Clock: clk.Now, OnChange: ev.add,
		Delivery: fakeDelivery{rates: []DestinationRate{{"owi-bridge", 40, 12}, {"passport", 40, 1}, {"roads", 2, 2}}}})
	if err != nil {
		t.Fatal(err)
	}
	hours := &OpeningHours{Days: []int{1, 2, 3, 4, 5}, From: "08:00", To: "16:00", TimeZone: "Europe/Berlin"}
	for _, r := range []Rule{
		{ID: "off", Name: "offline", Kind: Offline, Group: "mitte", Enabled: true, Params: Params{OfflineFor: Duration(15 * time.Minute)}},
		{ID: "off-hours", Name: "offline-hours", Kind: Offline, Enabled: true, Params: Params{OfflineFor: Duration(30 * time.Minute), Hours: hours}},
		{ID: "unsent", Name: "unsent", Kind: OldestUnsent, Enabled: true, Params: Params{OldestUnsent: Duration(time.Hour)}},
		{ID: "periph", Name: "periph", Kind: PeripheralFault, Enabled: true},
		{ID: "disk", Name: "disk", Kind: DiskLow, Enabled: true, Params: Params{BudgetUsedAbove: 90, DiskFreeBelow: 50 << 20}},
		{ID: "cert", Name: "cert", Kind: CertExpiring, Enabled: true, Params: Params{CertWithin: Duration(7 * 24 * time.Hour)}},
		{ID: "deliv", Name: "deliv", Kind: DeliveryFailures, Enabled: true, Params: Params{FailureRate: 0.25, MinAttempts: 10}},
		{ID: "off-disabled", Name: "disabled", Kind: PeripheralFault, Enabled: false},
	} {
		if _, err := e.PutRule(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	if err := e.Evaluate(ctx); err != nil {
		t.Fatal(err)
	}
	want := []string{
		// offline (mitte only, 15m): kiosk-2 is 20 min offline.
		"firing offline kiosk-2",
		// offline-hours (30 min within 08–16): hand-1 offline since 6:00,
		// 60 min of it in opening hours; kiosk-2 only 20.
		"firing offline-hours hand-1",
		// unsent: 50 min when reported plus 15 since.
		"firing unsent kiosk-1",
		// periph: CAM0 error; degraded does not count.
		"firing periph kiosk-1",
		"firing disk kiosk-1",
		"firing cert kiosk-2",
		// deliv: 12 of 40; roads has too few attempts.
		"firing deliv owi-bridge",
	}
	if got := ev.take(); strings.Join(got, "\n") != strings.Join(sortedCopy(want), "\n") {
		t.Errorf("events after the first evaluation:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(sortedCopy(want), "\n"))
	}
	// Nothing changed: nothing new.
	if err := e.Evaluate(ctx); err != nil {
		t.Fatal(err)
	}
	if got := ev.take(); len(got) != 0 {
		t.Errorf("second evaluation changed %v", got)
	}
	// kiosk-2 comes back; the peripheral rule is disabled.
	setPresence(t, db, "kiosk-2", true, t0.Add(time.Minute))
	r, _ := e.Rule(ctx, "periph")
	r.Enabled = false
	if _, err := e.PutRule(ctx, r); err != nil {
		t.Fatal(err)
	}
	clk.Set(t0.Add(2 * time.Minute))
	if err := e.Evaluate(ctx); err != nil {
		t.Fatal(err)
	}
	got := ev.take()
	if strings.Join(got, "|") != "resolved offline kiosk-2|resolved periph kiosk-1" {
		t.Errorf("after kiosk-2 returned: %v", got)
	}
	firing, err := db.Alerts(ctx, store.AlertFilter{FiringOnly: true})
	if err != nil || len(firing) != 5 {
		t.Errorf("firing alerts = %d, %v; want 5", len(firing), err)
	}
	for _, a := range firing {
		if a.Rule == "unsent" && !strings.Contains(a.Message, "1h5m0s old (3 waiting)") {
			t.Errorf("unsent message %q", a.Message)
		}
	}
}

func sortedCopy(s []string) []string {
	out := append([]string(nil), s...)
	// The evaluator fires rule by rule in the order of their names.
	order := map[string]int{"cert": 0, "deliv": 1, "disk": 2, "offline": 3, "offline-hours": 4, "periph": 5, "unsent": 6}
	for i := range out {
		for j := i + 1; j < len(out); j++ {
			if order[strings.Fields(out[j])[1]] < order[strings.Fields(out[i])[1]] {
				out[i], out[j] = out[j], out[i]
			}
		}
	}
	return out
}

func TestNotifications(t *testing.T) {
	ctx := context.Background()
	db := openStore(t)
	t0 := time.Date(2025, 3, 4, 9, 0, 0, 0, time.UTC)
	clk := &clock{t: t0}
	addDevice(t, db, "mitte", "kiosk-1", t0.UnixMilli()+1<<40)
	setPresence(t, db, "kiosk-1", false, t0.Add(-time.Hour))

	hook := newHookSink(t, 1) // the first delivery fails
	smtpSrv := newSMTPSink(t)
	e, err := New(db, Options{Logger: slog.New(slog.DiscardHandler), Clock: clk.Now, DashboardURL: "https://fleet.example.org/",
		Webhook: &Webhook{Secret: "hook-secret"},
		Email:   &Mailer{Addr: smtpSrv.Addr, From: "kogge@example.org", TLS: SMTPPlain}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.PutRule(ctx, Rule{ID: "off", Name: "Kiosk offline – Mitte", Kind: Offline, Enabled: true,
		Params: Params{OfflineFor: Duration(15 * time.Minute)},
		Notify: Notify{Webhooks: []string{hook.URL + "/alert"}, Emails: []string{"it@example.org"}}}); err != nil {
		t.Fatal(err)
	}
	if err := e.Evaluate(ctx); err != nil {
		t.Fatal(err)
	}
	sent, err := e.SendDue(ctx)
	if err != nil || sent != 1 {
		t.Fatalf("first SendDue = %d, %v; want the e-mail through and the webhook failed", sent, err)
	}
	mails := smtpSrv.received()
	if len(mails) != 1 || mails[0].to != "<it@example.org>" || !strings.Contains(mails[0].data, "Subject: =?utf-8?q?[Kogge]_FIRING:_Kiosk_offline") ||
		!strings.Contains(mails[0].data, "Subject: kiosk-1") || !strings.Contains(mails[0].data, "https://fleet.example.org/alerts/") {
		t.Errorf("mail = %+v", mails)
	}
	// The webhook is retried after its backoff, not before.
	if sent, _ := e.SendDue(ctx); sent != 0 {
		t.Errorf("retried before the backoff")
	}
	clk.Set(t0.Add(31 * time.Second))
	if sent, err := e.SendDue(ctx); err != nil || sent != 1 {
		t.Fatalf("retry = %d, %v", sent, err)
	}
	hooks := hook.received()
	if len(hooks) != 1 {
		t.Fatalf("webhooks received: %d", len(hooks))
	}
	var n Notification
	if err := json.Unmarshal([]byte(hooks[0].body), &n); err != nil {
		t.Fatal(err)
	}
	if n.Event != "firing" || n.Subject != "kiosk-1" || n.RuleName != "Kiosk offline – Mitte" || n.Kind != Offline || n.ResolvedAt != nil {
		t.Errorf("webhook notification = %+v", n)
	}
	mac := hmac.New(sha256.New, []byte("hook-secret"))
	mac.Write([]byte(hooks[0].body))
	if hooks[0].signature != "sha256="+hex.EncodeToString(mac.Sum(nil)) {
		t.Errorf("signature %q does not match the body", hooks[0].signature)
	}

	// Resolved: both hear of it.
	setPresence(t, db, "kiosk-1", true, t0.Add(time.Minute))
	clk.Set(t0.Add(2 * time.Minute))
	if err := e.Evaluate(ctx); err != nil {
		t.Fatal(err)
	}
	if sent, err := e.SendDue(ctx); err != nil || sent != 2 {
		t.Fatalf("resolved SendDue = %d, %v", sent, err)
	}
	hooks = hook.received()
	if len(hooks) != 2 || !strings.Contains(hooks[1].body, `"event":"resolved"`) || !strings.Contains(hooks[1].body, `"resolved_at"`) {
		t.Errorf("resolved webhook = %+v", hooks)
	}
	if mails := smtpSrv.received(); len(mails) != 2 || !strings.Contains(mails[1].data, "RESOLVED") {
		t.Errorf("resolved mails = %d", len(mails))
	}
}

func TestNotificationGivesUp(t *testing.T) {
	ctx := context.Background()
	db := openStore(t)
	t0 := time.Date(2025, 3, 4, 9, 0, 0, 0, time.UTC)
	clk := &clock{t: t0}
	addDevice(t, db, "mitte", "kiosk-1", 1<<50)
	setPresence(t, db, "kiosk-1", false, t0.Add(-time.Hour))
	hook := newHookSink(t, 1000)
	e, err := New(db, Options{Logger: slog.New(slog.DiscardHandler), Clock: clk.Now, Webhook: &Webhook{}, GiveUpAfter: 2 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.PutRule(ctx, Rule{Name: "offline", Kind: Offline, Enabled: true, Params: Params{OfflineFor: Duration(time.Minute)},
		Notify: Notify{Webhooks: []string{hook.URL}}}); err != nil {
		t.Fatal(err)
	}
	if err := e.Evaluate(ctx); err != nil {
		t.Fatal(err)
	}
	// 30 s, 60 s, then the next retry would pass the two minutes.
	for i := 0; i < 10; i++ {
		if _, err := e.SendDue(ctx); err != nil {
			t.Fatal(err)
		}
		due, _ := db.DueNotifications(ctx, 1<<50, 10)
		if len(due) == 0 {
			if i != 2 {
				t.Errorf("gave up after %d attempts, want 3", i+1)
			}
			return
		}
		clk.Set(time.UnixMilli(due[0].NextAt))
	}
	t.Error("never gave up")
}

func TestRunEvaluatesOnPoke(t *testing.T) {
	db := openStore(t)
	addDevice(t, db, "mitte", "kiosk-1", 1<<50)
	setPresence(t, db, "kiosk-1", false, time.Now().Add(-time.Hour))
	fired := make(chan Event, 1)
	e, err := New(db, Options{Logger: slog.New(slog.DiscardHandler), Every: time.Hour,
		OnChange: func(ev Event) { fired <- ev }})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.Run(ctx) }()
	if _, err := e.PutRule(context.Background(), Rule{Name: "offline", Kind: Offline, Enabled: true,
		Params: Params{OfflineFor: Duration(time.Minute)}}); err != nil {
		t.Fatal(err)
	}
	select {
	case ev := <-fired:
		if !ev.Firing || ev.Alert.Subject != "kiosk-1" {
			t.Errorf("event %+v", ev)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the new rule was not evaluated after the poke")
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Error(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not stop")
	}
}

func TestMailerValidate(t *testing.T) {
	for _, tc := range []struct {
		m  Mailer
		ok bool
	}{
		{Mailer{Addr: "mail.example.org:587", From: "k@example.org"}, true},
		{Mailer{Addr: "mail.example.org", From: "k@example.org"}, false},
		{Mailer{Addr: "mail.example.org:587", From: "kogge"}, false},
		{Mailer{Addr: "mail.example.org:587", From: "k@example.org", TLS: "maybe"}, false},
		{Mailer{Addr: "mail.example.org:25", From: "k@example.org", TLS: SMTPPlain, Username: "u"}, false},
	} {
		if err := tc.m.Validate(); (err == nil) != tc.ok {
			t.Errorf("%+v: %v", tc.m, err)
		}
	}
	// A server without STARTTLS is refused in the default mode.
	s := newSMTPSink(t)
	err := (&Mailer{Addr: s.Addr, From: "k@example.org"}).Send(context.Background(), "it@example.org", Notification{})
	if err == nil || !strings.Contains(err.Error(), "STARTTLS") {
		t.Errorf("send without STARTTLS: %v", err)
	}
}
