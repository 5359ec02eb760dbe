package fleet

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/google/uuid"
)

func TestParseChildSpec(t *testing.T) {
	good := ChildSpec{Device: "kiosk-1", Role: Kiosk, District: "mitte", Dir: "/tmp/x", Broker: "ssl://127.0.0.1:1",
		Workload: DefaultWorkload(Kiosk), LoadScale: 1, BlobScale: 1, Origin: time.Now(), StartOfDay: 8 * time.Hour, Hour: time.Minute}
	b, err := json.Marshal(good)
	if err != nil {
		t.Fatal(err)
	}
	noRole := good
	noRole.Role = "pilot"
	nr, _ := json.Marshal(noRole)
	noClock := good
	noClock.Hour = 0
	nc, _ := json.Marshal(noClock)
	tests := []struct {
		name string
		in   []byte
		ok   bool
	}{
		{"good", b, true},
		{"unknown role", nr, false},
		{"no clock", nc, false},
		{"not JSON", []byte("{"), false},
		{"empty object", []byte("{}"), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			spec, err := ParseChildSpec(tt.in)
			if (err == nil) != tt.ok {
				t.Fatalf("ParseChildSpec: %v", err)
			}
			if tt.ok && (spec.Device != good.Device || spec.Hour != good.Hour || spec.Workload.Curve != good.Workload.Curve) {
				t.Errorf("spec %+v", spec)
			}
		})
	}
}

func TestParseChildLine(t *testing.T) {
	entry, _ := json.Marshal(childMsg{Entry: &Entry{Record: uuid.Must(uuid.NewV7()), Device: "d", Kind: "k", Office: "o"}})
	stats, _ := json.Marshal(childMsg{Stats: &DeviceStats{Online: true, Queue: 3}})
	bad, _ := json.Marshal(childMsg{Entry: &Entry{Device: "d"}})
	tests := []struct {
		name string
		line string
		ok   bool
	}{
		{"entry", string(entry), true},
		{"stats", string(stats), true},
		{"ready", `{"ready":true}`, true},
		{"cut short", string(entry[:len(entry)/2]), false},
		{"entry without a record id", string(bad), false},
		{"nothing in it", `{}`, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, ok := parseChildLine([]byte(tt.line)); ok != tt.ok {
				t.Fatalf("ok = %v", ok)
			}
		})
	}
}

func FuzzParseChildLine(f *testing.F) {
	f.Add([]byte(`{"entry":{"record":"019a0000-0000-7000-8000-000000000001","device":"d","kind":"k","office":"o"}}`))
	f.Add([]byte(`{"stats":{"online":true,"queue":1}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, ok := parseChildLine(b)
		if ok && m.Entry != nil && m.Entry.Validate() != nil {
			t.Fatalf("accepted an invalid entry: %+v", m.Entry)
		}
	})
}

func FuzzParseChildSpec(f *testing.F) {
	f.Add([]byte(`{"device":"d","role":"kiosk","dir":"/x","broker":"ssl://h:1","origin":"2026-01-01T00:00:00Z","hour":60000000000,"blob_scale":1}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		spec, err := ParseChildSpec(b)
		if err == nil && spec.Validate() != nil {
			t.Fatal("accepted an invalid spec")
		}
	})
}
