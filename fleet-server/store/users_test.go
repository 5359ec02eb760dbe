package store

import (
	"context"
	"errors"
	"testing"
)

func TestUsers(t *testing.T) {
	backends(t, func(t *testing.T, db *DB) {
		ctx := context.Background()
		admin := User{ID: "u1", Name: "anna", DisplayName: "Anna A.", Role: "admin", PasswordHash: "$argon2id$x", CreatedAt: 10}
		if err := db.CreateUser(ctx, admin); err != nil {
			t.Fatal(err)
		}
		for _, u := range []User{
			{ID: "u2", Name: "anna", Role: "viewer", CreatedAt: 11},
			{ID: "u1", Name: "other", Role: "viewer", CreatedAt: 11},
		} {
			if err := db.CreateUser(ctx, u); !errors.Is(err, ErrUserExists) {
				t.Errorf("CreateUser(%s/%s) = %v, want ErrUserExists", u.ID, u.Name, err)
			}
		}
		oidc := User{ID: "u3", Name: "kc-bert", Role: "viewer", OIDCSubject: "https://kc sub-1", CreatedAt: 12}
		if err := db.CreateUser(ctx, oidc); err != nil {
			t.Fatal(err)
		}
		if err := db.CreateUser(ctx, User{ID: "u4", Name: "kc-bert2", Role: "viewer", OIDCSubject: "https://kc sub-1", CreatedAt: 13}); !errors.Is(err, ErrUserExists) {
			t.Errorf("duplicate OIDC subject: %v", err)
		}
		// Two local users without an OIDC subject do not collide.
		if err := db.CreateUser(ctx, User{ID: "u5", Name: "carl", Role: "operator", CreatedAt: 14}); err != nil {
			t.Fatal(err)
		}
		got, err := db.UserByName(ctx, "anna")
		if err != nil || got.ID != "u1" || got.DisplayName != "Anna A." || got.PasswordHash != "$argon2id$x" || got.OIDCSubject != "" {
			t.Fatalf("UserByName = %+v, %v", got, err)
		}
		if got, err := db.UserByOIDC(ctx, "https://kc sub-1"); err != nil || got.ID != "u3" {
			t.Errorf("UserByOIDC = %+v, %v", got, err)
		}
		for _, f := range []func() error{
			func() error { _, err := db.User(ctx, "nope"); return err },
			func() error { _, err := db.UserByName(ctx, "nope"); return err },
			func() error { _, err := db.UserByOIDC(ctx, ""); return err },
		} {
			if err := f(); !errors.Is(err, ErrNotFound) {
				t.Errorf("lookup of a missing user: %v", err)
			}
		}
		users, admins, err := db.CountUsers(ctx)
		if err != nil || users != 3 || admins != 1 {
			t.Errorf("CountUsers = %d, %d, %v; want 3, 1", users, admins, err)
		}
		list, err := db.Users(ctx)
		if err != nil || len(list) != 3 || list[0].Name != "anna" || list[2].Name != "kc-bert" {
			t.Errorf("Users = %+v, %v", list, err)
		}

		// The last admin can be neither demoted, disabled nor deleted.
		viewer, yes := "viewer", true
		if err := db.UpdateUser(ctx, "u1", UserUpdate{Role: &viewer}, 20); !errors.Is(err, ErrLastAdmin) {
			t.Errorf("demote the last admin: %v", err)
		}
		if err := db.UpdateUser(ctx, "u1", UserUpdate{Disabled: &yes}, 20); !errors.Is(err, ErrLastAdmin) {
			t.Errorf("disable the last admin: %v", err)
		}
		if err := db.DeleteUser(ctx, "u1"); !errors.Is(err, ErrLastAdmin) {
			t.Errorf("delete the last admin: %v", err)
		}
		adminRole, mail := "admin", "carl@example.org"
		if err := db.UpdateUser(ctx, "u5", UserUpdate{Role: &adminRole, Email: &mail}, 21); err != nil {
			t.Fatal(err)
		}
		if err := db.UpdateUser(ctx, "u1", UserUpdate{Disabled: &yes}, 22); err != nil {
			t.Fatal(err)
		}
		if got, _ := db.User(ctx, "u1"); got.DisabledAt != 22 || got.Role != "admin" || got.UpdatedAt != 22 {
			t.Errorf("disabled user = %+v", got)
		}
		if got, _ := db.User(ctx, "u5"); got.Role != "admin" || got.Email != mail {
			t.Errorf("updated user = %+v", got)
		}
		if err := db.UpdateUser(ctx, "nope", UserUpdate{}, 1); !errors.Is(err, ErrNotFound) {
			t.Errorf("update missing: %v", err)
		}
		if err := db.DeleteUser(ctx, "u3"); err != nil {
			t.Fatal(err)
		}
		// Deleting a disabled admin is fine; the enabled one stays protected.
		if err := db.DeleteUser(ctx, "u1"); err != nil {
			t.Fatal(err)
		}
		operator := "operator"
		if err := db.UpdateUser(ctx, "u5", UserUpdate{Role: &operator}, 30); !errors.Is(err, ErrLastAdmin) {
			t.Errorf("demote the last admin u5: %v", err)
		}
		if _, err := db.DeleteUserSessions(ctx, "u5", ""); err != nil {
			t.Fatal(err)
		}
		if err := db.DeleteUser(ctx, "u3"); !errors.Is(err, ErrNotFound) {
			t.Errorf("delete twice: %v", err)
		}
	})
}

func TestUserLoginState(t *testing.T) {
	backends(t, func(t *testing.T, db *DB) {
		ctx := context.Background()
		if err := db.CreateUser(ctx, User{ID: "u1", Name: "anna", Role: "admin", CreatedAt: 1}); err != nil {
			t.Fatal(err)
		}
		// Four failures lock nothing; the fifth locks for 1000 ms.
		for i := range 4 {
			until, err := db.LoginFailed(ctx, "u1", int64(100+i), 5, 1000)
			if err != nil || until != 0 {
				t.Fatalf("failure %d: until %d, %v", i+1, until, err)
			}
		}
		until, err := db.LoginFailed(ctx, "u1", 200, 5, 1000)
		if err != nil || until != 1200 {
			t.Fatalf("fifth failure: until %d, %v; want 1200", until, err)
		}
		if u, _ := db.User(ctx, "u1"); u.LockedUntil != 1200 || u.FailedLogins != 0 {
			t.Errorf("locked user = %+v", u)
		}
		// A failure during the lock keeps the lock.
		if until, err := db.LoginFailed(ctx, "u1", 300, 5, 1000); err != nil || until != 1200 {
			t.Errorf("failure while locked: until %d, %v", until, err)
		}
		if err := db.LoginSucceeded(ctx, "u1", 2000); err != nil {
			t.Fatal(err)
		}
		if u, _ := db.User(ctx, "u1"); u.FailedLogins != 0 || u.LastLoginAt != 2000 {
			t.Errorf("after success = %+v", u)
		}
		if err := db.UnlockUser(ctx, "u1", 2001); err != nil {
			t.Fatal(err)
		}
		if u, _ := db.User(ctx, "u1"); u.LockedUntil != 0 {
			t.Errorf("unlocked user = %+v", u)
		}
		if _, err := db.LoginFailed(ctx, "nope", 1, 5, 1); !errors.Is(err, ErrNotFound) {
			t.Errorf("failure of a missing user: %v", err)
		}

		if err := db.SetPassword(ctx, "u1", "$argon2id$new", 3000); err != nil {
			t.Fatal(err)
		}
		if u, _ := db.User(ctx, "u1"); u.PasswordHash != "$argon2id$new" {
			t.Errorf("password not set: %+v", u)
		}
		if err := db.SetTOTP(ctx, "u1", "JBSWY3DPEHPK3PXP", true, 3001); err != nil {
			t.Fatal(err)
		}
		for _, tc := range []struct {
			step int64
			want bool
		}{{10, true}, {10, false}, {9, false}, {11, true}} {
			ok, err := db.UseTOTPStep(ctx, "u1", tc.step)
			if err != nil || ok != tc.want {
				t.Errorf("UseTOTPStep(%d) = %v, %v; want %v", tc.step, ok, err, tc.want)
			}
		}
		if u, _ := db.User(ctx, "u1"); !u.TOTPEnabled || u.TOTPSecret != "JBSWY3DPEHPK3PXP" || u.TOTPLast != 11 {
			t.Errorf("second factor = %+v", u)
		}
		if err := db.SetTOTP(ctx, "u1", "", true, 3002); err != nil {
			t.Fatal(err)
		}
		if u, _ := db.User(ctx, "u1"); u.TOTPEnabled || u.TOTPSecret != "" {
			t.Errorf("removed second factor = %+v", u)
		}
		if err := db.SetPassword(ctx, "nope", "x", 1); !errors.Is(err, ErrNotFound) {
			t.Errorf("password of a missing user: %v", err)
		}
	})
}

func TestSessions(t *testing.T) {
	backends(t, func(t *testing.T, db *DB) {
		ctx := context.Background()
		for _, u := range []User{{ID: "u1", Name: "anna", Role: "admin", CreatedAt: 1}, {ID: "u2", Name: "bert", Role: "viewer", CreatedAt: 1}} {
			if err := db.CreateUser(ctx, u); err != nil {
				t.Fatal(err)
			}
		}
		for _, s := range []Session{
			{IDHash: "h1", User: "u1", Stage: SessionFull, CreatedAt: 10, LastSeen: 10, ExpiresAt: 100, Remote: "127.0.0.1"},
			{IDHash: "h2", User: "u1", Stage: SessionTOTP, CreatedAt: 20, LastSeen: 20, ExpiresAt: 50},
			{IDHash: "h3", User: "u2", Stage: SessionFull, CreatedAt: 30, LastSeen: 30, ExpiresAt: 100},
		} {
			if err := db.CreateSession(ctx, s); err != nil {
				t.Fatal(err)
			}
		}
		s, err := db.Session(ctx, "h1", 40)
		if err != nil || s.User != "u1" || s.Stage != SessionFull || s.Remote != "127.0.0.1" {
			t.Fatalf("Session = %+v, %v", s, err)
		}
		if _, err := db.Session(ctx, "h2", 50); !errors.Is(err, ErrNotFound) {
			t.Errorf("expired session: %v", err)
		}
		if err := db.TouchSession(ctx, "h2", 60, 500); err != nil {
			t.Fatal(err)
		}
		if _, err := db.Session(ctx, "h2", 60); !errors.Is(err, ErrNotFound) {
			t.Errorf("an expired session was revived by a touch: %v", err)
		}
		if err := db.TouchSession(ctx, "h1", 60, 500); err != nil {
			t.Fatal(err)
		}
		if s, err := db.Session(ctx, "h1", 400); err != nil || s.LastSeen != 60 || s.ExpiresAt != 500 {
			t.Errorf("touched session = %+v, %v", s, err)
		}
		if ss, err := db.UserSessions(ctx, "u1", 60); err != nil || len(ss) != 1 || ss[0].IDHash != "h1" {
			t.Errorf("UserSessions = %+v, %v", ss, err)
		}
		if n, err := db.DeleteExpiredSessions(ctx, 100); err != nil || n != 2 {
			t.Errorf("DeleteExpiredSessions = %d, %v; want h2 and h3", n, err)
		}
		if err := db.CreateSession(ctx, Session{IDHash: "h4", User: "u1", Stage: SessionFull, CreatedAt: 1, LastSeen: 1, ExpiresAt: 1000}); err != nil {
			t.Fatal(err)
		}
		if n, err := db.DeleteUserSessions(ctx, "u1", "h4"); err != nil || n != 1 {
			t.Errorf("DeleteUserSessions keeping h4 = %d, %v", n, err)
		}
		if _, err := db.Session(ctx, "h4", 100); err != nil {
			t.Errorf("kept session: %v", err)
		}
		if err := db.DeleteSession(ctx, "h4"); err != nil {
			t.Fatal(err)
		}
		if err := db.DeleteSession(ctx, "h4"); err != nil {
			t.Errorf("delete twice: %v", err)
		}
		// Deleting a user ends its sessions.
		if err := db.CreateSession(ctx, Session{IDHash: "h5", User: "u2", Stage: SessionFull, CreatedAt: 1, LastSeen: 1, ExpiresAt: 1000}); err != nil {
			t.Fatal(err)
		}
		if err := db.DeleteUser(ctx, "u2"); err != nil {
			t.Fatal(err)
		}
		if _, err := db.Session(ctx, "h5", 100); !errors.Is(err, ErrNotFound) {
			t.Errorf("session of a deleted user: %v", err)
		}
	})
}
