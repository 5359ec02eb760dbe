package main

import (
	"flag"
	"fmt"
	"io"
	"sort"
	"strconv"
	"time"

	"github.com/google/uuid"

	"github.com/kogge-fleet/kogge/fleet-server/api/client"
)

// deadLetterCmd runs "koggectl dead-letter list|show|replay|discard".
func deadLetterCmd(args []string, getenv env, stdin io.Reader, stdout, stderr io.Writer) error {
	return subcommand("dead-letter", args, map[string]func([]string) error{
		"list": func(args []string) error {
			fs, af := newAdminFlagSet("dead-letter list", stderr, getenv)
			office := fs.String("office", "", "only dead letters of this office")
			limit := fs.Int("limit", 0, "at most this many (default: all)")
			pos, err := parseInterleaved(fs, args)
			if err != nil {
				return err
			}
			if err := wantArgs(pos, 0, "no arguments"); err != nil {
				return err
			}
			c := &adminCmd{flags: af, getenv: getenv, stdin: stdin, stdout: stdout}
			return c.deliveryList(client.DeliveryQuery{Office: *office, State: "dead", Limit: *limit})
		},
		"show": func(args []string) error {
			fs, af := newAdminFlagSet("dead-letter show", stderr, getenv)
			id, err := oneRecord(fs, args)
			if err != nil {
				return err
			}
			c := &adminCmd{flags: af, getenv: getenv, stdin: stdin, stdout: stdout}
			return c.deliveryShow(id, true)
		},
		"replay": func(args []string) error {
			fs, af := newAdminFlagSet("dead-letter replay", stderr, getenv)
			id, err := oneRecord(fs, args)
			if err != nil {
				return err
			}
			c := &adminCmd{flags: af, getenv: getenv, stdin: stdin, stdout: stdout}
			return c.deadLetterReplay(id)
		},
		"discard": func(args []string) error {
			fs, af := newAdminFlagSet("dead-letter discard", stderr, getenv)
			reason := fs.String("reason", "", "why it is dropped (audited; no personal data)")
			id, err := oneRecord(fs, args)
			if err != nil {
				return err
			}
			c := &adminCmd{flags: af, getenv: getenv, stdin: stdin, stdout: stdout}
			return c.deadLetterDiscard(id, *reason)
		},
	})
}

// deliveryCmd runs "koggectl delivery list|show|queues".
func deliveryCmd(args []string, getenv env, stdin io.Reader, stdout, stderr io.Writer) error {
	return subcommand("delivery", args, map[string]func([]string) error{
		"list": func(args []string) error {
			fs, af := newAdminFlagSet("delivery list", stderr, getenv)
			var q client.DeliveryQuery
			fs.StringVar(&q.Office, "office", "", "only deliveries to this office")
			fs.StringVar(&q.State, "state", "", "only deliveries in this state: queued, leased, delivered, accepted, dead, discarded, erased")
			fs.IntVar(&q.Limit, "limit", 0, "at most this many (default: all)")
			pos, err := parseInterleaved(fs, args)
			if err != nil {
				return err
			}
			if err := wantArgs(pos, 0, "no arguments"); err != nil {
				return err
			}
			c := &adminCmd{flags: af, getenv: getenv, stdin: stdin, stdout: stdout}
			return c.deliveryList(q)
		},
		"show": func(args []string) error {
			fs, af := newAdminFlagSet("delivery show", stderr, getenv)
			id, err := oneRecord(fs, args)
			if err != nil {
				return err
			}
			c := &adminCmd{flags: af, getenv: getenv, stdin: stdin, stdout: stdout}
			return c.deliveryShow(id, false)
		},
		"queues": func(args []string) error {
			fs, af := newAdminFlagSet("delivery queues", stderr, getenv)
			pos, err := parseInterleaved(fs, args)
			if err != nil {
				return err
			}
			if err := wantArgs(pos, 0, "no arguments"); err != nil {
				return err
			}
			c := &adminCmd{flags: af, getenv: getenv, stdin: stdin, stdout: stdout}
			return c.queues()
		},
	})
}

// oneRecord parses flags and the one positional argument, a record id.
func oneRecord(fs *flag.FlagSet, args []string) (uuid.UUID, error) {
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		return uuid.Nil, err
	}
	if err := wantArgs(pos, 1, "a record id"); err != nil {
		return uuid.Nil, err
	}
	id, err := uuid.Parse(pos[0])
	if err != nil {
		return uuid.Nil, usageErrorf("%q is not a record id (a UUID)", pos[0])
	}
	return id, nil
}

// deliveryList fetches every page (or up to q.Limit deliveries).
func (c *adminCmd) deliveryList(q client.DeliveryQuery) error {
	cl, err := c.client()
	if err != nil {
		return err
	}
	ctx, cancel := c.context()
	defer cancel()
	want := q.Limit
	var all []client.Delivery
	for {
		if want > 0 {
			q.Limit = min(want-len(all), 1000)
		}
		page, err := cl.Deliveries(ctx, q)
		if err != nil {
			return err
		}
		all = append(all, page.Deliveries...)
		if page.Next == "" || (want > 0 && len(all) >= want) {
			break
		}
		q.After = page.Next
	}
	if c.flags.json {
		if all == nil {
			all = []client.Delivery{}
		}
		return c.printJSON(map[string]any{"deliveries": all})
	}
	now := time.Now()
	t := newTable(c.stdout, "RECORD", "OFFICE", "KIND", "DEVICE", "STATE", "ATTEMPT", "QUEUED", "REFERENCE", "LAST ERROR")
	for _, d := range all {
		t.row(d.Record.String(), d.Office, d.Kind, d.Device, d.State, strconv.Itoa(d.Attempt), when(d.EnqueuedAt, now),
			d.Reference, clipCell(d.LastError, 60))
	}
	if err := t.flush(); err != nil {
		return err
	}
	_, err = fmt.Fprintf(c.stdout, "%d deliveries\n", len(all))
	return err
}

// clipCell shortens text for a table cell.
func clipCell(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}

// deliveryShow prints a delivery with its record's metadata; deadOnly asks
// the dead-letter endpoint.
func (c *adminCmd) deliveryShow(id uuid.UUID, deadOnly bool) error {
	cl, err := c.client()
	if err != nil {
		return err
	}
	ctx, cancel := c.context()
	defer cancel()
	var d client.DeliveryDetail
	if deadOnly {
		d, err = cl.DeadLetter(ctx, id)
	} else {
		d, err = cl.Delivery(ctx, id)
	}
	if err != nil {
		return err
	}
	if c.flags.json {
		return c.printJSON(d)
	}
	now := time.Now()
	del, rec := d.Delivery, d.Record
	if err := fields(c.stdout,
		"Record", del.Record.String(),
		"Device", fmt.Sprintf("%s (seq %d)", del.Device, rec.Seq),
		"Office", del.Office,
		"Kind", del.Kind,
		"Key id", rec.KeyID,
		"State", del.State,
		"Attempts", strconv.Itoa(del.Attempt),
		"Last error", del.LastError,
		"Reference", del.Reference,
		"Queued", when(del.EnqueuedAt, now),
		"Dead since", whenPtr(del.DeadAt, now),
		"Accepted", whenPtr(del.AcceptedAt, now),
		"Device told", del.Status,
		"Created", when(rec.CreatedAt, now),
		"Received", when(rec.ReceivedAt, now),
		"Sealed body", fmt.Sprintf("%d bytes (%s)", rec.SealedSize, rec.Status),
	); err != nil {
		return err
	}
	if len(rec.Meta) > 0 {
		fmt.Fprintln(c.stdout, "\nMetadata:")
		if err := fields(c.stdout, sortedPairs(rec.Meta)...); err != nil {
			return err
		}
	}
	if len(rec.Blobs) > 0 {
		fmt.Fprintln(c.stdout, "\nBlobs:")
		t := newTable(c.stdout, "ID", "ROLE", "SIZE", "SHA-256")
		for _, b := range rec.Blobs {
			t.row(b.ID.String(), b.Role, strconv.FormatUint(b.Size, 10), b.SHA256)
		}
		return t.flush()
	}
	return nil
}

// sortedPairs flattens a map into key, value pairs by key.
func sortedPairs(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var out []string
	for _, k := range keys {
		out = append(out, k, m[k])
	}
	return out
}

func (c *adminCmd) deadLetterReplay(id uuid.UUID) error {
	cl, err := c.client()
	if err != nil {
		return err
	}
	ctx, cancel := c.context()
	defer cancel()
	d, err := cl.ReplayDeadLetter(ctx, id)
	if err != nil {
		return err
	}
	if c.flags.json {
		return c.printJSON(d)
	}
	_, err = fmt.Fprintf(c.stdout, "Replayed %s: queued again for %s with its attempts reset.\n", d.Record, d.Office)
	return err
}

func (c *adminCmd) deadLetterDiscard(id uuid.UUID, reason string) error {
	cl, err := c.client()
	if err != nil {
		return err
	}
	ctx, cancel := c.context()
	defer cancel()
	d, err := cl.DiscardDeadLetter(ctx, id, reason)
	if err != nil {
		return err
	}
	if c.flags.json {
		return c.printJSON(d)
	}
	_, err = fmt.Fprintf(c.stdout, "Discarded %s: its sealed body and blobs are deleted; the metadata stays.\n", d.Record)
	return err
}

func (c *adminCmd) queues() error {
	cl, err := c.client()
	if err != nil {
		return err
	}
	ctx, cancel := c.context()
	defer cancel()
	qs, err := cl.Queues(ctx)
	if err != nil {
		return err
	}
	if c.flags.json {
		if qs == nil {
			qs = []client.OfficeQueue{}
		}
		return c.printJSON(map[string]any{"offices": qs})
	}
	t := newTable(c.stdout, "OFFICE", "QUEUED", "LEASED", "DELIVERED", "DEAD", "LAG")
	for _, q := range qs {
		t.row(q.Office, strconv.FormatInt(q.Queued, 10), strconv.FormatInt(q.Leased, 10), strconv.FormatInt(q.Delivered, 10),
			strconv.FormatInt(q.Dead, 10), roughDuration(time.Duration(q.LagSeconds*float64(time.Second))))
	}
	return t.flush()
}
