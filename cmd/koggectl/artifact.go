package main

import (
	"crypto/ed25519"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/kogge-fleet/kogge/fleet-server/api/client"
	"github.com/kogge-fleet/kogge/protocol/artifact"
)

// artifactCmd runs "koggectl artifact keygen|sign|verify|upload|list|show|delete".
//
// keygen, sign and verify work offline on files; upload, list, show and
// delete talk to the fleet server's API. A signed manifest is kept next to
// its binary as BINARY.manifest unless --manifest names another file.
func artifactCmd(args []string, getenv env, stdin io.Reader, stdout, stderr io.Writer) error {
	admin := func(name string, n int, what string, fn func(c *adminCmd, pos []string) error) func([]string) error {
		return func(args []string) error {
			fs, af := newAdminFlagSet("artifact "+name, stderr, getenv)
			pos, err := parseInterleaved(fs, args)
			if err != nil {
				return err
			}
			if err := wantArgs(pos, n, what); err != nil {
				return err
			}
			return fn(&adminCmd{flags: af, getenv: getenv, stdin: stdin, stdout: stdout}, pos)
		}
	}
	return subcommand("artifact", args, map[string]func([]string) error{
		"keygen": func(args []string) error {
			fs := newFlagSet("artifact keygen", stderr)
			out := fs.String("out", "", "write the key pair to OUT.key (private, mode 0600) and OUT.pub (public)")
			pos, err := parseInterleaved(fs, args)
			if err != nil {
				return err
			}
			if err := wantArgs(pos, 0, "no arguments"); err != nil {
				return err
			}
			if *out == "" {
				return usageErrorf("--out NAME is required: the key pair goes to NAME.key and NAME.pub")
			}
			return artifactKeygen(*out, stdout)
		},
		"sign": func(args []string) error {
			fs := newFlagSet("artifact sign", stderr)
			key := fs.String("key", "", "the private signing key (koggectl artifact keygen)")
			version := fs.String("version", "", "the binary's version, e.g. 1.4.2")
			apps := fs.String("app", "", "the apps the binary is, comma-separated (kiosk, mobile-agent)")
			name := fs.String("name", "", "product name (default: the binary's file name)")
			platform := fs.String("platform", runtime.GOOS+"/"+runtime.GOARCH, "GOOS/GOARCH of the binary")
			minVersion := fs.String("min-version", "", "oldest running version the binary may replace")
			notes := fs.String("notes", "", "release notes for admins")
			manifest := fs.String("manifest", "", "where to write the signed manifest (default BINARY.manifest)")
			pos, err := parseInterleaved(fs, args)
			if err != nil {
				return err
			}
			if err := wantArgs(pos, 1, "the binary"); err != nil {
				return err
			}
			if *key == "" || *version == "" || *apps == "" {
				return usageErrorf("--key, --version and --app are required")
			}
			m := artifact.Manifest{Format: artifact.Format, Name: *name, Version: *version, Apps: splitCommas(*apps),
				Platform: *platform, MinVersion: *minVersion, Notes: *notes, Created: time.Now().UTC()}
			return artifactSign(pos[0], *key, *manifest, m, stdout)
		},
		"verify": func(args []string) error {
			fs := newFlagSet("artifact verify", stderr)
			keys := fs.String("keys", "", "public key files (PEM) to trust, comma-separated")
			manifest := fs.String("manifest", "", "the signed manifest (default BINARY.manifest)")
			pos, err := parseInterleaved(fs, args)
			if err != nil {
				return err
			}
			if err := wantArgs(pos, 1, "the binary"); err != nil {
				return err
			}
			if *keys == "" {
				return usageErrorf("--keys is required: the public keys to trust")
			}
			return artifactVerify(pos[0], *manifest, splitCommas(*keys), stdout)
		},
		"upload": func(args []string) error {
			fs, af := newAdminFlagSet("artifact upload", stderr, getenv)
			manifest := fs.String("manifest", "", "the signed manifest (default BINARY.manifest)")
			pos, err := parseInterleaved(fs, args)
			if err != nil {
				return err
			}
			if err := wantArgs(pos, 1, "the binary"); err != nil {
				return err
			}
			c := &adminCmd{flags: af, getenv: getenv, stdin: stdin, stdout: stdout}
			return c.artifactUpload(pos[0], *manifest)
		},
		"list":   admin("list", 0, "no arguments", func(c *adminCmd, _ []string) error { return c.artifactList() }),
		"show":   admin("show", 1, "the artifact's id", func(c *adminCmd, pos []string) error { return c.artifactShow(pos[0]) }),
		"delete": admin("delete", 1, "the artifact's id", func(c *adminCmd, pos []string) error { return c.artifactDelete(pos[0]) }),
	})
}

func splitCommas(s string) []string {
	var out []string
	for p := range strings.SplitSeq(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

func manifestFile(binary, given string) string {
	if given != "" {
		return given
	}
	return binary + ".manifest"
}

func artifactKeygen(out string, stdout io.Writer) error {
	key, err := artifact.GenerateKey()
	if err != nil {
		return err
	}
	priv, err := artifact.MarshalPrivateKey(key)
	if err != nil {
		return err
	}
	pub, err := artifact.MarshalPublicKey(key.Public().(ed25519.PublicKey))
	if err != nil {
		return err
	}
	for _, f := range []struct {
		name string
		b    []byte
		mode os.FileMode
	}{{out + ".key", priv, 0o600}, {out + ".pub", pub, 0o644}} {
		// O_EXCL: never overwrite a key, whose loss would strand the
		// devices that trust it.
		fh, err := os.OpenFile(f.name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, f.mode)
		if err != nil {
			return fmt.Errorf("write %s: %w", f.name, err)
		}
		_, werr := fh.Write(f.b)
		if err := errors.Join(werr, fh.Sync(), fh.Close()); err != nil {
			return fmt.Errorf("write %s: %w", f.name, err)
		}
	}
	_, err = fmt.Fprintf(stdout, "Signing key %s written to %s.key (keep it offline and secret) and %s.pub\n"+
		"(give the .pub to the server as rollout.keys and to the devices as their trusted key).\n",
		artifact.KeyID(key.Public().(ed25519.PublicKey)), out, out)
	return err
}

func artifactSign(binary, keyFile, manifestOut string, m artifact.Manifest, stdout io.Writer) error {
	kb, err := os.ReadFile(keyFile)
	if err != nil {
		return fmt.Errorf("read the signing key: %w", err)
	}
	key, err := artifact.ParsePrivateKey(kb)
	if err != nil {
		return err
	}
	if m.Name == "" {
		m.Name = strings.ToLower(strings.TrimSuffix(baseName(binary), ".exe"))
	}
	f, err := os.Open(binary)
	if err != nil {
		return err
	}
	defer f.Close()
	if m, err = artifact.Describe(m, f); err != nil {
		return err
	}
	signed, err := artifact.Sign(m, key)
	if err != nil {
		return err
	}
	out := manifestFile(binary, manifestOut)
	if err := os.WriteFile(out, append(signed, '\n'), 0o644); err != nil {
		return err
	}
	_, err = fmt.Fprintf(stdout, "Signed %s %s for %s (%s): %d bytes, SHA-256 %s, key %s\nManifest: %s\n",
		m.Name, m.Version, m.Platform, strings.Join(m.Apps, ", "), m.Size, m.SHA256,
		artifact.KeyID(key.Public().(ed25519.PublicKey)), out)
	return err
}

func baseName(p string) string {
	if i := strings.LastIndexAny(p, `/\`); i >= 0 {
		return p[i+1:]
	}
	return p
}

func artifactVerify(binary, manifest string, keyFiles []string, stdout io.Writer) error {
	keys := artifact.Keyring{}
	for _, kf := range keyFiles {
		b, err := os.ReadFile(kf)
		if err != nil {
			return fmt.Errorf("read key: %w", err)
		}
		ks, err := artifact.ParsePublicKeys(b)
		if err != nil {
			return err
		}
		for _, k := range ks {
			keys.Add(k)
		}
	}
	mb, err := os.ReadFile(manifestFile(binary, manifest))
	if err != nil {
		return fmt.Errorf("read the manifest: %w", err)
	}
	s, err := artifact.Verify(mb, keys)
	if err != nil {
		return err
	}
	f, err := os.Open(binary)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := s.Manifest.CheckBinary(f); err != nil {
		return err
	}
	m := s.Manifest
	_, err = fmt.Fprintf(stdout, "OK: %s %s for %s (%s), %d bytes, SHA-256 %s, signed by a trusted key\n",
		m.Name, m.Version, m.Platform, strings.Join(m.Apps, ", "), m.Size, m.SHA256)
	return err
}

func (c *adminCmd) artifactUpload(binary, manifest string) error {
	mb, err := os.ReadFile(manifestFile(binary, manifest))
	if err != nil {
		return fmt.Errorf("read the manifest: %w (sign the binary first: koggectl artifact sign)", err)
	}
	f, err := os.Open(binary)
	if err != nil {
		return err
	}
	defer f.Close()
	cl, err := c.client()
	if err != nil {
		return err
	}
	ctx, cancel := c.context()
	defer cancel()
	a, err := cl.UploadArtifact(ctx, mb, f)
	if err != nil {
		return err
	}
	if c.flags.json {
		return c.printJSON(a)
	}
	_, err = fmt.Fprintf(c.stdout, "Uploaded %s %s for %s as artifact %s (%d bytes).\n", a.Name, a.Version, a.Platform, a.ID, a.Size)
	return err
}

func (c *adminCmd) artifactList() error {
	cl, err := c.client()
	if err != nil {
		return err
	}
	ctx, cancel := c.context()
	defer cancel()
	list, err := cl.Artifacts(ctx)
	if err != nil {
		return err
	}
	if c.flags.json {
		if list == nil {
			list = []client.Artifact{}
		}
		return c.printJSON(map[string]any{"artifacts": list})
	}
	now := time.Now()
	t := newTable(c.stdout, "ARTIFACT", "NAME", "VERSION", "PLATFORM", "APPS", "SIZE", "UPLOADED")
	for _, a := range list {
		t.row(a.ID.String(), a.Name, a.Version, a.Platform, strings.Join(a.Apps, ","), fmt.Sprint(a.Size), when(a.UploadedAt, now))
	}
	return t.flush()
}

func parseID(s, what string) (uuid.UUID, error) {
	id, err := uuid.Parse(s)
	if err != nil {
		return uuid.Nil, usageErrorf("%s %q is not an id", what, s)
	}
	return id, nil
}

func (c *adminCmd) artifactShow(s string) error {
	id, err := parseID(s, "artifact")
	if err != nil {
		return err
	}
	cl, err := c.client()
	if err != nil {
		return err
	}
	ctx, cancel := c.context()
	defer cancel()
	a, err := cl.Artifact(ctx, id)
	if err != nil {
		return err
	}
	if c.flags.json {
		return c.printJSON(a)
	}
	now := time.Now()
	return fields(c.stdout, "Artifact", a.ID.String(), "Name", a.Name, "Version", a.Version, "Platform", a.Platform,
		"Apps", strings.Join(a.Apps, ", "), "Size", fmt.Sprint(a.Size), "SHA-256", a.SHA256, "Minimum prior version", a.MinVersion,
		"Signed by", strings.Join(a.KeyIDs, ", "), "Created", when(a.Created, now), "Uploaded", when(a.UploadedAt, now),
		"Uploaded by", a.UploadedBy, "Notes", a.Notes)
}

func (c *adminCmd) artifactDelete(s string) error {
	id, err := parseID(s, "artifact")
	if err != nil {
		return err
	}
	cl, err := c.client()
	if err != nil {
		return err
	}
	ctx, cancel := c.context()
	defer cancel()
	if err := cl.DeleteArtifact(ctx, id); err != nil {
		return err
	}
	_, err = fmt.Fprintf(c.stdout, "Deleted artifact %s.\n", id)
	return err
}

// newFlagSet returns a flag set for a command that does not talk to the
// server.
func newFlagSet(name string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	return fs
}
