package auth

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/kogge-fleet/kogge/fleet-server/dashboard/auth/oidctest"
)

// testParams are cheap argon2id parameters for tests.
var testParams = Params{Memory: 1024, Time: 1, Threads: 1}

func TestPasswordHash(t *testing.T) {
	h, err := HashPassword("correct horse battery", testParams)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(h, "$argon2id$v=19$m=1024,t=1,p=1$") {
		t.Errorf("hash %q is not a PHC argon2id string", h)
	}
	h2, _ := HashPassword("correct horse battery", testParams)
	if h == h2 {
		t.Error("two hashes of one password are equal: no salt")
	}
	for _, tc := range []struct {
		params         Params
		password       string
		ok, wantRehash bool
	}{
		{testParams, "correct horse battery", true, false},
		{testParams, "correct horse batterY", false, false},
		{testParams, "", false, false},
		{Params{Memory: 2048, Time: 1, Threads: 1}, "correct horse battery", true, true},
	} {
		ok, rehash, err := VerifyPassword(h, tc.password, tc.params)
		if err != nil || ok != tc.ok || rehash != tc.wantRehash {
			t.Errorf("VerifyPassword(%q, %+v) = %v, %v, %v; want %v, %v", tc.password, tc.params, ok, rehash, err, tc.ok, tc.wantRehash)
		}
	}
	for _, bad := range []string{
		"", "plain", "$argon2i$v=19$m=1024,t=1,p=1$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaA",
		"$argon2id$v=18$m=1024,t=1,p=1$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaA",
		"$argon2id$v=19$m=99999999,t=1,p=1$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaA",
		"$argon2id$v=19$m=1024,t=1,p=1,x=2$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaA",
		"$argon2id$v=19$m=1024,t=1,p=1$!!$aGFzaGhhc2hoYXNoaGFzaA",
		"$argon2id$v=19$m=1024,t=1,p=1$c2FsdHNhbHRzYWx0$aGFz",
	} {
		if _, _, err := VerifyPassword(bad, "x", testParams); !errors.Is(err, ErrBadHash) {
			t.Errorf("VerifyPassword(%q) = %v, want ErrBadHash", bad, err)
		}
	}
	if _, err := HashPassword("x", Params{Memory: 10, Time: 1, Threads: 1}); err == nil {
		t.Error("tiny memory accepted")
	}
}

func TestCheckPassword(t *testing.T) {
	for _, tc := range []struct {
		pw, user string
		ok       bool
	}{
		{"short", "anna", false},
		{"twelve chars", "anna", true},
		{"Anna-Admin-1", "anna-admin-1", false},
		{strings.Repeat("x", MaxPasswordLen+1), "anna", false},
		{"äöüäöüäöüäöü", "anna", true}, // characters, not bytes
	} {
		if err := CheckPassword(tc.pw, tc.user); (err == nil) != tc.ok {
			t.Errorf("CheckPassword(%q) = %v, want ok %v", tc.pw, err, tc.ok)
		}
	}
	if p := RandomPassword(); len(p) < 20 || CheckPassword(p, "x") != nil {
		t.Errorf("RandomPassword %q", p)
	}
}

func FuzzParseHash(f *testing.F) {
	h, _ := HashPassword("pw", testParams)
	f.Add(h)
	f.Add("$argon2id$v=19$m=1024,t=1,p=1$$")
	f.Fuzz(func(t *testing.T, s string) {
		p, salt, key, err := ParseHash(s)
		if err != nil {
			return
		}
		if p.Memory > maxParams.Memory || p.Time > maxParams.Time || len(salt) > 64 || len(key) > 64 {
			t.Fatalf("accepted out-of-range hash %q: %+v", s, p)
		}
	})
}

func TestTOTPVectors(t *testing.T) {
	// RFC 6238 appendix B, SHA-1 with the 20-byte ASCII secret
	// "12345678901234567890"; the last 6 of the 8 digits.
	secret := totpEncoding.EncodeToString([]byte("12345678901234567890"))
	for _, tc := range []struct {
		unix int64
		code string
	}{
		{59, "287082"}, {1111111109, "081804"}, {1111111111, "050471"},
		{1234567890, "005924"}, {2000000000, "279037"}, {20000000000, "353130"},
	} {
		got, err := TOTPCode(secret, time.Unix(tc.unix, 0))
		if err != nil || got != tc.code {
			t.Errorf("TOTPCode at %d = %q, %v; want %s", tc.unix, got, err, tc.code)
		}
	}
}

func TestVerifyTOTP(t *testing.T) {
	secret, err := NewTOTPSecret()
	if err != nil {
		t.Fatal(err)
	}
	now := time.Unix(1_700_000_015, 0)
	code := func(d time.Duration) string { c, _ := TOTPCode(secret, now.Add(d)); return c }
	for _, tc := range []struct {
		name string
		code string
		ok   bool
		step int64
	}{
		{"current", code(0), true, TOTPStepAt(now)},
		{"previous step", code(-30 * time.Second), true, TOTPStepAt(now) - 1},
		{"next step", code(30 * time.Second), true, TOTPStepAt(now) + 1},
		{"two steps back", code(-60 * time.Second), false, 0},
		{"with a space", code(0)[:3] + " " + code(0)[3:], true, TOTPStepAt(now)},
		{"too short", code(0)[:5], false, 0},
		{"letters", "abcdef", false, 0},
	} {
		step, ok := VerifyTOTP(secret, tc.code, now)
		if ok != tc.ok || step != tc.step {
			t.Errorf("%s: VerifyTOTP = %d, %v; want %d, %v", tc.name, step, ok, tc.step, tc.ok)
		}
	}
	if _, ok := VerifyTOTP("not base32!", "123456", now); ok {
		t.Error("a bad secret verified")
	}
	u := TOTPURI("Kogge", "anna", secret)
	if !strings.HasPrefix(u, "otpauth://totp/Kogge:anna?") || !strings.Contains(u, "secret="+secret) {
		t.Errorf("TOTPURI = %s", u)
	}
}

func TestLimiter(t *testing.T) {
	now := time.Unix(1000, 0)
	l := NewLimiter(10*time.Second, 3, 2, func() time.Time { return now })
	for i := range 3 {
		if ok, _ := l.Allow("a"); !ok {
			t.Fatalf("attempt %d refused within the burst", i+1)
		}
	}
	ok, retry := l.Allow("a")
	if ok || retry != 10*time.Second {
		t.Fatalf("fourth attempt: %v, retry %v", ok, retry)
	}
	if ok, _ := l.Allow("b"); !ok {
		t.Error("another key was limited")
	}
	// The table is full (a and b) and neither bucket is full: a new key
	// is refused rather than a limited one forgotten.
	if ok, _ := l.Allow("c"); ok {
		t.Error("a third key was let in while the table was full")
	}
	now = now.Add(10 * time.Second)
	if ok, _ := l.Allow("a"); !ok {
		t.Error("no attempt after the refill interval")
	}
	if ok, _ := l.Allow("a"); ok {
		t.Error("two attempts after one interval")
	}
	now = now.Add(time.Minute)
	if ok, _ := l.Allow("c"); !ok {
		t.Error("a new key was refused after the others refilled")
	}
}

func TestRoles(t *testing.T) {
	for _, tc := range []struct {
		role Role
		can  []Permission
		not  []Permission
	}{
		{Admin, []Permission{ReadFleet, ReadAudit, Operate, Administer, Self}, nil},
		{Operator, []Permission{ReadFleet, Operate, Self}, []Permission{ReadAudit, Administer}},
		{Auditor, []Permission{ReadAudit, Self}, []Permission{ReadFleet, Operate, Administer}},
		{Viewer, []Permission{ReadFleet, Self}, []Permission{ReadAudit, Operate, Administer}},
		{Role("root"), nil, []Permission{ReadFleet, Self}},
	} {
		for _, p := range tc.can {
			if !tc.role.Can(p) {
				t.Errorf("%s cannot %s", tc.role, p)
			}
		}
		for _, p := range tc.not {
			if tc.role.Can(p) {
				t.Errorf("%s can %s", tc.role, p)
			}
		}
	}
	if Role("root").Valid() || !Auditor.Valid() {
		t.Error("Valid")
	}
}

func TestOIDCFlow(t *testing.T) {
	ctx := context.Background()
	p := oidctest.New(t, "kogge", "s3cret")
	p.SignIn(map[string]any{"sub": "u-1", "preferred_username": "bert", "email": "bert@example.org",
		"realm_access": map[string]any{"roles": []any{"kogge-operator", "other"}}})
	redirect := "http://127.0.0.1:1/auth/oidc/callback"
	o, err := NewOIDC(OIDCConfig{Issuer: p.URL + "/", ClientID: "kogge", ClientSecret: "s3cret", RedirectURL: redirect})
	if err != nil {
		t.Fatal(err)
	}
	verifier, _ := RandomToken(32)
	authURL, err := o.AuthCodeURL(ctx, "state-1", "nonce-1", verifier)
	if err != nil {
		t.Fatal(err)
	}
	// Follow the provider's redirect by hand: the callback is not served.
	noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := noFollow.Get(authURL)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	loc, err := url.Parse(resp.Header.Get("Location"))
	if err != nil || !strings.HasPrefix(loc.String(), redirect) || loc.Query().Get("state") != "state-1" {
		t.Fatalf("provider redirected to %q (%v)", resp.Header.Get("Location"), err)
	}
	code := loc.Query().Get("code")

	if _, err := o.Exchange(ctx, code, "wrong-verifier", "nonce-1"); !errors.Is(err, ErrOIDC) {
		t.Errorf("wrong PKCE verifier: %v", err)
	}
	// The code is used up by the failed attempt; sign in again.
	authURL, _ = o.AuthCodeURL(ctx, "state-2", "nonce-2", verifier)
	resp, err = noFollow.Get(authURL)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	loc, _ = url.Parse(resp.Header.Get("Location"))
	claims, err := o.Exchange(ctx, loc.Query().Get("code"), verifier, "nonce-2")
	if err != nil {
		t.Fatal(err)
	}
	if claims.Subject != "u-1" || claims.PreferredUsername != "bert" || claims.Email != "bert@example.org" {
		t.Errorf("claims = %+v", claims)
	}
	if got := claims.Strings("realm_access.roles"); len(got) != 2 || got[0] != "kogge-operator" {
		t.Errorf("realm_access.roles = %v", got)
	}
	if got := claims.Strings("preferred_username"); len(got) != 1 || got[0] != "bert" {
		t.Errorf("preferred_username = %v", got)
	}
	if got := claims.Strings("nope.x"); got != nil {
		t.Errorf("missing claim = %v", got)
	}
}

func TestOIDCTokenChecks(t *testing.T) {
	ctx := context.Background()
	p := oidctest.New(t, "kogge", "s3cret")
	now := time.Now()
	o, err := NewOIDC(OIDCConfig{Issuer: p.URL, ClientID: "kogge", RedirectURL: "http://127.0.0.1:1/cb",
		Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	base := func() map[string]any {
		return map[string]any{"iss": p.URL, "aud": "kogge", "sub": "s", "nonce": "n", "exp": now.Unix() + 60, "iat": now.Unix()}
	}
	for _, tc := range []struct {
		name  string
		edit  func(c map[string]any)
		token func(string) string
		ok    bool
	}{
		{name: "valid", edit: func(map[string]any) {}, ok: true},
		{name: "audience list", edit: func(c map[string]any) { c["aud"] = []any{"other", "kogge"}; c["azp"] = "kogge" }, ok: true},
		{name: "other issuer", edit: func(c map[string]any) { c["iss"] = "https://evil.example" }},
		{name: "other audience", edit: func(c map[string]any) { c["aud"] = "other" }},
		{name: "other party", edit: func(c map[string]any) { c["aud"] = []any{"other", "kogge"}; c["azp"] = "other" }},
		{name: "expired", edit: func(c map[string]any) { c["exp"] = now.Unix() - 120 }},
		{name: "no expiry", edit: func(c map[string]any) { delete(c, "exp") }},
		{name: "future", edit: func(c map[string]any) { c["iat"] = now.Unix() + 600 }},
		{name: "wrong nonce", edit: func(c map[string]any) { c["nonce"] = "x" }},
		{name: "no subject", edit: func(c map[string]any) { delete(c, "sub") }},
		{name: "tampered", edit: func(map[string]any) {}, token: func(s string) string {
			parts := strings.Split(s, ".")
			return parts[0] + "." + parts[1] + "x." + parts[2]
		}},
		{name: "alg none", edit: func(map[string]any) {}, token: func(s string) string {
			parts := strings.Split(s, ".")
			return "eyJhbGciOiJub25lIiwia2lkIjoiazEifQ." + parts[1] + "."
		}},
		{name: "not a JWS", edit: func(map[string]any) {}, token: func(string) string { return "abc" }},
	} {
		c := base()
		tc.edit(c)
		tok := p.Sign(c)
		if tc.token != nil {
			tok = tc.token(tok)
		}
		_, err := o.VerifyIDToken(ctx, tok, "n")
		if (err == nil) != tc.ok {
			t.Errorf("%s: VerifyIDToken = %v, want ok %v", tc.name, err, tc.ok)
		}
	}
	if _, err := NewOIDC(OIDCConfig{Issuer: "ftp://x", ClientID: "a", RedirectURL: "http://127.0.0.1/cb"}); err == nil {
		t.Error("ftp issuer accepted")
	}
	if _, err := NewOIDC(OIDCConfig{Issuer: p.URL, RedirectURL: "http://127.0.0.1/cb"}); err == nil {
		t.Error("missing client id accepted")
	}
}

func FuzzVerifyIDToken(f *testing.F) {
	p := oidctest.New(f, "kogge", "s")
	o, err := NewOIDC(OIDCConfig{Issuer: p.URL, ClientID: "kogge", RedirectURL: "http://127.0.0.1:1/cb"})
	if err != nil {
		f.Fatal(err)
	}
	f.Add(p.Sign(map[string]any{"iss": p.URL, "aud": "kogge", "sub": "s", "nonce": "n", "exp": time.Now().Unix() + 600}))
	f.Add("a.b.c")
	f.Fuzz(func(t *testing.T, tok string) {
		c, err := o.VerifyIDToken(context.Background(), tok, "n")
		if err == nil && (c.Subject == "" || c.Issuer == "") {
			t.Fatalf("accepted token without subject or issuer: %q", tok)
		}
	})
}
