package main

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
)

func TestDecodeGolden(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("..", "..", "protocol", "testdata", "*.cbor"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no golden files: %v", err)
	}
	for _, file := range files {
		t.Run(filepath.Base(file), func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			if code := run([]string{"decode", file}, nil, &stdout, &stderr); code != 0 {
				t.Fatalf("exit %d: %s", code, stderr.String())
			}
			var doc struct {
				Version int             `json:"version"`
				Type    string          `json:"type"`
				Device  string          `json:"device"`
				Body    json.RawMessage `json:"body"`
			}
			if err := json.Unmarshal(stdout.Bytes(), &doc); err != nil {
				t.Fatalf("output is not JSON: %v\n%s", err, stdout.String())
			}
			want := strings.TrimSuffix(filepath.Base(file), ".cbor")
			if doc.Type != want || doc.Version != 1 || doc.Device == "" || len(doc.Body) < 3 {
				t.Errorf("decoded %+v, want type %q with a body", doc, want)
			}
		})
	}
}

func TestDecodeRejectsGarbage(t *testing.T) {
	garbage := make([]byte, 100)
	if _, err := rand.Read(garbage); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	code := run([]string{"decode", "-"}, bytes.NewReader(garbage), &stdout, &stderr)
	if code == 0 {
		t.Fatalf("exit 0 for random bytes; printed %s", stdout.String())
	}
	if stdout.Len() != 0 {
		t.Errorf("printed to stdout for an invalid payload: %s", stdout.String())
	}
	if msg := stderr.String(); !strings.Contains(msg, "not a valid Kogge payload") || !strings.Contains(msg, "envelope") {
		t.Errorf("message does not say what is wrong: %q", msg)
	}
}

func TestDecodeTopicMismatch(t *testing.T) {
	file := filepath.Join("..", "..", "protocol", "testdata", "record.cbor")
	var stdout, stderr bytes.Buffer
	code := run([]string{"decode", "--topic", "kogge/v1/d/other-device/up/record", file}, nil, &stdout, &stderr)
	if code == 0 || !strings.Contains(stderr.String(), "other-device") {
		t.Fatalf("exit %d, stderr %q: want a refusal naming the topic's device", code, stderr.String())
	}
	stderr.Reset()
	code = run([]string{"decode", "--topic", "kogge/v1/d/kiosk-mitte-01/up/record", file}, nil, &stdout, &stderr)
	if code != 0 {
		t.Fatalf("right topic refused: %s", stderr.String())
	}
}

func TestUsage(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := run(nil, nil, &stdout, &stderr); code != 2 {
		t.Errorf("no command: exit %d, want 2", code)
	}
	if code := run([]string{"frobnicate"}, nil, &stdout, &stderr); code != 2 || !strings.Contains(stderr.String(), "frobnicate") {
		t.Errorf("unknown command: exit %d, %q", code, stderr.String())
	}
}
