package main

import (
	"bytes"
	"encoding/json"
	"testing"
)

// FuzzReadConfigFile: a configuration file never panics koggectl; what it
// accepts is a JSON object that survives a round trip.
func FuzzReadConfigFile(f *testing.F) {
	for _, s := range []string{`{}`, `{"config": {"a": 1}}`, `{"config": 1}`, `[1]`, `null`, `{} {}`, `{"a": 1e400}`, ``} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		cfg, err := readConfigFile("-", bytes.NewReader(b))
		if err != nil {
			return
		}
		if cfg == nil {
			t.Fatal("accepted a nil configuration")
		}
		if _, err := json.Marshal(cfg); err != nil {
			t.Fatalf("accepted %q, which does not encode again: %v", b, err)
		}
	})
}
