package dashboard

import (
	"context"
	"strings"
	"testing"
)

// FuzzParseArgs feeds the command form's argument text (typed by a user).
func FuzzParseArgs(f *testing.F) {
	f.Add("delay=5\nmode = fast\n")
	f.Add("=x")
	f.Add("no-equals")
	f.Fuzz(func(t *testing.T, s string) {
		args, err := parseArgs(s)
		if err != nil {
			return
		}
		for k := range args {
			if k == "" || strings.TrimSpace(k) != k {
				t.Fatalf("key %q from %q", k, s)
			}
		}
	})
}

// FuzzSignedCookie feeds the OIDC state cookie, which the browser sends
// back: only what the server signed verifies.
func FuzzSignedCookie(f *testing.F) {
	e := newEnv(f, envOptions{})
	good, err := e.h.sign(context.Background(), `{"s":"state"}`)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Add("e30.AAAA")
	f.Fuzz(func(t *testing.T, s string) {
		v, ok := e.h.verify(context.Background(), s)
		if ok && s != good {
			t.Fatalf("forged cookie %q verified as %q", s, v)
		}
	})
}

// FuzzRuleForm feeds the alert rule editor's fields.
func FuzzRuleForm(f *testing.F) {
	f.Add("offline", "15m", "", "07:30", "18:00", "Europe/Berlin", "20", "https://h.example.org/x")
	f.Add("disk-low", "", "x", "", "", "", "-1", "mailto:x")
	f.Fuzz(func(t *testing.T, kind, d1, d2, from, to, tz, num, hook string) {
		fm := ruleForm{Name: "r", Kind: kind, OfflineFor: d1, OldestUnsent: d2, CertWithin: d1, FailureWindow: d2,
			HoursFrom: from, HoursTo: to, TimeZone: tz, Days: []int{1}, FailureRate: num, MinAttempts: num,
			DiskFreeMiB: num, BudgetUsed: num, Webhooks: hook}
		r, err := fm.rule()
		if err == nil && r.Validate() != nil {
			t.Fatalf("rule accepted by the form but invalid: %+v", r)
		}
	})
}
