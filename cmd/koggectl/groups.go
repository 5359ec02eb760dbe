package main

import (
	"fmt"
	"io"
	"time"

	"github.com/kogge-fleet/kogge/fleet-server/api/client"
)

// groupCmd runs "koggectl group list|create".
func groupCmd(args []string, getenv env, stdin io.Reader, stdout, stderr io.Writer) error {
	return subcommand("group", args, map[string]func([]string) error{
		"list": func(args []string) error {
			fs, af := newAdminFlagSet("group list", stderr, getenv)
			pos, err := parseInterleaved(fs, args)
			if err != nil {
				return err
			}
			if err := wantArgs(pos, 0, "no arguments"); err != nil {
				return err
			}
			c := &adminCmd{flags: af, getenv: getenv, stdin: stdin, stdout: stdout}
			return c.groupList()
		},
		"create": func(args []string) error {
			fs, af := newAdminFlagSet("group create", stderr, getenv)
			id := fs.String("id", "", "the group's id (a-z, 0-9, '-'; default: made from the name)")
			pos, err := parseInterleaved(fs, args)
			if err != nil {
				return err
			}
			if err := wantArgs(pos, 1, "the group's name"); err != nil {
				return err
			}
			c := &adminCmd{flags: af, getenv: getenv, stdin: stdin, stdout: stdout}
			return c.groupCreate(*id, pos[0])
		},
	})
}

func (c *adminCmd) groupList() error {
	cl, err := c.client()
	if err != nil {
		return err
	}
	ctx, cancel := c.context()
	defer cancel()
	gs, err := cl.Groups(ctx)
	if err != nil {
		return err
	}
	if c.flags.json {
		if gs == nil {
			gs = []client.Group{}
		}
		return c.printJSON(map[string]any{"groups": gs})
	}
	now := time.Now()
	t := newTable(c.stdout, "GROUP", "NAME", "DEVICES", "CREATED")
	for _, g := range gs {
		t.row(g.ID, g.Name, fmt.Sprint(g.Devices), when(g.CreatedAt, now))
	}
	return t.flush()
}

func (c *adminCmd) groupCreate(id, name string) error {
	cl, err := c.client()
	if err != nil {
		return err
	}
	ctx, cancel := c.context()
	defer cancel()
	g, err := cl.CreateGroup(ctx, id, name)
	if err != nil {
		return err
	}
	if c.flags.json {
		return c.printJSON(g)
	}
	_, err = fmt.Fprintf(c.stdout, "Created group %s (%s).\n", g.ID, g.Name)
	return err
}
