package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	fleetserver "github.com/kogge-fleet/kogge/fleet-server"
	"github.com/kogge-fleet/kogge/fleet-server/brokerconfig"
	"github.com/kogge-fleet/kogge/fleet-server/store"
)

// The broker-config commands write the configuration of an external
// broker for the fleet (docs/deploy.md). Like the user commands they open
// the server's database directly, because they sign with the fleet CA that
// lives there: run them on a machine that may hold it (a server replica's
// host) and copy the directory's files to the broker.
//
//	koggectl broker-config mosquitto --out DIR --name HOST[,HOST] --replicas ID[,ID]
//	    [--listen [HOST:]PORT] [--conf-dir DIR] [--user USER] [--pid-file FILE]
//	    [--cert-lifetime D] [--crl-validity D]
//	koggectl broker-config mosquitto --update --out DIR [--reload] [--watch D]
//	koggectl broker-config emqx --out DIR --name HOST[,HOST] --server-url https://HOST:PORT
//	    [--listen HOST:PORT] [--conf-dir DIR] [--cert-lifetime D]
//
// --database names the database (a SQLite file or a postgres:// URL);
// default: the one in the server's default data directory (KOGGE_DATABASE,
// KOGGE_DATA_DIR as for kogge-server).

func brokerConfigCmd(args []string, getenv env, stdin io.Reader, stdout, stderr io.Writer) error {
	return subcommand("broker-config", args, map[string]func([]string) error{
		"mosquitto": func(args []string) error { return brokerConfigMosquitto(args, getenv, stdout, stderr) },
		"emqx":      func(args []string) error { return brokerConfigEMQX(args, getenv, stdout, stderr) },
	})
}

// openServerStore opens the server's database as the user commands do.
func openServerStore(dsn string, getenv env) (*store.DB, error) {
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
	db, err := store.Open(ctx, dsn, store.Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		return nil, fmt.Errorf("open the server's database %s: %w", redact(dsn), err)
	}
	return db, nil
}

// redact hides a password in a database URL.
func redact(dsn string) string {
	if i := strings.Index(dsn, "://"); i >= 0 {
		if j := strings.Index(dsn[i+3:], "@"); j >= 0 {
			if k := strings.Index(dsn[i+3:i+3+j], ":"); k >= 0 {
				return dsn[:i+3+k+1] + "xxxxx" + dsn[i+3+j:]
			}
		}
	}
	return dsn
}

// splitList splits a comma-separated flag value.
func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

func brokerConfigMosquitto(args []string, getenv env, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("broker-config mosquitto", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dbFlag := fs.String("database", "", "the server's database: SQLite file or postgres:// URL (default: the server's)")
	out := fs.String("out", "", "directory to write the configuration into (required)")
	names := fs.String("name", "", "DNS names and IP addresses of the broker, comma-separated (the certificate's)")
	replicas := fs.String("replicas", "", "ids of the kogge-server replicas (their setting replica), comma-separated")
	listen := fs.String("listen", "8883", "[HOST:]PORT of the broker's TLS listener")
	confDir := fs.String("conf-dir", "", "the directory as the broker sees it (default: --out, made absolute)")
	user := fs.String("user", "mosquitto", "system user the broker runs as; the files are given to it when run as root")
	pidFile := fs.String("pid-file", "", "the broker's pid file, signalled on updates (default: mosquitto.pid in the directory)")
	certLifetime := fs.Duration("cert-lifetime", brokerconfig.DefaultCertLifetime, "lifetime of the broker certificate")
	crlValidity := fs.Duration("crl-validity", brokerconfig.DefaultCRLValidity, "validity of the CRL (signed again at half of it)")
	update := fs.Bool("update", false, "only bring crl.pem and acl in --out up to the revocations")
	reload := fs.Bool("reload", false, "with --update: send SIGHUP to the broker when something changed")
	watch := fs.Duration("watch", 0, "with --update: keep updating at this interval (and reloading) until SIGINT or SIGTERM")
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		return err
	}
	if err := wantArgs(pos, 0, "no arguments"); err != nil {
		return err
	}
	if *out == "" {
		return usageErrorf("--out is required: the directory to write the configuration into")
	}
	if *watch != 0 && (*watch < time.Second || !*update) {
		return usageErrorf("--watch needs --update and an interval of at least 1s")
	}
	if !*update && (*names == "" || *replicas == "") {
		return usageErrorf("--name and --replicas are required: the broker's names and the server replicas' ids")
	}
	db, err := openServerStore(*dbFlag, getenv)
	if err != nil {
		return err
	}
	defer db.Close()

	if *update {
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		defer stop()
		return updateMosquitto(ctx, db, *out, *reload || *watch > 0, *watch, stdout)
	}
	m := brokerconfig.Mosquitto{
		ConfDir: *confDir, Listen: *listen, Names: splitList(*names), Replicas: splitList(*replicas), User: *user,
		PidFile: *pidFile, CertLifetime: *certLifetime, CRLValidity: *crlValidity,
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := brokerconfig.WriteMosquitto(ctx, db, *out, m, time.Now()); err != nil {
		return err
	}
	abs, _ := filepath.Abs(*out)
	fmt.Fprintf(stdout, "wrote the Mosquitto configuration for replicas %s into %s:\n", strings.Join(m.Replicas, ", "), abs)
	for _, f := range []string{brokerconfig.FileConf, brokerconfig.FileACL, brokerconfig.FileCA, brokerconfig.FileCert,
		brokerconfig.FileKey, brokerconfig.FileCRL, brokerconfig.FileState} {
		fmt.Fprintf(stdout, "  %s\n", f)
	}
	fmt.Fprintf(stdout, "start it with: mosquitto -c %s\n", filepath.Join(abs, brokerconfig.FileConf))
	fmt.Fprintf(stdout, "keep its CRL and ACL current: kogge-server --broker.external.mosquitto-dir=%s, "+
		"or koggectl broker-config mosquitto --update --out %s --watch 10s\n", abs, abs)
	return nil
}

// updateMosquitto applies the revocations once, or every watch until ctx
// ends.
func updateMosquitto(ctx context.Context, db *store.DB, dir string, reload bool, watch time.Duration, stdout io.Writer) error {
	for {
		changed, pidFile, err := brokerconfig.Update(ctx, db, dir, time.Now())
		if err != nil && watch == 0 {
			return err
		}
		switch {
		case err != nil:
			fmt.Fprintf(stdout, "%s update failed, retrying: %v\n", time.Now().Format(time.RFC3339), err)
		case changed && reload:
			if err := brokerconfig.Reload(pidFile); err != nil {
				if watch == 0 {
					return err
				}
				fmt.Fprintf(stdout, "%s %v\n", time.Now().Format(time.RFC3339), err)
			} else {
				fmt.Fprintf(stdout, "%s crl.pem and acl updated; broker reloaded\n", time.Now().Format(time.RFC3339))
			}
		case changed:
			fmt.Fprintf(stdout, "crl.pem and acl updated; reload the broker (kill -HUP $(cat %s))\n", pidFile)
		case watch == 0:
			fmt.Fprintln(stdout, "crl.pem and acl are current")
		}
		if watch == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(watch):
		}
	}
}

func brokerConfigEMQX(args []string, getenv env, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("broker-config emqx", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dbFlag := fs.String("database", "", "the server's database: SQLite file or postgres:// URL (default: the server's)")
	out := fs.String("out", "", "directory to write the configuration into (required)")
	names := fs.String("name", "", "DNS names and IP addresses of the broker, comma-separated (the certificate's)")
	serverURL := fs.String("server-url", "", "kogge-server's enrollment endpoint as EMQX reaches it, https://HOST:PORT")
	listen := fs.String("listen", "0.0.0.0:8883", "HOST:PORT of EMQX's TLS listener")
	confDir := fs.String("conf-dir", "", "the directory as EMQX sees it (default: --out, made absolute)")
	certLifetime := fs.Duration("cert-lifetime", brokerconfig.DefaultCertLifetime, "lifetime of the broker certificate")
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		return err
	}
	if err := wantArgs(pos, 0, "no arguments"); err != nil {
		return err
	}
	if *out == "" || *names == "" || *serverURL == "" {
		return usageErrorf("--out, --name and --server-url are required")
	}
	db, err := openServerStore(*dbFlag, getenv)
	if err != nil {
		return err
	}
	defer db.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	e := brokerconfig.EMQX{ConfDir: *confDir, Listen: *listen, Names: splitList(*names), ServerURL: *serverURL, CertLifetime: *certLifetime}
	if err := brokerconfig.WriteEMQX(ctx, db, *out, e, time.Now()); err != nil {
		return err
	}
	abs, _ := filepath.Abs(*out)
	fmt.Fprintf(stdout, "wrote the EMQX configuration into %s: %s, %s, %s, %s\n", abs,
		brokerconfig.FileEMQX, brokerconfig.FileCA, brokerconfig.FileCert, brokerconfig.FileKey)
	fmt.Fprintf(stdout, "include it from EMQX's base.hocon: include \"%s\"\n", filepath.Join(abs, brokerconfig.FileEMQX))
	fmt.Fprintln(stdout, "run the replicas with --broker.mode=external --broker.external.split=shared")
	return nil
}
