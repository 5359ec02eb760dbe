package main

import (
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/kogge-fleet/kogge/fleet-server/api/client"
)

// auditCmd runs "koggectl audit list|verify".
func auditCmd(args []string, getenv env, stdin io.Reader, stdout, stderr io.Writer) error {
	return subcommand("audit", args, map[string]func([]string) error{
		"list": func(args []string) error {
			fs, af := newAdminFlagSet("audit list", stderr, getenv)
			var q client.AuditQuery
			fs.StringVar(&q.Action, "action", "", "only entries of this action, e.g. device.revoke")
			fs.StringVar(&q.Target, "target", "", "only entries about this target, e.g. record:ID or device:ID")
			since := fs.String("since", "", "only entries since this time: RFC 3339 (2026-05-01T00:00:00Z) or a duration ago (24h)")
			fs.BoolVar(&q.Newest, "newest", false, "newest first")
			fs.IntVar(&q.Limit, "limit", 100, "at most this many entries (0: all)")
			pos, err := parseInterleaved(fs, args)
			if err != nil {
				return err
			}
			if err := wantArgs(pos, 0, "no arguments"); err != nil {
				return err
			}
			if *since != "" {
				if q.Since, err = parseSince(*since, time.Now()); err != nil {
					return err
				}
			}
			c := &adminCmd{flags: af, getenv: getenv, stdin: stdin, stdout: stdout}
			return c.auditList(q)
		},
		"verify": func(args []string) error {
			fs, af := newAdminFlagSet("audit verify", stderr, getenv)
			pos, err := parseInterleaved(fs, args)
			if err != nil {
				return err
			}
			if err := wantArgs(pos, 0, "no arguments"); err != nil {
				return err
			}
			c := &adminCmd{flags: af, getenv: getenv, stdin: stdin, stdout: stdout}
			return c.auditVerify()
		},
	})
}

// parseSince reads a time or a duration before now.
func parseSince(s string, now time.Time) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	if d, err := time.ParseDuration(s); err == nil && d > 0 {
		return now.Add(-d), nil
	}
	return time.Time{}, usageErrorf("--since %q: want an RFC 3339 time such as 2026-05-01T00:00:00Z or a duration such as 24h", s)
}

func (c *adminCmd) auditList(q client.AuditQuery) error {
	cl, err := c.client()
	if err != nil {
		return err
	}
	ctx, cancel := c.context()
	defer cancel()
	want := q.Limit
	var all []client.AuditEntry
	for {
		q.Limit = 1000
		if want > 0 {
			q.Limit = min(want-len(all), 1000)
		}
		page, err := cl.Audit(ctx, q)
		if err != nil {
			return err
		}
		all = append(all, page.Entries...)
		if page.Next == "" || (want > 0 && len(all) >= want) {
			break
		}
		if q.Newest {
			q.Before = page.Next
		} else {
			q.After = page.Next
		}
	}
	if c.flags.json {
		if all == nil {
			all = []client.AuditEntry{}
		}
		return c.printJSON(map[string]any{"entries": all})
	}
	t := newTable(c.stdout, "SEQ", "TIME", "ACTOR", "ACTION", "TARGET", "DETAILS")
	for _, e := range all {
		t.row(strconv.FormatInt(e.Seq, 10), e.At.UTC().Format("2006-01-02 15:04:05Z"), e.Actor, e.Action, e.Target,
			clipCell(string(e.Details), 100))
	}
	return t.flush()
}

// errAuditBroken is the failure of audit verify on a broken chain (exit 1).
type errAuditBroken struct{ v client.AuditVerification }

func (e errAuditBroken) Error() string {
	return fmt.Sprintf("audit log broken at entry %d: %s (%d entries before it check out)", e.v.BrokenAt, e.v.Reason, e.v.Entries)
}

func (c *adminCmd) auditVerify() error {
	cl, err := c.client()
	if err != nil {
		return err
	}
	ctx, cancel := c.context()
	defer cancel()
	v, err := cl.VerifyAudit(ctx)
	if err != nil {
		return err
	}
	if c.flags.json {
		if err := c.printJSON(v); err != nil {
			return err
		}
	} else if v.OK {
		if _, err := fmt.Fprintf(c.stdout, "Audit log intact: %d entries, each hash chained to the one before.\n", v.Entries); err != nil {
			return err
		}
	}
	if !v.OK {
		return errAuditBroken{v}
	}
	return nil
}
