package protocol

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func addGoldenSeeds(f *testing.F) {
	files, err := filepath.Glob(filepath.Join("testdata", "*.cbor"))
	if err != nil || len(files) == 0 {
		f.Fatalf("no golden files: %v", err)
	}
	for _, name := range files {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
}

// FuzzDecode feeds arbitrary payloads to Decode. It must never panic, must
// fail with a *protocol.Error, and whatever it accepts must re-encode to a
// payload that decodes to the same encoding (a fixed point).
func FuzzDecode(f *testing.F) {
	addGoldenSeeds(f)
	f.Add([]byte{})
	f.Add([]byte{0xa0})
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := Decode(b)
		if err != nil {
			var pe *Error
			if !errors.As(err, &pe) {
				t.Fatalf("error %T %v is not a *protocol.Error", err, err)
			}
			return
		}
		once, err := Encode(e)
		if err != nil {
			t.Fatalf("decoded envelope does not re-encode: %v", err)
		}
		e2, err := Decode(once)
		if err != nil {
			t.Fatalf("re-encoded envelope does not decode: %v", err)
		}
		twice, err := Encode(e2)
		if err != nil {
			t.Fatalf("second encode: %v", err)
		}
		if !bytes.Equal(once, twice) {
			t.Fatalf("encoding is not stable:\n%x\n%x", once, twice)
		}
	})
}

// FuzzParseTopic feeds arbitrary topics to ParseTopic: whatever it accepts
// must print back to the same topic, and the ACL must agree with the type.
func FuzzParseTopic(f *testing.F) {
	for _, typ := range Types() {
		topic, _ := TopicFor("kiosk-1", typ)
		f.Add(topic)
	}
	f.Add("kogge/v1/d/+/up/#")
	f.Add("kogge/v1/d/a/b/up/record")
	f.Fuzz(func(t *testing.T, s string) {
		tp, err := ParseTopic(s)
		if err != nil {
			if !errors.Is(err, ErrTopic) {
				t.Fatalf("error %v does not wrap ErrTopic", err)
			}
			return
		}
		if tp.String() != s {
			t.Fatalf("ParseTopic(%q).String() = %q", s, tp.String())
		}
		if DeviceMayPublish(tp.Device, s) != tp.Type.FromDevice() {
			t.Fatalf("ACL and type disagree on %q", s)
		}
	})
}

// FuzzDecodeOn checks topic and payload together, as the server's ingest
// and the device's downlink do.
func FuzzDecodeOn(f *testing.F) {
	addGoldenSeeds(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := Decode(b)
		if err != nil {
			return
		}
		topic, err := e.Topic()
		if err != nil {
			if e.Type().Known() {
				t.Fatalf("known type %v has no topic: %v", e.Type(), err)
			}
			return
		}
		if _, err := DecodeOn(topic, b); err != nil {
			t.Fatalf("DecodeOn(own topic %q): %v", topic, err)
		}
	})
}
