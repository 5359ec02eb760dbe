package fleetserver

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/kogge-fleet/kogge/fleet-server/dashboard"
)

// TestAppServesDashboard signs in to the dashboard of a real App with the
// generated first admin, on the API's address next to the REST API.
func TestAppServesDashboard(t *testing.T) {
	cfg := testConfig(t)
	app, err := New(cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	password, created := app.AdminPassword()
	if !created || len(password) < 20 {
		t.Fatalf("first admin: %q, %v", password, created)
	}
	b, err := os.ReadFile(filepath.Join(cfg.DataDir, dashboard.AdminPasswordFile))
	if err != nil || strings.TrimSpace(string(b)) != "admin "+password {
		t.Fatalf("admin password file: %q, %v", b, err)
	}
	if fi, _ := os.Stat(filepath.Join(cfg.DataDir, dashboard.AdminPasswordFile)); fi.Mode().Perm() != 0o600 {
		t.Errorf("admin password file mode %v", fi.Mode().Perm())
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- app.Run(ctx) }()
	defer func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Error(err)
			}
		case <-time.After(30 * time.Second):
			t.Error("app did not stop")
		}
	}()

	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar, Timeout: 10 * time.Second}
	base := app.DashboardURL()
	if base != app.APIURL() {
		t.Errorf("dashboard at %s, API at %s: want one address", base, app.APIURL())
	}
	var resp *http.Response
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err = c.Get(base + "/login")
		if err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	m := regexp.MustCompile(`name="csrf" value="([^"]+)"`).FindSubmatch(page)
	if resp.StatusCode != http.StatusOK || m == nil {
		t.Fatalf("login page: %s", resp.Status)
	}
	resp, err = c.PostForm(base+"/login", url.Values{"csrf": {string(m[1])}, "name": {"admin"}, "password": {password}})
	if err != nil {
		t.Fatal(err)
	}
	page, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Request.URL.Path != "/overview" || !strings.Contains(string(page), `lang="de"`) {
		t.Fatalf("after sign-in: %s at %s", resp.Status, resp.Request.URL)
	}
	// The REST API is still there, with its own authentication.
	resp, err = c.Get(base + "/api/v1/groups")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("API without token: %s", resp.Status)
	}
	resp, err = c.Get(base + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("healthz: %s", resp.Status)
	}
}
