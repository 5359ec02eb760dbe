package open311

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"

	"github.com/google/uuid"
)

// FuzzParseJournal feeds arbitrary journals to the replay: no panics, and
// every entry it keeps has an id and a known state.
func FuzzParseJournal(f *testing.F) {
	id := uuid.MustParse("019acd6e-6400-7000-8000-000000000001")
	var buf bytes.Buffer
	for _, e := range []entry{
		{ID: id, State: statePosting, At: time.Unix(1, 0)},
		{ID: id, State: stateDone, Request: "100001", Status: "open", At: time.Unix(2, 0)},
	} {
		b, _ := json.Marshal(e)
		buf.Write(append(b, '\n'))
	}
	f.Add(buf.Bytes())
	f.Add([]byte(`{"id":"019acd6e-6400-7000-8000-000000000001","state":"posting"}` + "\n" + `{"id":"01`))
	f.Add([]byte("garbage\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := parseJournal(b)
		if err != nil {
			return
		}
		for k, e := range m {
			if k != e.ID || e.ID == uuid.Nil || !knownState(e.State) {
				t.Fatalf("kept entry %+v under %v", e, k)
			}
		}
	})
}

func TestParseJournal(t *testing.T) {
	id := uuid.MustParse("019acd6e-6400-7000-8000-000000000001")
	lines := func(es ...entry) []byte {
		var buf bytes.Buffer
		for _, e := range es {
			b, _ := json.Marshal(e)
			buf.Write(append(b, '\n'))
		}
		return buf.Bytes()
	}
	tests := []struct {
		name    string
		b       []byte
		want    string // state of id, "" for none
		wantErr bool
	}{
		{"empty", nil, "", false},
		{"last wins", lines(entry{ID: id, State: statePosting}, entry{ID: id, State: stateDone, Request: "7"}), stateDone, false},
		{"deleted", lines(entry{ID: id, State: statePosting}, entry{ID: id, State: statePosting, Deleted: true}), "", false},
		{"cut last line", append(lines(entry{ID: id, State: stateToken, Token: "t"}), `{"id":`...), stateToken, false},
		{"unknown state", lines(entry{ID: id, State: "lost"}, entry{ID: id, State: stateDone}), "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := parseJournal(tt.b)
			if (err != nil) != tt.wantErr {
				t.Fatalf("parseJournal: %v", err)
			}
			if err == nil && m[id].State != tt.want {
				t.Fatalf("state %q, want %q", m[id].State, tt.want)
			}
		})
	}
}
