package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/kogge-fleet/kogge/fleet-server/api/client"
)

// The admin commands talk to the fleet server's REST API. Where the server
// is and how to authenticate come from flags, else the environment:
//
//	--server URL       KOGGE_SERVER      default http://127.0.0.1:8080
//	--token TOKEN      KOGGE_TOKEN
//	--token-file FILE  KOGGE_TOKEN_FILE  default: the api-token file in the
//	                                     server's default data directory
//	--json             print the API's JSON instead of a table
//	--timeout D        bound for each request, default 30s

const defaultServer = "http://127.0.0.1:8080"

// env looks up an environment variable ("" when unset).
type env func(string) string

// adminFlags are the flags every admin command takes.
type adminFlags struct {
	server    string
	token     string
	tokenFile string
	json      bool
	timeout   time.Duration
}

// newAdminFlagSet returns a flag set with the common admin flags.
func newAdminFlagSet(name string, stderr io.Writer, getenv env) (*flag.FlagSet, *adminFlags) {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	a := &adminFlags{}
	server := getenv("KOGGE_SERVER")
	if server == "" {
		server = defaultServer
	}
	fs.StringVar(&a.server, "server", server, "fleet server API base URL (KOGGE_SERVER)")
	fs.StringVar(&a.token, "token", "", "API token (KOGGE_TOKEN); prefer --token-file, a flag shows in the process list")
	fs.StringVar(&a.tokenFile, "token-file", getenv("KOGGE_TOKEN_FILE"), "file holding the API token (KOGGE_TOKEN_FILE)")
	fs.BoolVar(&a.json, "json", false, "print JSON for scripts instead of a table")
	fs.DurationVar(&a.timeout, "timeout", 30*time.Second, "timeout of each request")
	return fs, a
}

// parseInterleaved parses flags that may come before, between and after the
// positional arguments (Go's flag package stops at the first positional
// one) and returns the positional arguments. "--" ends the flags.
func parseInterleaved(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, err
			}
			return nil, usageError{err}
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return pos, nil
		}
		if i := len(args) - len(rest); i > 0 && args[i-1] == "--" {
			return append(pos, rest...), nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

// resolveToken finds the API token: --token, --token-file, KOGGE_TOKEN, or
// the token file the server writes into its default data directory.
func (a *adminFlags) resolveToken(getenv env) (string, error) {
	if a.token != "" {
		return a.token, nil
	}
	if a.tokenFile != "" {
		return readTokenFile(a.tokenFile)
	}
	if t := getenv("KOGGE_TOKEN"); t != "" {
		return t, nil
	}
	for _, f := range defaultTokenFiles(getenv) {
		if t, err := readTokenFile(f); err == nil {
			return t, nil
		}
	}
	return "", errors.New("no API token: give --token-file FILE (the server writes api-token into its data directory), or set KOGGE_TOKEN")
}

func readTokenFile(name string) (string, error) {
	f, err := os.Open(name)
	if err != nil {
		return "", fmt.Errorf("read API token: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, 4096))
	if err != nil {
		return "", fmt.Errorf("read API token from %s: %w", name, err)
	}
	t := strings.TrimSpace(string(b))
	if t == "" {
		return "", fmt.Errorf("API token file %s is empty", name)
	}
	return t, nil
}

// defaultTokenFiles are where kogge-server keeps a generated token when it
// runs with its default data directory: as root, and as this user.
func defaultTokenFiles(getenv env) []string {
	files := []string{"/var/lib/kogge/api-token"}
	if x := getenv("XDG_DATA_HOME"); x != "" && filepath.IsAbs(x) {
		files = append(files, filepath.Join(x, "kogge", "api-token"))
	} else if h := getenv("HOME"); h != "" {
		files = append(files, filepath.Join(h, ".local", "share", "kogge", "api-token"))
	}
	return files
}

// adminCmd is the environment of one admin command.
type adminCmd struct {
	flags  *adminFlags
	getenv env
	stdin  io.Reader
	stdout io.Writer
}

func (c *adminCmd) client() (*client.Client, error) {
	token, err := c.flags.resolveToken(c.getenv)
	if err != nil {
		return nil, err
	}
	return client.New(c.flags.server, token, client.Options{Timeout: c.flags.timeout, UserAgent: "koggectl"})
}

func (c *adminCmd) context() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), c.flags.timeout+5*time.Second)
}

// printJSON prints v indented.
func (c *adminCmd) printJSON(v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(c.stdout, "%s\n", b)
	return err
}

// table writes aligned columns.
type table struct{ tw *tabwriter.Writer }

func newTable(w io.Writer, header ...string) *table {
	t := &table{tw: tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)}
	t.row(header...)
	return t
}

func (t *table) row(cells ...string) {
	for i, c := range cells {
		if c == "" {
			cells[i] = "-"
		}
	}
	fmt.Fprintln(t.tw, strings.Join(cells, "\t"))
}

func (t *table) flush() error { return t.tw.Flush() }

// fields prints "name: value" lines aligned.
func fields(w io.Writer, kv ...string) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for i := 0; i+1 < len(kv); i += 2 {
		v := kv[i+1]
		if v == "" {
			v = "-"
		}
		fmt.Fprintf(tw, "%s:\t%s\n", kv[i], v)
	}
	return tw.Flush()
}

// when renders a time for people: UTC, to the second, and how long ago or
// ahead.
func when(t time.Time, now time.Time) string {
	if t.IsZero() {
		return ""
	}
	d := now.Sub(t)
	rel := "ago"
	if d < 0 {
		d, rel = -d, "from now"
	}
	return fmt.Sprintf("%s (%s %s)", t.UTC().Format("2006-01-02 15:04:05Z"), roughDuration(d), rel)
}

func whenPtr(t *time.Time, now time.Time) string {
	if t == nil {
		return ""
	}
	return when(*t, now)
}

func roughDuration(d time.Duration) string {
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh%02dm", int(d.Hours()), int(d.Minutes())%60)
	}
	return fmt.Sprintf("%dd", int(d.Hours()/24))
}

// wantArgs checks the number of positional arguments.
func wantArgs(args []string, n int, what string) error {
	if len(args) != n {
		return usageErrorf("want %s, got %d argument(s): %q", what, len(args), args)
	}
	return nil
}

// subcommand dispatches "NOUN VERB ..." to the verb's function.
func subcommand(noun string, args []string, verbs map[string]func([]string) error) error {
	if len(args) == 0 {
		return usageErrorf("want a subcommand: %s %s", noun, verbNames(verbs))
	}
	fn, ok := verbs[args[0]]
	if !ok {
		return usageErrorf("unknown subcommand %q: %s %s", args[0], noun, verbNames(verbs))
	}
	return fn(args[1:])
}

func verbNames(verbs map[string]func([]string) error) string {
	var names []string
	for n := range verbs {
		names = append(names, n)
	}
	sort.Strings(names)
	return strings.Join(names, "|")
}

// usageError is a bad command line (exit code 2).
type usageError struct{ error }

func (e usageError) Unwrap() error { return e.error }

func usageErrorf(format string, args ...any) error {
	return usageError{fmt.Errorf(format, args...)}
}
