package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os/user"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/google/uuid"

	fleetserver "github.com/kogge-fleet/kogge/fleet-server"
	"github.com/kogge-fleet/kogge/fleet-server/audit"
	"github.com/kogge-fleet/kogge/fleet-server/dashboard"
	"github.com/kogge-fleet/kogge/fleet-server/dashboard/auth"
	"github.com/kogge-fleet/kogge/fleet-server/store"
)

// The user commands manage the dashboard's users directly in the server's
// database (the REST API has no user endpoints on purpose): run them on
// the server's machine, as the server's user, to create the first admin or
// to regain access.
//
//	koggectl user add [--role R] [--display-name N] [--email E] [--password-stdin] NAME
//	koggectl user list
//	koggectl user passwd [--password-stdin] NAME    a new password (and unlock)
//
// --database names the database (a SQLite file or a postgres:// URL);
// default: the one in the server's default data directory (KOGGE_DATABASE,
// KOGGE_DATA_DIR as for kogge-server).

func userCmd(args []string, getenv env, stdin io.Reader, stdout, stderr io.Writer) error {
	open := func(fs *flag.FlagSet, db *string) func() (*store.DB, error) {
		return func() (*store.DB, error) {
			dsn := *db
			if dsn == "" {
				cfg := fleetserver.DefaultConfig()
				if d := getenv("KOGGE_DATA_DIR"); d != "" {
					cfg.DataDir = d
				}
				cfg.Database = getenv("KOGGE_DATABASE")
				dsn = cfg.Resolve().Database
			}
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			s, err := store.Open(ctx, dsn, store.Options{Logger: slog.New(slog.DiscardHandler)})
			if err != nil {
				return nil, fmt.Errorf("open the server's database %s: %w", dsn, err)
			}
			return s, nil
		}
	}
	newFlags := func(name string) (*flag.FlagSet, func() (*store.DB, error)) {
		fs := flag.NewFlagSet(name, flag.ContinueOnError)
		fs.SetOutput(stderr)
		db := fs.String("database", "", "the server's database: SQLite file or postgres:// URL (default: the server's)")
		return fs, open(fs, db)
	}
	readPassword := func(fromStdin bool, name string) (string, bool, error) {
		if !fromStdin {
			return auth.RandomPassword(), true, nil
		}
		line, err := bufio.NewReader(stdin).ReadString('\n')
		if err != nil && !errors.Is(err, io.EOF) {
			return "", false, fmt.Errorf("read the password: %w", err)
		}
		pw := strings.TrimRight(line, "\r\n")
		if err := auth.CheckPassword(pw, name); err != nil {
			return "", false, err
		}
		return pw, false, nil
	}
	actor := "koggectl"
	if u, err := user.Current(); err == nil {
		actor = "koggectl:" + u.Username
	}
	record := func(db *store.DB, action, target string, details map[string]any) error {
		log, err := audit.New(db, audit.Options{Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			return err
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_, err = log.Record(ctx, actor, action, target, details)
		return err
	}
	return subcommand("user", args, map[string]func([]string) error{
		"add": func(args []string) error {
			fs, openDB := newFlags("user add")
			role := fs.String("role", "admin", "role: admin, operator, auditor or viewer")
			display := fs.String("display-name", "", "display name")
			email := fs.String("email", "", "e-mail address")
			fromStdin := fs.Bool("password-stdin", false, "read the password from the first line of standard input (default: generate one)")
			pos, err := parseInterleaved(fs, args)
			if err != nil {
				return err
			}
			if err := wantArgs(pos, 1, "the user name"); err != nil {
				return err
			}
			name := strings.ToLower(pos[0])
			if err := dashboard.ValidUserName(name); err != nil {
				return usageErrorf("%v", err)
			}
			if !auth.Role(*role).Valid() {
				return usageErrorf("role %q: want admin, operator, auditor or viewer", *role)
			}
			pw, generated, err := readPassword(*fromStdin, name)
			if err != nil {
				return err
			}
			hash, err := auth.HashPassword(pw, auth.DefaultParams)
			if err != nil {
				return err
			}
			db, err := openDB()
			if err != nil {
				return err
			}
			defer db.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			err = db.CreateUser(ctx, store.User{ID: uuid.Must(uuid.NewV7()).String(), Name: name, DisplayName: *display,
				Email: *email, Role: *role, PasswordHash: hash, CreatedAt: time.Now().UnixMilli()})
			if errors.Is(err, store.ErrUserExists) {
				return fmt.Errorf("the user name %s is taken; use koggectl user passwd %s for a new password", name, name)
			}
			if err != nil {
				return err
			}
			if err := record(db, "user.create", "user:"+name, map[string]any{"role": *role}); err != nil {
				return err
			}
			fmt.Fprintf(stdout, "created dashboard user %s (%s)\n", name, *role)
			if generated {
				fmt.Fprintf(stdout, "password (shown only now): %s\n", pw)
			}
			return nil
		},
		"list": func(args []string) error {
			fs, openDB := newFlags("user list")
			pos, err := parseInterleaved(fs, args)
			if err != nil {
				return err
			}
			if err := wantArgs(pos, 0, "no arguments"); err != nil {
				return err
			}
			db, err := openDB()
			if err != nil {
				return err
			}
			defer db.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			users, err := db.Users(ctx)
			if err != nil {
				return err
			}
			tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "NAME\tROLE\tSIGN-IN\tTOTP\tSTATE\tLAST SIGN-IN")
			now := time.Now().UnixMilli()
			for _, u := range users {
				signin, state, last := "password", "active", "-"
				if u.OIDCSubject != "" {
					signin = "oidc"
				}
				switch {
				case u.DisabledAt != 0:
					state = "disabled"
				case u.LockedUntil > now:
					state = "locked"
				}
				if u.LastLoginAt != 0 {
					last = time.UnixMilli(u.LastLoginAt).Local().Format("2006-01-02 15:04")
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%v\t%s\t%s\n", u.Name, u.Role, signin, u.TOTPEnabled, state, last)
			}
			return tw.Flush()
		},
		"passwd": func(args []string) error {
			fs, openDB := newFlags("user passwd")
			fromStdin := fs.Bool("password-stdin", false, "read the password from the first line of standard input (default: generate one)")
			pos, err := parseInterleaved(fs, args)
			if err != nil {
				return err
			}
			if err := wantArgs(pos, 1, "the user name"); err != nil {
				return err
			}
			name := strings.ToLower(pos[0])
			pw, generated, err := readPassword(*fromStdin, name)
			if err != nil {
				return err
			}
			hash, err := auth.HashPassword(pw, auth.DefaultParams)
			if err != nil {
				return err
			}
			db, err := openDB()
			if err != nil {
				return err
			}
			defer db.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			u, err := db.UserByName(ctx, name)
			if errors.Is(err, store.ErrNotFound) {
				return fmt.Errorf("there is no dashboard user %s", name)
			}
			if err != nil {
				return err
			}
			if u.OIDCSubject != "" {
				return fmt.Errorf("%s signs in through the identity provider and has no password here", name)
			}
			if err := db.SetPassword(ctx, u.ID, hash, time.Now().UnixMilli()); err != nil {
				return err
			}
			if _, err := db.DeleteUserSessions(ctx, u.ID, ""); err != nil {
				return err
			}
			if err := record(db, "user.password_reset", "user:"+name, nil); err != nil {
				return err
			}
			fmt.Fprintf(stdout, "new password set for %s; the account is unlocked and its sessions ended\n", name)
			if generated {
				fmt.Fprintf(stdout, "password (shown only now): %s\n", pw)
			}
			return nil
		},
	})
}
