package main

import (
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/kogge-fleet/kogge/fleet-server/api/client"
)

// deviceCmd runs "koggectl device list|show|revoke".
func deviceCmd(args []string, getenv env, stdin io.Reader, stdout, stderr io.Writer) error {
	return subcommand("device", args, map[string]func([]string) error{
		"list": func(args []string) error {
			fs, af := newAdminFlagSet("device list", stderr, getenv)
			var q client.DeviceQuery
			fs.StringVar(&q.Group, "group", "", "only devices of this group")
			fs.StringVar(&q.State, "state", "", "only devices in this state: active, revoked, online, offline, never-connected")
			fs.StringVar(&q.Software, "software", "", "only devices running this software version (a trailing * matches a prefix)")
			seen := fs.Duration("seen-within", 0, "only devices seen within this time, e.g. 1h")
			notSeen := fs.Duration("not-seen-for", 0, "only devices not seen for this time, e.g. 24h")
			fs.IntVar(&q.Limit, "limit", 0, "at most this many devices (default: all)")
			pos, err := parseInterleaved(fs, args)
			if err != nil {
				return err
			}
			if err := wantArgs(pos, 0, "no arguments"); err != nil {
				return err
			}
			now := time.Now()
			if *seen > 0 {
				q.SeenAfter = now.Add(-*seen)
			}
			if *notSeen > 0 {
				q.SeenBefore = now.Add(-*notSeen)
			}
			c := &adminCmd{flags: af, getenv: getenv, stdin: stdin, stdout: stdout}
			return c.deviceList(q)
		},
		"show": func(args []string) error {
			fs, af := newAdminFlagSet("device show", stderr, getenv)
			pos, err := parseInterleaved(fs, args)
			if err != nil {
				return err
			}
			if err := wantArgs(pos, 1, "a device id"); err != nil {
				return err
			}
			c := &adminCmd{flags: af, getenv: getenv, stdin: stdin, stdout: stdout}
			return c.deviceShow(pos[0])
		},
		"revoke": func(args []string) error {
			fs, af := newAdminFlagSet("device revoke", stderr, getenv)
			reason := fs.String("reason", "", "why the device is revoked (stolen, lost, retired, …)")
			pos, err := parseInterleaved(fs, args)
			if err != nil {
				return err
			}
			if err := wantArgs(pos, 1, "a device id"); err != nil {
				return err
			}
			c := &adminCmd{flags: af, getenv: getenv, stdin: stdin, stdout: stdout}
			return c.deviceRevoke(pos[0], *reason)
		},
	})
}

// deviceList fetches every page (or up to q.Limit devices).
func (c *adminCmd) deviceList(q client.DeviceQuery) error {
	cl, err := c.client()
	if err != nil {
		return err
	}
	ctx, cancel := c.context()
	defer cancel()
	want := q.Limit
	var all []client.Device
	for {
		if want > 0 {
			q.Limit = min(want-len(all), 1000)
		} else {
			q.Limit = 1000
		}
		page, err := cl.Devices(ctx, q)
		if err != nil {
			return err
		}
		all = append(all, page.Devices...)
		if page.Next == "" || (want > 0 && len(all) >= want) {
			break
		}
		q.After = page.Next
	}
	if c.flags.json {
		if all == nil {
			all = []client.Device{}
		}
		return c.printJSON(map[string]any{"devices": all})
	}
	now := time.Now()
	t := newTable(c.stdout, "DEVICE", "GROUP", "STATE", "MODEL", "SOFTWARE", "LAST SEEN")
	for _, d := range all {
		t.row(d.ID, d.Group, d.State, d.Inventory.Model, d.Inventory.Software, whenPtr(d.LastSeen, now))
	}
	if err := t.flush(); err != nil {
		return err
	}
	_, err = fmt.Fprintf(c.stdout, "%d device(s)\n", len(all))
	return err
}

func (c *adminCmd) deviceShow(id string) error {
	cl, err := c.client()
	if err != nil {
		return err
	}
	ctx, cancel := c.context()
	defer cancel()
	d, err := cl.Device(ctx, id)
	if err != nil {
		return err
	}
	if c.flags.json {
		return c.printJSON(d)
	}
	return renderDevice(c.stdout, d, time.Now())
}

func renderDevice(w io.Writer, d client.DeviceDetail, now time.Time) error {
	var periph []string
	for _, p := range d.Inventory.Peripherals {
		periph = append(periph, p.Name+" ("+p.Kind+")")
	}
	kv := []string{
		"Device", d.ID,
		"Group", d.Group,
		"State", d.State,
		"Model", d.Inventory.Model,
		"Serial number", d.Inventory.Serial,
		"Software", d.Inventory.Software,
		"Peripherals", strings.Join(periph, ", "),
		"Location", d.Inventory.Location,
		"Enrolled", when(d.CreatedAt, now),
		"Last seen", whenPtr(d.LastSeen, now),
	}
	if d.RevokedAt != nil {
		kv = append(kv, "Revoked", whenPtr(d.RevokedAt, now), "Revocation reason", d.RevokedReason)
	}
	kv = append(kv, renderPresence(d, now)...)
	kv = append(kv,
		"Records stored up to", fmt.Sprintf("seq %d", d.Sync.High),
		"Records refused", fmt.Sprint(d.Sync.Rejected),
		"Blobs still arriving", fmt.Sprint(d.Sync.IncompleteBlobs),
	)
	if err := fields(w, kv...); err != nil {
		return err
	}
	if len(d.Certificates) > 0 {
		fmt.Fprintln(w, "\nCertificates:")
		t := newTable(w, "SERIAL", "NOT AFTER", "ISSUED", "REVOKED")
		for _, c := range d.Certificates {
			t.row(c.Serial, when(c.NotAfter, now), when(c.IssuedAt, now), whenPtr(c.RevokedAt, now))
		}
		return t.flush()
	}
	return nil
}

func (c *adminCmd) deviceRevoke(id, reason string) error {
	cl, err := c.client()
	if err != nil {
		return err
	}
	ctx, cancel := c.context()
	defer cancel()
	d, err := cl.RevokeDevice(ctx, id, reason)
	if err != nil {
		return err
	}
	if c.flags.json {
		return c.printJSON(d)
	}
	_, err = fmt.Fprintf(c.stdout, "Revoked device %s; it is disconnected and its certificates are refused from now on.\n", d.ID)
	return err
}

// renderPresence returns the "name", "value" lines of a device's presence
// and latest health.
func renderPresence(d client.DeviceDetail, now time.Time) []string {
	var kv []string
	switch p := d.Presence; {
	case p == nil:
		kv = append(kv, "Presence", "never connected")
	case p.Online:
		kv = append(kv, "Presence", "online since "+when(p.Since, now), "Last heard", when(p.LastHeard, now))
	default:
		kv = append(kv, "Presence", "offline ("+p.Reason+") since "+when(p.Since, now), "Last heard", when(p.LastHeard, now))
	}
	h := d.Health
	if h == nil {
		return append(kv, "Health", "no heartbeat yet")
	}
	hb := h.Heartbeat
	var periph []string
	for _, p := range hb.Peripherals {
		s := p.Name + " " + p.State
		if p.Reason != "" {
			s += " (" + p.Reason + ")"
		}
		periph = append(periph, s)
	}
	storage := fmt.Sprintf("%s of %s budget used, %s free on disk", bytesText(hb.BudgetUsed), bytesText(hb.BudgetTotal), bytesText(hb.DiskFree))
	if hb.Full {
		storage += ", FULL: captures paused"
	}
	battery := "none"
	if hb.Battery >= 0 {
		battery = fmt.Sprintf("%d %%", hb.Battery)
	}
	return append(kv,
		"Last heartbeat", when(h.ReceivedAt, now),
		"Unsent records", fmt.Sprint(hb.QueueDepth),
		"Storage", storage,
		"Battery", battery,
		"Peripheral states", strings.Join(periph, ", "),
	)
}

// bytesText renders a byte count for people.
func bytesText(n uint64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := uint64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
