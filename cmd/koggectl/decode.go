package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/kogge-fleet/kogge/protocol"
)

func decodeCmd(args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("decode", flag.ContinueOnError)
	fs.SetOutput(stderr)
	topic := fs.String("topic", "", "MQTT topic the payload was received on (checked against the payload)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return errors.New("want exactly one FILE, or - for standard input")
	}
	name := fs.Arg(0)
	var in io.Reader = stdin
	if name != "-" {
		f, err := os.Open(name)
		if err != nil {
			return err
		}
		defer f.Close()
		in = f
	}
	// Read one byte past the limit, so that an oversized payload is named
	// as such instead of being cut.
	payload, err := io.ReadAll(io.LimitReader(in, protocol.MaxMessageSize+1))
	if err != nil {
		return fmt.Errorf("read %s: %w", name, err)
	}
	var env *protocol.Envelope
	if *topic != "" {
		env, err = protocol.DecodeOn(*topic, payload)
	} else {
		env, err = protocol.Decode(payload)
	}
	if err != nil {
		return fmt.Errorf("%s is not a valid Kogge payload: %w", name, err)
	}
	out, err := json.MarshalIndent(env, "", "  ")
	if err != nil {
		return fmt.Errorf("render %s as JSON: %w", name, err)
	}
	_, err = fmt.Fprintf(stdout, "%s\n", out)
	return err
}
