package main

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/kogge-fleet/kogge/fleet-server/dashboard/auth"
	"github.com/kogge-fleet/kogge/fleet-server/store"
)

func TestUserCommands(t *testing.T) {
	dir := t.TempDir()
	dbFile := filepath.Join(dir, "kogge.db")
	getenv := func(k string) string {
		if k == "KOGGE_DATA_DIR" {
			return dir
		}
		return ""
	}
	// The exit codes of runWith: 0 done, 1 failed, 2 bad command line.
	runUser := func(stdin string, args ...string) (int, string, string) {
		var out, errb bytes.Buffer
		err := userCmd(args, getenv, strings.NewReader(stdin), &out, &errb)
		var ue usageError
		switch {
		case err == nil:
			return 0, out.String(), errb.String()
		case errors.As(err, &ue):
			return 2, out.String(), err.Error()
		}
		return 1, out.String(), err.Error()
	}
	code, out, errs := runUser("", "add", "--role", "operator", "Otto")
	pw := regexp.MustCompile(`password \(shown only now\): (\S+)`).FindStringSubmatch(out)
	if code != 0 || pw == nil {
		t.Fatalf("user add: %d %q %q", code, out, errs)
	}
	if code, _, _ := runUser("", "add", "otto"); code != 1 {
		t.Errorf("adding otto twice: exit %d", code)
	}
	if code, _, _ := runUser("", "add", "--role", "root", "x"); code != 2 {
		t.Errorf("unknown role: exit %d", code)
	}
	if code, _, errs := runUser("short\n", "add", "--password-stdin", "pia"); code != 1 || !strings.Contains(errs, "at least") {
		t.Errorf("weak password: exit %d %q", code, errs)
	}
	if code, _, _ := runUser("a good long password\n", "passwd", "--password-stdin", "otto"); code != 0 {
		t.Errorf("passwd: exit %d", code)
	}
	code, out, _ = runUser("", "list", "--database", dbFile)
	if code != 0 || !strings.Contains(out, "otto") || !strings.Contains(out, "operator") {
		t.Errorf("list: %d %q", code, out)
	}
	db, err := store.Open(context.Background(), dbFile, store.Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	u, err := db.UserByName(context.Background(), "otto")
	if err != nil {
		t.Fatal(err)
	}
	if ok, _, _ := auth.VerifyPassword(u.PasswordHash, "a good long password", auth.DefaultParams); !ok {
		t.Error("passwd did not set the password")
	}
	entries, err := db.AuditEntries(context.Background(), store.AuditFilter{Action: "user.create"})
	if err != nil || len(entries) != 1 || !strings.HasPrefix(entries[0].Actor, "koggectl") {
		t.Errorf("audit: %+v, %v", entries, err)
	}
}
