package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/kogge-fleet/kogge/fleet-server/api/client"
)

// bridgeCertCmd runs "koggectl bridge-cert --office O --csr FILE [--out
// FILE]" (issue), "bridge-cert list [--office O]" and "bridge-cert revoke
// SERIAL".
//
// The bridge's operator makes the key and the CSR on the bridge's machine,
// so that the key never leaves it, e.g.
//
//	openssl ecparam -name prime256v1 -genkey -noout -out bridge.key
//	openssl req -new -key bridge.key -subj /CN=bridge -out bridge.csr
//
// The certificate (CN bridge.<office>) goes to --out (or stdout), the fleet
// CA to --out.ca; both go to the bridge.
func bridgeCertCmd(args []string, getenv env, stdin io.Reader, stdout, stderr io.Writer) error {
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		return subcommand("bridge-cert", args, map[string]func([]string) error{
			"issue": func(args []string) error { return bridgeCertIssue(args, getenv, stdin, stdout, stderr) },
			"list": func(args []string) error {
				fs, af := newAdminFlagSet("bridge-cert list", stderr, getenv)
				office := fs.String("office", "", "only certificates of this office's bridge")
				pos, err := parseInterleaved(fs, args)
				if err != nil {
					return err
				}
				if err := wantArgs(pos, 0, "no arguments"); err != nil {
					return err
				}
				c := &adminCmd{flags: af, getenv: getenv, stdin: stdin, stdout: stdout}
				return c.bridgeCertList(*office)
			},
			"revoke": func(args []string) error {
				fs, af := newAdminFlagSet("bridge-cert revoke", stderr, getenv)
				pos, err := parseInterleaved(fs, args)
				if err != nil {
					return err
				}
				if err := wantArgs(pos, 1, "a certificate serial (from bridge-cert list)"); err != nil {
					return err
				}
				c := &adminCmd{flags: af, getenv: getenv, stdin: stdin, stdout: stdout}
				return c.bridgeCertRevoke(pos[0])
			},
		})
	}
	return bridgeCertIssue(args, getenv, stdin, stdout, stderr)
}

func bridgeCertIssue(args []string, getenv env, stdin io.Reader, stdout, stderr io.Writer) error {
	fs, af := newAdminFlagSet("bridge-cert", stderr, getenv)
	office := fs.String("office", "", "the office whose bridge gets the certificate (required)")
	csrFile := fs.String("csr", "", "the bridge's certificate request, PEM (required; - for stdin)")
	out := fs.String("out", "", "write the certificate here and the fleet CA to FILE.ca (default: print both)")
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		return err
	}
	if err := wantArgs(pos, 0, "no arguments"); err != nil {
		return err
	}
	if *office == "" || *csrFile == "" {
		return usageErrorf("--office and --csr are required")
	}
	var csr []byte
	if *csrFile == "-" {
		csr, err = io.ReadAll(io.LimitReader(stdin, 64<<10))
	} else {
		csr, err = os.ReadFile(*csrFile)
	}
	if err != nil {
		return fmt.Errorf("read the CSR: %w", err)
	}
	c := &adminCmd{flags: af, getenv: getenv, stdin: stdin, stdout: stdout}
	cl, err := c.client()
	if err != nil {
		return err
	}
	ctx, cancel := c.context()
	defer cancel()
	bc, err := cl.IssueBridgeCertificate(ctx, *office, csr)
	if err != nil {
		return err
	}
	if *out != "" {
		if err := writeNew(*out, bc.Certificate); err != nil {
			return err
		}
		if err := writeNew(*out+".ca", bc.CA); err != nil {
			return err
		}
	}
	if c.flags.json {
		return c.printJSON(bc)
	}
	if *out == "" {
		_, err := fmt.Fprint(c.stdout, bc.Certificate, bc.CA)
		return err
	}
	return fields(c.stdout,
		"Bridge certificate", *out,
		"Fleet CA", *out+".ca",
		"Common name", bc.CommonName,
		"Serial", bc.Serial,
		"Valid until", when(bc.NotAfter, time.Now()),
	)
}

// writeNew writes a file that must not exist yet.
func writeNew(name, content string) error {
	f, err := os.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if errors.Is(err, os.ErrExist) {
		return fmt.Errorf("%s exists already; remove it or choose another --out", name)
	}
	if err != nil {
		return err
	}
	_, werr := f.WriteString(content)
	return errors.Join(werr, f.Close())
}

func (c *adminCmd) bridgeCertList(office string) error {
	cl, err := c.client()
	if err != nil {
		return err
	}
	ctx, cancel := c.context()
	defer cancel()
	cs, err := cl.BridgeCertificates(ctx, office)
	if err != nil {
		return err
	}
	if c.flags.json {
		if cs == nil {
			cs = []client.BridgeCertificate{}
		}
		return c.printJSON(map[string]any{"certificates": cs})
	}
	now := time.Now()
	t := newTable(c.stdout, "SERIAL", "OFFICE", "ISSUED", "VALID UNTIL", "REVOKED")
	for _, b := range cs {
		t.row(b.Serial, b.Office, when(b.IssuedAt, now), when(b.NotAfter, now), whenPtr(b.RevokedAt, now))
	}
	return t.flush()
}

func (c *adminCmd) bridgeCertRevoke(serial string) error {
	cl, err := c.client()
	if err != nil {
		return err
	}
	ctx, cancel := c.context()
	defer cancel()
	bc, err := cl.RevokeBridgeCertificate(ctx, serial)
	if err != nil {
		return err
	}
	if c.flags.json {
		return c.printJSON(bc)
	}
	_, err = fmt.Fprintf(c.stdout, "Revoked the certificate %s of %s's bridge; its next request is refused.\n", bc.Serial, bc.Office)
	return err
}
