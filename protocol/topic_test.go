package protocol

import (
	"errors"
	"strings"
	"testing"
)

func TestValidateDeviceID(t *testing.T) {
	valid := []string{"k", "kiosk-mitte-01", "HH.Ordnung_7", strings.Repeat("a", MaxDeviceIDLen)}
	invalid := []string{"", "-lead", ".lead", "a/b", "a+b", "a#", "+", "#", "a b", "ä", "a\x00",
		strings.Repeat("a", MaxDeviceIDLen+1), "$SYS"}
	for _, id := range valid {
		if err := ValidateDeviceID(id); err != nil {
			t.Errorf("ValidateDeviceID(%q) = %v", id, err)
		}
	}
	for _, id := range invalid {
		if err := ValidateDeviceID(id); err == nil {
			t.Errorf("ValidateDeviceID(%q) accepted", id)
		}
	}
}

func TestTopicRoundTrip(t *testing.T) {
	for _, typ := range Types() {
		topic, err := TopicFor("kiosk-1", typ)
		if err != nil {
			t.Fatalf("TopicFor(%v): %v", typ, err)
		}
		got, err := ParseTopic(topic)
		if err != nil {
			t.Fatalf("ParseTopic(%q): %v", topic, err)
		}
		if got.Device != "kiosk-1" || got.Type != typ {
			t.Errorf("ParseTopic(%q) = %+v", topic, got)
		}
		// A device publishes exactly the types it sends.
		if DeviceMayPublish("kiosk-1", topic) != typ.FromDevice() {
			t.Errorf("DeviceMayPublish(%q) = %v, FromDevice = %v", topic, !typ.FromDevice(), typ.FromDevice())
		}
		if DeviceMayPublish("kiosk-2", topic) {
			t.Errorf("kiosk-2 may publish to %q", topic)
		}
	}
	if _, err := TopicFor("kiosk-1", Type(999)); !errors.Is(err, ErrTopic) {
		t.Errorf("TopicFor(unknown type) = %v", err)
	}
	if _, err := TopicFor("a/b", TypeRecord); err == nil {
		t.Error("TopicFor accepted a device id with a slash")
	}
}

func TestParseTopicRejects(t *testing.T) {
	for _, topic := range []string{
		"", "kogge/v1/d/", "kogge/v1/d/kiosk-1", "kogge/v1/d/kiosk-1/", "kogge/v2/d/kiosk-1/up/record",
		"kogge/v1/d/kiosk-1/up/unknown", "kogge/v1/d/+/up/record", "kogge/v1/d/#", "kogge/v1/d/kiosk-1/up/record/x",
		"kogge/v1/d//up/record", "/kogge/v1/d/kiosk-1/up/record",
	} {
		if got, err := ParseTopic(topic); !errors.Is(err, ErrTopic) {
			t.Errorf("ParseTopic(%q) = %+v, %v; want ErrTopic", topic, got, err)
		}
	}
}

func TestACL(t *testing.T) {
	const dev = "hh-7"
	tests := []struct {
		topic          string
		publish, subsc bool
	}{
		{"kogge/v1/d/hh-7/up/record", true, false},
		{"kogge/v1/d/hh-7/up/anything-new", true, false},
		{"kogge/v1/d/hh-7/up/", false, false},
		{"kogge/v1/d/hh-7/up/#", false, false},
		{"kogge/v1/d/hh-7/state", true, false},
		{"kogge/v1/d/hh-7/twin", false, true},
		{"kogge/v1/d/hh-7/down/#", false, true},
		{"kogge/v1/d/hh-7/down/ack", false, true},
		{"kogge/v1/d/hh-7/down/+", false, false},
		{"kogge/v1/d/hh-7/#", false, false},
		{"kogge/v1/d/hh-8/up/record", false, false},
		{"kogge/v1/d/hh-8/down/#", false, false},
		{"kogge/v1/d/+/up/record", false, false},
		{"kogge/v1/d/+/down/#", false, false},
		{"#", false, false},
		{"$SYS/#", false, false},
		{"kogge/v1/d/hh-7x/up/record", false, false},
	}
	for _, tt := range tests {
		if got := DeviceMayPublish(dev, tt.topic); got != tt.publish {
			t.Errorf("DeviceMayPublish(%q) = %v, want %v", tt.topic, got, tt.publish)
		}
		if got := DeviceMaySubscribe(dev, tt.topic); got != tt.subsc {
			t.Errorf("DeviceMaySubscribe(%q) = %v, want %v", tt.topic, got, tt.subsc)
		}
	}
	for _, f := range DeviceFilters(dev) {
		if !DeviceMaySubscribe(dev, f) {
			t.Errorf("device may not subscribe to its own filter %q", f)
		}
	}
}
