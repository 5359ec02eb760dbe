package main

import (
	"context"
	"regexp"
	"strings"
	"testing"
)

// TestRolloutDemo runs a small rollout demo: a good version in two waves,
// then a bad one that stops in the first; it prints both wave tables.
func TestRolloutDemo(t *testing.T) {
	var out, errOut syncBuffer
	code := run(context.Background(), []string{"rollout-demo", "--data-dir", t.TempDir(), "--devices", "4", "--waves", "1,100%",
		"--soak", "200ms", "--health-window", "3s", "--size", "8192"}, nil, nil, &out, &errOut)
	if code != 0 {
		t.Fatalf("exit %d\n%s\n%s", code, out.String(), errOut.String())
	}
	s := out.String()
	for _, want := range []string{"4 devices enrolled", "rollout kogge-sim-kiosk 1.1.0: succeeded", "rollout kogge-sim-kiosk 1.2.0: aborted",
		"health check failed", "devices per version now: map[1.1.0:4]"} {
		if !strings.Contains(s, want) {
			t.Errorf("output lacks %q:\n%s", want, s)
		}
	}
	// The good rollout's table: two waves with their timings.
	if !regexp.MustCompile(`(?m)^\s+1\s+1\s+\S+\s+\S+\s+\S+\s+1\s+0\s*$`).MatchString(s) ||
		!regexp.MustCompile(`(?m)^\s+2\s+3\s+\S+\s+\S+\s+\S+\s+3\s+0\s*$`).MatchString(s) {
		t.Errorf("no wave table:\n%s", s)
	}
}

func TestRolloutDemoCommandLine(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"rollout-demo", "--devices", "0"}, "devices 0"},
		{[]string{"rollout-demo", "--size", "10"}, "size"},
		{[]string{"rollout-demo", "extra"}, "unexpected arguments"},
	} {
		var out, errOut syncBuffer
		if code := run(context.Background(), c.args, nil, nil, &out, &errOut); code != 2 || !strings.Contains(errOut.String(), c.want) {
			t.Errorf("%q: exit %d, %q", c.args, code, errOut.String())
		}
	}
}
