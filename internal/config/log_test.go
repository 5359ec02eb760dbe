package config

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
)

func TestLog(t *testing.T) {
	for _, tc := range []struct {
		log  Log
		want string // in the output; "" means the settings are refused
	}{
		{Log{Level: "info", Format: "text"}, "level=INFO msg=hello"},
		{Log{Level: "debug", Format: "json"}, `"msg":"hello"`},
		{Log{Level: "loud", Format: "text"}, ""},
		{Log{Level: "info", Format: "xml"}, ""},
	} {
		var b bytes.Buffer
		l, err := tc.log.Logger(&b)
		if tc.want == "" {
			if err == nil || tc.log.Validate() == nil {
				t.Errorf("%+v: accepted", tc.log)
			}
			continue
		}
		if err != nil {
			t.Fatalf("%+v: %v", tc.log, err)
		}
		l.Info("hello")
		l.Debug("quiet")
		if !strings.Contains(b.String(), tc.want) || (tc.log.Level == "info" && strings.Contains(b.String(), "quiet")) {
			t.Errorf("%+v: wrote %q, want %q", tc.log, b.String(), tc.want)
		}
	}
}

func TestCommand(t *testing.T) {
	valid := func(c *testConfig) func() error {
		return func() error {
			if c.Workers < 1 {
				return fmt.Errorf("workers %d: at least 1\nand more", c.Workers)
			}
			return nil
		}
	}
	for _, tc := range []struct {
		args           []string
		code           int
		exit           bool
		stdout, stderr string
	}{
		{[]string{"--workers=2"}, 0, false, "", ""},
		{[]string{"--help"}, 0, true, "--workers", ""},
		{[]string{"--print-config"}, 0, true, `"workers": 4`, ""},
		{[]string{"extra"}, 2, true, "", `unexpected arguments ["extra"]`},
		{[]string{"--nope=1"}, 2, true, "", "kogge-test: "},
		{[]string{"--workers=0"}, 2, true, "", "configuration:\n  workers 0: at least 1\n  and more"},
	} {
		c := defaults()
		var out, errb bytes.Buffer
		_, code, exit := Command(c, "kogge-test", Source{Args: tc.args}, &out, &errb, valid(c))
		if code != tc.code || exit != tc.exit || !strings.Contains(out.String(), tc.stdout) || !strings.Contains(errb.String(), tc.stderr) {
			t.Errorf("%v: code %d exit %v, stdout %q, stderr %q", tc.args, code, exit, out.String(), errb.String())
		}
		if !tc.exit && c.Workers != 2 {
			t.Errorf("%v: workers %d after the load", tc.args, c.Workers)
		}
	}
}
