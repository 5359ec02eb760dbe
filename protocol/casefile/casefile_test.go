package casefile_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/kogge-fleet/kogge/protocol"
	"github.com/kogge-fleet/kogge/protocol/casefile"
	"github.com/kogge-fleet/kogge/protocol/casefile/casefiletest"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// TestGolden pins the byte form of every kind: a change of a field's key or
// type shows up as a diff of testdata/<kind>.cbor.
func TestGolden(t *testing.T) {
	for _, kind := range casefile.Kinds() {
		t.Run(kind, func(t *testing.T) {
			doc := casefiletest.Sample(kind)
			b, err := casefile.Encode(doc)
			if err != nil {
				t.Fatal(err)
			}
			file := filepath.Join("testdata", kind+".cbor")
			if *update {
				if err := os.WriteFile(file, b, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(file)
			if err != nil {
				t.Fatalf("%v (run go test -update once to create it)", err)
			}
			if !bytes.Equal(b, want) {
				t.Fatalf("encoding of %s changed:\n got %x\nwant %x", kind, b, want)
			}
			got, err := casefile.Decode(kind, want)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, doc) {
				t.Fatalf("golden file decodes to\n%+v\nwant\n%+v", got, doc)
			}
		})
	}
}

func TestBlobs(t *testing.T) {
	id := casefiletest.ID
	tests := []struct {
		doc  casefile.Document
		want []uuid.UUID
	}{
		{casefiletest.Application(), []uuid.UUID{id(0x21), id(0x22), id(0x31), id(0x32), id(0x33), id(0x41)}},
		{casefiletest.Notice(), []uuid.UUID{id(0x51), id(0x52)}},
		{casefiletest.Report(), []uuid.UUID{id(0x61), id(0x62)}},
	}
	for _, tt := range tests {
		if got := tt.doc.Blobs(); !reflect.DeepEqual(got, tt.want) {
			t.Errorf("%s: Blobs() = %v, want %v", tt.doc.Kind(), got, tt.want)
		}
	}
}

// TestUnknownFieldsSkipped: a newer device's document with a field this
// build does not know still decodes.
func TestUnknownFieldsSkipped(t *testing.T) {
	b, err := casefile.Encode(casefiletest.Report())
	if err != nil {
		t.Fatal(err)
	}
	// The report is a map of fewer than 23 entries (head 0xa0+n); add key
	// 99 with the text "x".
	if b[0] < 0xa1 || b[0] > 0xb6 {
		t.Fatalf("unexpected head %x", b[0])
	}
	newer := append([]byte{b[0] + 1}, b[1:]...)
	newer = append(newer, 0x18, 99, 0x61, 'x')
	got, err := casefile.DecodeReport(newer)
	if err != nil {
		t.Fatalf("newer document: %v", err)
	}
	if !reflect.DeepEqual(got, casefiletest.Report()) {
		t.Fatalf("newer document decodes to %+v", got)
	}
}

func TestInvalid(t *testing.T) {
	tests := []struct {
		name     string
		doc      func() casefile.Document
		field    string
		sentinel error
	}{
		{"no version", func() casefile.Document { d := casefiletest.Report(); d.V = 0; return d }, "roadwork.report.v", protocol.ErrVersion},
		{"unknown service", func() casefile.Document { d := casefiletest.Application(); d.Service = "visa"; return d }, "kiosk.application.service", protocol.ErrInvalid},
		{"attempts out of order", func() casefile.Document { d := casefiletest.Application(); d.Face[1].N = 5; return d }, "kiosk.application.face[1].n", protocol.ErrInvalid},
		{"two faces selected", func() casefile.Document { d := casefiletest.Application(); d.Face[0].Selected = true; return d }, "kiosk.application.face", protocol.ErrInvalid},
		{"selected face without image", func() casefile.Document {
			d := casefiletest.Application()
			d.Face[1].Image = uuid.Nil
			return d
		}, "kiosk.application.face[1].image", protocol.ErrInvalid},
		{"NFIQ out of range", func() casefile.Document { d := casefiletest.Application(); d.Finger[0].Score = 101; return d }, "kiosk.application.finger[0].score", protocol.ErrInvalid},
		{"PAD score out of range", func() casefile.Document { d := casefiletest.Application(); d.Face[0].PAD.Score = 1.5; return d }, "kiosk.application.face[0].pad.score", protocol.ErrInvalid},
		{"NaN quality value", func() casefile.Document {
			d := casefiletest.Application()
			d.Face[0].Checks[0].Value = math.NaN()
			return d
		}, "kiosk.application.face[0].checks[0].value", protocol.ErrInvalid},
		{"blob named twice", func() casefile.Document {
			d := casefiletest.Application()
			d.Signature.Image = d.Face[0].Image
			return d
		}, "kiosk.application.signature.image", protocol.ErrInvalid},
		{"bad currency", func() casefile.Document { d := casefiletest.Application(); d.Fee.Currency = "euro"; return d }, "kiosk.application.fee.currency", protocol.ErrInvalid},
		{"TBNR not six digits", func() casefile.Document { d := casefiletest.Notice(); d.Offences = []string{"11240"}; return d }, "enforcement.notice.offences[0]", protocol.ErrInvalid},
		{"no offence", func() casefile.Document { d := casefiletest.Notice(); d.Offences = nil; return d }, "enforcement.notice.offences", protocol.ErrInvalid},
		{"valve hour 13", func() casefile.Document { d := casefiletest.Notice(); d.Valves[0].Hour = 13; return d }, "enforcement.notice.valves[0].hour", protocol.ErrInvalid},
		{"void reason missing", func() casefile.Document { d := casefiletest.Notice(); d.Voided = true; return d }, "enforcement.notice.void_reason", protocol.ErrInvalid},
		{"observation ends first", func() casefile.Document { d := casefiletest.Notice(); d.ObservedTo = d.ObservedFrom - 1; return d }, "enforcement.notice.observed_to", protocol.ErrInvalid},
		{"latitude 91", func() casefile.Document { d := casefiletest.Report(); d.Location.Position.Lat = 91; return d }, "roadwork.report.location.position.lat", protocol.ErrInvalid},
		{"nowhere", func() casefile.Document {
			d := casefiletest.Report()
			d.Location = casefile.Place{City: "Bremen"}
			return d
		}, "roadwork.report.location", protocol.ErrInvalid},
		{"note too long", func() casefile.Document { d := casefiletest.Report(); d.Note = strings.Repeat("x", 4001); return d }, "roadwork.report.note", protocol.ErrTooLarge},
		{"control character", func() casefile.Document { d := casefiletest.Report(); d.Note = "a\x00b"; return d }, "roadwork.report.note", protocol.ErrInvalid},
		{"unknown reporter", func() casefile.Document { d := casefiletest.Report(); d.Reporter = "robot"; return d }, "roadwork.report.reporter", protocol.ErrInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := casefile.Encode(tt.doc())
			var pe *protocol.Error
			if !errors.As(err, &pe) {
				t.Fatalf("Encode = %v, want a *protocol.Error", err)
			}
			if pe.Field != tt.field || !errors.Is(err, tt.sentinel) {
				t.Fatalf("error %q: field %q, want %q wrapping %v", err, pe.Field, tt.field, tt.sentinel)
			}
		})
	}
}

// TestErrorsNameNoValues: a reason may reach an administrator's dead-letter
// list, so the personal values of a document never appear in it.
func TestErrorsNameNoValues(t *testing.T) {
	d := casefiletest.Notice()
	d.Offences = []string{"HBAB1234E"} // a plate where a TBNR belongs
	d.Plate.Text = "HBAB1234E"
	_, err := casefile.Encode(d)
	if err == nil {
		t.Fatal("no error")
	}
	if strings.Contains(err.Error(), "HBAB") {
		t.Fatalf("error repeats a personal value: %v", err)
	}
}

func TestDecodeErrors(t *testing.T) {
	good, err := casefile.Encode(casefiletest.Notice())
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		kind     string
		b        []byte
		sentinel error
	}{
		{"empty", casefile.KindNotice, nil, protocol.ErrTruncated},
		{"truncated", casefile.KindNotice, good[:len(good)/2], protocol.ErrTruncated},
		{"not a map", casefile.KindNotice, []byte{0x01}, protocol.ErrMalformed},
		{"trailing bytes", casefile.KindNotice, append(append([]byte{}, good...), 0x00), protocol.ErrMalformed},
		{"other kind's document", casefile.KindReport, good, protocol.ErrMalformed},
		{"unknown kind", "kiosk.visa", good, protocol.ErrInvalid},
		{"too large", casefile.KindNotice, make([]byte, casefile.MaxSize+1), protocol.ErrTooLarge},
		{"indefinite length", casefile.KindNotice, []byte{0xbf, 0xff}, protocol.ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := casefile.Decode(tt.kind, tt.b)
			if !errors.Is(err, tt.sentinel) {
				t.Fatalf("Decode = %v, want %v", err, tt.sentinel)
			}
		})
	}
}

func TestEncodeNil(t *testing.T) {
	var a *casefile.Application
	if _, err := casefile.Encode(a); !errors.Is(err, protocol.ErrInvalid) {
		t.Fatalf("Encode(nil) = %v", err)
	}
}

func TestValveString(t *testing.T) {
	for v, want := range map[casefile.Valve]string{{Wheel: "VL", Hour: 5}: "VL05", {Wheel: "HR", Hour: 12}: "HR12"} {
		if got := v.String(); got != want {
			t.Errorf("%+v = %q, want %q", v, got, want)
		}
	}
}

// TestJSONRoundTrip: the JSON form (the webhook and idpass JSON carry it)
// reads back to the same document.
func TestJSONRoundTrip(t *testing.T) {
	for _, kind := range casefile.Kinds() {
		doc := casefiletest.Sample(kind)
		b, err := json.Marshal(doc)
		if err != nil {
			t.Fatal(err)
		}
		got, _ := casefile.New(kind)
		if err := json.Unmarshal(b, got); err != nil {
			t.Fatalf("%s: %v\n%s", kind, err, b)
		}
		if !reflect.DeepEqual(got, doc) {
			t.Fatalf("%s: JSON round trip gives\n%+v\nwant\n%+v", kind, got, doc)
		}
	}
}

func TestTimeJSON(t *testing.T) {
	ts := casefiletest.T0 + 7
	b, err := json.Marshal(ts)
	if err != nil || string(b) != `"2026-11-29T08:00:00.007Z"` {
		t.Fatalf("Marshal = %s, %v", b, err)
	}
	var zero casefile.Time
	if b, _ := json.Marshal(zero); string(b) != "null" {
		t.Fatalf("zero time = %s", b)
	}
	for _, bad := range []string{`12`, `"yesterday"`, `{}`} {
		if err := json.Unmarshal([]byte(bad), &zero); err == nil {
			t.Errorf("%s parsed as a time", bad)
		}
	}
}

func TestNewBlobIDs(t *testing.T) {
	for _, kind := range casefile.Kinds() {
		before := casefiletest.Sample(kind).Blobs()
		d := casefiletest.NewBlobIDs(casefiletest.Sample(kind))
		after := d.Blobs()
		if len(after) != len(before) || len(after) == 0 {
			t.Fatalf("%s: %d blobs before, %d after", kind, len(before), len(after))
		}
		for i := range after {
			if after[i] == before[i] || after[i].Version() != 7 {
				t.Errorf("%s: blob %d is %v, want a fresh UUIDv7 instead of %v", kind, i, after[i], before[i])
			}
		}
		if err := d.Validate(); err != nil {
			t.Errorf("%s: %v", kind, err)
		}
	}
}

func TestNoticePlateDisplayAndTexts(t *testing.T) {
	for _, tc := range []struct {
		name   string
		change func(n *casefile.Notice)
		field  string
	}{
		{"display of another plate", func(n *casefile.Notice) { n.Plate.Display = "HB-AB 1235 E" }, "plate.display"},
		{"display with other letters", func(n *casefile.Notice) { n.Plate.Display = "HB/AB 1234 E" }, "plate.display"},
		{"texts for fewer offences", func(n *casefile.Notice) { n.Offences = append(n.Offences, "141312") }, "offence_texts"},
	} {
		n := casefiletest.Notice()
		tc.change(n)
		err := n.Validate()
		if err == nil || !strings.Contains(err.Error(), tc.field) {
			t.Errorf("%s: %v, want an error naming %s", tc.name, err, tc.field)
		}
	}
	n := casefiletest.Notice()
	n.Plate.Display, n.OffenceTexts = "", nil
	if err := n.Validate(); err != nil {
		t.Errorf("without display and texts: %v", err)
	}
}
