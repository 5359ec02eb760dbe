package bridgeconfig

import (
	"strings"
	"testing"
)

func TestDecodeList(t *testing.T) {
	list, err := DecodeList([]byte(`[
		{"office": "ordnungsamt", "connector": "webhook", "procedure": {"url": "https://127.0.0.1:9/cases"}},
		{"office": "strassenbau", "connector": "open311", "bridge": {"idle-wait": "50ms"}}
	]`))
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 2 || list[0].Office != "ordnungsamt" || list[1].Office != "strassenbau" {
		t.Fatalf("decoded %+v", list)
	}
	if list[1].Bridge.IdleWait.Milliseconds() != 50 || list[0].Bridge.IdleWait != Default().Bridge.IdleWait {
		t.Errorf("idle waits %v and %v: want 50ms and the default", list[1].Bridge.IdleWait, list[0].Bridge.IdleWait)
	}
	for _, bad := range []string{`{}`, `[{"nope": 1}]`, `[] []`, `[{"bridge": {"idle-wait": "soon"}}]`} {
		if _, err := DecodeList([]byte(bad)); err == nil {
			t.Errorf("DecodeList(%s) accepted", bad)
		}
	}
}

// FuzzDecodeList feeds arbitrary bridge configuration files to DecodeList
// and Validate: an error or a configuration, never a panic.
func FuzzDecodeList(f *testing.F) {
	f.Add([]byte(`[{"office": "o", "connector": "webhook", "procedure": {"url": "https://127.0.0.1:9/x"}}]`))
	f.Add([]byte(`[{"office": "o", "connector": "idpass", "key-secrets": ["k=AGE-SECRET-KEY-1X"]}]`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, b []byte) {
		list, err := DecodeList(b)
		if err != nil {
			if err.Error() == "" || strings.TrimSpace(err.Error()) == "" {
				t.Fatal("an error without a message")
			}
			return
		}
		for i := range list {
			_ = list[i].Validate()
		}
	})
}
