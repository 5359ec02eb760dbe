package main

import (
	"fmt"
	"io"
	"time"

	"github.com/kogge-fleet/kogge/fleet-server/api/client"
)

// enrollCodeCmd runs "koggectl enroll-code create|list|revoke".
func enrollCodeCmd(args []string, getenv env, stdin io.Reader, stdout, stderr io.Writer) error {
	return subcommand("enroll-code", args, map[string]func([]string) error{
		"create": func(args []string) error {
			fs, af := newAdminFlagSet("enroll-code create", stderr, getenv)
			var r client.CodeRequest
			fs.StringVar(&r.Group, "group", "", "the group the device joins (required)")
			fs.DurationVar(&r.TTL, "ttl", 0, "how long the code is valid, e.g. 24h (default: the server's)")
			fs.StringVar(&r.Note, "note", "", "what the code is for, e.g. \"kiosk 3, Rathaus EG\"")
			pos, err := parseInterleaved(fs, args)
			if err != nil {
				return err
			}
			if err := wantArgs(pos, 0, "no arguments"); err != nil {
				return err
			}
			if r.Group == "" {
				return usageErrorf("--group is required")
			}
			c := &adminCmd{flags: af, getenv: getenv, stdin: stdin, stdout: stdout}
			return c.codeCreate(r)
		},
		"list": func(args []string) error {
			fs, af := newAdminFlagSet("enroll-code list", stderr, getenv)
			group := fs.String("group", "", "only codes of this group")
			pos, err := parseInterleaved(fs, args)
			if err != nil {
				return err
			}
			if err := wantArgs(pos, 0, "no arguments"); err != nil {
				return err
			}
			c := &adminCmd{flags: af, getenv: getenv, stdin: stdin, stdout: stdout}
			return c.codeList(*group)
		},
		"revoke": func(args []string) error {
			fs, af := newAdminFlagSet("enroll-code revoke", stderr, getenv)
			pos, err := parseInterleaved(fs, args)
			if err != nil {
				return err
			}
			if err := wantArgs(pos, 1, "a code id (from enroll-code list)"); err != nil {
				return err
			}
			c := &adminCmd{flags: af, getenv: getenv, stdin: stdin, stdout: stdout}
			return c.codeRevoke(pos[0])
		},
	})
}

func (c *adminCmd) codeCreate(r client.CodeRequest) error {
	cl, err := c.client()
	if err != nil {
		return err
	}
	ctx, cancel := c.context()
	defer cancel()
	code, err := cl.CreateCode(ctx, r)
	if err != nil {
		return err
	}
	if c.flags.json {
		return c.printJSON(code)
	}
	if err := fields(c.stdout,
		"Enrollment code", code.Secret,
		"Group", code.Group,
		"Expires", when(code.ExpiresAt, time.Now()),
		"CA fingerprint", code.CAFingerprint,
		"Code id", code.ID,
		"Note", code.Note,
	); err != nil {
		return err
	}
	_, err = fmt.Fprintln(c.stdout, "\nThe code is shown only now. Give the device the code and the CA fingerprint; it enrolls once.")
	return err
}

func (c *adminCmd) codeList(group string) error {
	cl, err := c.client()
	if err != nil {
		return err
	}
	ctx, cancel := c.context()
	defer cancel()
	codes, err := cl.Codes(ctx, group)
	if err != nil {
		return err
	}
	if c.flags.json {
		if codes == nil {
			codes = []client.Code{}
		}
		return c.printJSON(map[string]any{"codes": codes})
	}
	now := time.Now()
	t := newTable(c.stdout, "ID", "GROUP", "STATE", "EXPIRES", "DEVICE", "NOTE")
	for _, k := range codes {
		t.row(k.ID, k.Group, k.State, when(k.ExpiresAt, now), k.Device, k.Note)
	}
	return t.flush()
}

func (c *adminCmd) codeRevoke(id string) error {
	cl, err := c.client()
	if err != nil {
		return err
	}
	ctx, cancel := c.context()
	defer cancel()
	if err := cl.RevokeCode(ctx, id); err != nil {
		return err
	}
	if c.flags.json {
		return c.printJSON(map[string]any{"revoked": id})
	}
	_, err = fmt.Fprintf(c.stdout, "Revoked enrollment code %s.\n", id)
	return err
}
