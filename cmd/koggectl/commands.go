package main

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/kogge-fleet/kogge/fleet-server/api/client"
)

// commandCmd runs "koggectl command send|status|list".
func commandCmd(args []string, getenv env, stdin io.Reader, stdout, stderr io.Writer) error {
	return subcommand("command", args, map[string]func([]string) error{
		"send": func(args []string) error {
			fs, af := newAdminFlagSet("command send", stderr, getenv)
			var r client.CommandRequest
			fs.StringVar(&r.Device, "device", "", "send to this device")
			fs.StringVar(&r.Group, "group", "", "send to every device of this group")
			fs.DurationVar(&r.TTL, "ttl", 0, "time to live, e.g. 10m (default: the server's, 24h)")
			pos, err := parseInterleaved(fs, args)
			if err != nil {
				return err
			}
			if (r.Device == "") == (r.Group == "") {
				return usageErrorf("give either --device D or --group G")
			}
			if len(pos) == 0 {
				return usageErrorf("want a command NAME and KEY=VALUE arguments")
			}
			r.Name = pos[0]
			if r.Args, err = parseArgs(pos[1:]); err != nil {
				return err
			}
			c := &adminCmd{flags: af, getenv: getenv, stdin: stdin, stdout: stdout}
			return c.commandSend(r)
		},
		"status": func(args []string) error {
			fs, af := newAdminFlagSet("command status", stderr, getenv)
			pos, err := parseInterleaved(fs, args)
			if err != nil {
				return err
			}
			if err := wantArgs(pos, 1, "a command id, or a fan-out id of a group send"); err != nil {
				return err
			}
			id, err := uuid.Parse(pos[0])
			if err != nil {
				return usageErrorf("%q is not a command id", pos[0])
			}
			c := &adminCmd{flags: af, getenv: getenv, stdin: stdin, stdout: stdout}
			return c.commandStatus(id)
		},
		"list": func(args []string) error {
			fs, af := newAdminFlagSet("command list", stderr, getenv)
			device := fs.String("device", "", "the device whose commands to list (required)")
			limit := fs.Int("limit", 20, "at most this many, newest first")
			pos, err := parseInterleaved(fs, args)
			if err != nil {
				return err
			}
			if err := wantArgs(pos, 0, "no arguments"); err != nil {
				return err
			}
			if *device == "" {
				return usageErrorf("--device is required")
			}
			c := &adminCmd{flags: af, getenv: getenv, stdin: stdin, stdout: stdout}
			return c.commandList(*device, *limit)
		},
	})
}

// parseArgs reads KEY=VALUE arguments.
func parseArgs(kvs []string) (map[string]string, error) {
	args := map[string]string{}
	for _, kv := range kvs {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return nil, usageErrorf("argument %q: want KEY=VALUE", kv)
		}
		if _, dup := args[k]; dup {
			return nil, usageErrorf("argument %q given twice", k)
		}
		args[k] = v
	}
	return args, nil
}

func (c *adminCmd) commandSend(r client.CommandRequest) error {
	cl, err := c.client()
	if err != nil {
		return err
	}
	ctx, cancel := c.context()
	defer cancel()
	sent, err := cl.SendCommand(ctx, r)
	if err != nil {
		return err
	}
	if c.flags.json {
		return c.printJSON(sent)
	}
	if sent.Fanout == nil {
		cmd := sent.Commands[0]
		_, err = fmt.Fprintf(c.stdout, "Command %s %s to %s: %s.\nFollow it with: koggectl command status %s\n",
			cmd.ID, cmd.Name, cmd.Device, cmd.State, cmd.ID)
		return err
	}
	if _, err := fmt.Fprintf(c.stdout, "Group send %s: %s to %d device(s) of %s.\nFollow it with: koggectl command status %s\n\n",
		sent.Fanout, r.Name, len(sent.Commands), r.Group, sent.Fanout); err != nil {
		return err
	}
	return commandTable(c.stdout, sent.Commands, time.Now())
}

// commandStatus shows a command, or all commands of a group send.
func (c *adminCmd) commandStatus(id uuid.UUID) error {
	cl, err := c.client()
	if err != nil {
		return err
	}
	ctx, cancel := c.context()
	defer cancel()
	cmd, err := cl.Command(ctx, id)
	if client.IsNotFound(err) {
		fan, ferr := cl.Fanout(ctx, id)
		if ferr == nil {
			if c.flags.json {
				return c.printJSON(fan)
			}
			return commandTable(c.stdout, fan.Commands, time.Now())
		}
	}
	if err != nil {
		return err
	}
	if c.flags.json {
		return c.printJSON(cmd)
	}
	return renderCommand(c.stdout, cmd, time.Now())
}

func renderCommand(w io.Writer, cmd client.Command, now time.Time) error {
	var args []string
	for k, v := range cmd.Args {
		args = append(args, k+"="+v)
	}
	sort.Strings(args)
	kv := []string{
		"Command", cmd.ID.String(),
		"Name", cmd.Name,
		"Arguments", strings.Join(args, " "),
		"Device", cmd.Device,
		"State", cmd.State,
		"Issued", when(cmd.IssuedAt, now),
		"Expires", when(cmd.ExpiresAt, now),
		"Sent", fmt.Sprintf("%d time(s), last %s", cmd.SentCount, whenPtr(cmd.LastSentAt, now)),
	}
	if cmd.Fanout != nil {
		kv = append(kv, "Group send", cmd.Fanout.String())
	}
	if r := cmd.Result; r != nil {
		kv = append(kv, "Outcome", r.Outcome, "Message", r.Message, "Finished", when(r.At, now))
	}
	if err := fields(w, kv...); err != nil {
		return err
	}
	if r := cmd.Result; r != nil && (r.Output != "" || len(r.OutputBase64) > 0) {
		out := r.Output
		if out == "" {
			out = fmt.Sprintf("(%d bytes of binary output; see --json)", len(r.OutputBase64))
		}
		_, err := fmt.Fprintf(w, "\nOutput:\n%s\n", strings.TrimRight(out, "\n"))
		return err
	}
	return nil
}

func commandTable(w io.Writer, cmds []client.Command, now time.Time) error {
	t := newTable(w, "COMMAND", "DEVICE", "NAME", "STATE", "OUTCOME", "ISSUED")
	for _, c := range cmds {
		outcome := ""
		if c.Result != nil {
			outcome = c.Result.Outcome
		}
		t.row(c.ID.String(), c.Device, c.Name, c.State, outcome, when(c.IssuedAt, now))
	}
	return t.flush()
}

func (c *adminCmd) commandList(device string, limit int) error {
	cl, err := c.client()
	if err != nil {
		return err
	}
	ctx, cancel := c.context()
	defer cancel()
	var all []client.Command
	before := ""
	for len(all) < limit {
		page, err := cl.DeviceCommands(ctx, device, before, min(limit-len(all), 1000))
		if err != nil {
			return err
		}
		all = append(all, page.Commands...)
		if before = page.Next; before == "" {
			break
		}
	}
	if c.flags.json {
		if all == nil {
			all = []client.Command{}
		}
		return c.printJSON(map[string]any{"commands": all})
	}
	return commandTable(c.stdout, all, time.Now())
}
