package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/kogge-fleet/kogge/fleet-server/api/client"
)

// maxConfigFile bounds a configuration file; the server takes at most 1 MiB.
const maxConfigFile = 1 << 20

// twinCmd runs "koggectl twin get|set".
func twinCmd(args []string, getenv env, stdin io.Reader, stdout, stderr io.Writer) error {
	target := func(name string) (*adminCmd, *string, *string, func([]string) ([]string, error)) {
		fs, af := newAdminFlagSet(name, stderr, getenv)
		group := fs.String("group", "", "the group's configuration")
		device := fs.String("device", "", "the device's configuration (for set: its override)")
		c := &adminCmd{flags: af, getenv: getenv, stdin: stdin, stdout: stdout}
		return c, group, device, func(args []string) ([]string, error) {
			pos, err := parseInterleaved(fs, args)
			if err != nil {
				return nil, err
			}
			if (*group == "") == (*device == "") {
				return nil, usageErrorf("give either --group G or --device D")
			}
			return pos, nil
		}
	}
	return subcommand("twin", args, map[string]func([]string) error{
		"get": func(args []string) error {
			c, group, device, parse := target("twin get")
			pos, err := parse(args)
			if err != nil {
				return err
			}
			if err := wantArgs(pos, 0, "no arguments"); err != nil {
				return err
			}
			if *group != "" {
				return c.twinGetGroup(*group)
			}
			return c.twinGetDevice(*device)
		},
		"set": func(args []string) error {
			c, group, device, parse := target("twin set")
			pos, err := parse(args)
			if err != nil {
				return err
			}
			if err := wantArgs(pos, 1, "a configuration FILE.json, or - for standard input"); err != nil {
				return err
			}
			cfg, err := readConfigFile(pos[0], stdin)
			if err != nil {
				return err
			}
			return c.twinSet(*group, *device, cfg)
		},
	})
}

// readConfigFile reads a JSON object from a file or standard input. It may
// be the object itself or {"config": {...}} as the API takes it.
func readConfigFile(name string, stdin io.Reader) (map[string]any, error) {
	var in io.Reader = stdin
	if name != "-" {
		f, err := os.Open(name)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		in = f
	}
	b, err := io.ReadAll(io.LimitReader(in, maxConfigFile+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", name, err)
	}
	if len(b) > maxConfigFile {
		return nil, fmt.Errorf("%s is larger than %d bytes", name, maxConfigFile)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var cfg map[string]any
	if err := dec.Decode(&cfg); err != nil {
		return nil, fmt.Errorf("%s does not hold a JSON object: %w", name, err)
	}
	if dec.More() {
		return nil, fmt.Errorf("%s holds more than one JSON value", name)
	}
	if cfg == nil {
		return nil, fmt.Errorf("%s holds null, not a JSON object", name)
	}
	if inner, ok := cfg["config"].(map[string]any); ok && len(cfg) == 1 {
		cfg = inner
	}
	return cfg, nil
}

func (c *adminCmd) twinGetGroup(group string) error {
	cl, err := c.client()
	if err != nil {
		return err
	}
	ctx, cancel := c.context()
	defer cancel()
	g, err := cl.GroupTwin(ctx, group)
	if err != nil {
		return err
	}
	if c.flags.json {
		return c.printJSON(g)
	}
	if err := fields(c.stdout, "Group", g.Group, "Version", fmt.Sprint(g.Version)); err != nil {
		return err
	}
	return printConfig(c.stdout, "Configuration", g.Config)
}

func (c *adminCmd) twinGetDevice(device string) error {
	cl, err := c.client()
	if err != nil {
		return err
	}
	ctx, cancel := c.context()
	defer cancel()
	v, err := cl.DeviceTwin(ctx, device)
	if err != nil {
		return err
	}
	if c.flags.json {
		return c.printJSON(v)
	}
	return renderTwin(c.stdout, v, time.Now())
}

func renderTwin(w io.Writer, v client.DeviceTwin, now time.Time) error {
	state := "waiting for the device to report"
	switch d := v.Diff; {
	case v.Version == 0:
		state = "no configuration for this device"
	case d.InSync:
		state = "in sync"
	case d.Rejected:
		state = "REFUSED by the device: " + d.Reason
	case v.Reported != nil && d.AppliedVersion != d.DesiredVersion:
		state = fmt.Sprintf("device runs version %d", d.AppliedVersion)
	case len(d.Keys) > 0:
		state = "device differs in " + strings.Join(d.Keys, ", ")
	}
	kv := []string{
		"Device", v.Device,
		"Group", v.Group,
		"Desired version", fmt.Sprint(v.Version),
		"State", state,
	}
	if v.Reported != nil {
		kv = append(kv, "Applied version", fmt.Sprint(v.Reported.Version), "Reported", when(v.Reported.At, now))
	}
	if err := fields(w, kv...); err != nil {
		return err
	}
	if err := printConfig(w, "Desired configuration", v.Desired); err != nil {
		return err
	}
	if v.Override != nil {
		if err := printConfig(w, "Override of this device", v.Override); err != nil {
			return err
		}
	}
	if v.Reported != nil && v.Reported.Config != nil {
		return printConfig(w, "Reported configuration", v.Reported.Config)
	}
	return nil
}

// printConfig prints a configuration as indented JSON under a title.
func printConfig(w io.Writer, title string, cfg map[string]any) error {
	if cfg == nil {
		cfg = map[string]any{}
	}
	b, err := json.MarshalIndent(cfg, "  ", "  ")
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(w, "\n%s:\n  %s\n", title, b)
	return err
}

func (c *adminCmd) twinSet(group, device string, cfg map[string]any) error {
	cl, err := c.client()
	if err != nil {
		return err
	}
	ctx, cancel := c.context()
	defer cancel()
	if group != "" {
		g, err := cl.SetGroupTwin(ctx, group, cfg)
		if err != nil {
			return err
		}
		if c.flags.json {
			return c.printJSON(g)
		}
		_, err = fmt.Fprintf(c.stdout, "Set the configuration of group %s (version %d, %d keys); its devices get it now.\n",
			g.Group, g.Version, len(g.Config))
		return err
	}
	v, err := cl.SetOverride(ctx, device, cfg)
	if err != nil {
		return err
	}
	if c.flags.json {
		return c.printJSON(v)
	}
	keys := make([]string, 0, len(cfg))
	for k := range cfg {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	_, err = fmt.Fprintf(c.stdout, "Set the override of device %s (%s); its desired configuration is now version %d.\n",
		v.Device, strings.Join(keys, ", "), v.Version)
	return err
}
