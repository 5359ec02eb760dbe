package enforcement

import (
	"slices"
	"strings"
	"testing"
	"time"
)

func tbnrs(es []Entry) []string {
	var out []string
	for _, e := range es {
		out = append(out, e.TBNR)
	}
	return out
}

func TestSearch(t *testing.T) {
	c := embedded(t)
	at := time.Date(2025, 1, 6, 8, 15, 0, 0, berlin(t))
	tests := []struct {
		query string
		limit int
		want  []string // the result starts with these, in this order
		all   []string // and holds exactly these (if set)
	}{
		// Number prefixes, in TBNR order.
		{query: "14131", all: []string{"141310", "141311", "141312", "141313", "141314", "141315"}},
		{query: "141312", all: []string{"141312"}},
		{query: "1413", limit: 3, all: []string{"141302", "141310", "141311"}},
		// Words, regardless of case and umlaut spelling; the base offence
		// before its variants.
		{query: "Fußgängerüberweg", all: []string{"141290", "141292", "141302"}},
		{query: "fussgaengerueberweg", all: []string{"141290", "141292", "141302"}},
		{query: "FUSSGANGER", all: []string{"141290", "141292", "141302"}},
		{query: "gehweg", want: []string{"112454", "112655", "112656"}},
		{query: "gehweg behindert", all: []string{"112655", "112657"}},
		{query: "haltverbot 283 stunde", all: []string{"141314", "141315"}},
		{query: "parkuhr", want: []string{"113100", "113101"}},
		{query: "radweg", want: []string{"112474", "141174"}},
		// A whole word ranks above a word it starts: "Geh- und Radweg"
		// before "Gehweg".
		{query: "geh", want: []string{"141194", "141795", "112454"}},
		{query: "  Zweiten   Reihe ", want: []string{"112460", "112464"}},
		{query: "bussonderfahrstreifen parkten", all: []string{"141125", "141828"}},
		// Inside a word from three letters.
		{query: "sonderfahr", all: []string{"141120", "141125", "141828"}},
		{query: "xyzzy"},
		{query: ""},
		{query: "  -- "},
	}
	for _, tt := range tests {
		t.Run(tt.query, func(t *testing.T) {
			got := tbnrs(c.Search(tt.query, at, tt.limit))
			if tt.all != nil && !slices.Equal(got, tt.all) {
				t.Fatalf("got %v, want %v", got, tt.all)
			}
			if len(got) < len(tt.want) || !slices.Equal(got[:len(tt.want)], tt.want) {
				t.Fatalf("got %v, want it to start with %v", got, tt.want)
			}
			if tt.all == nil && tt.want == nil && len(got) != 0 {
				t.Fatalf("got %v, want nothing", got)
			}
		})
	}
}

func TestSearchEveryWordMustMatch(t *testing.T) {
	c := embedded(t)
	at := time.Date(2025, 1, 6, 8, 15, 0, 0, berlin(t))
	for _, e := range c.Search("parkten behinderten", at, 0) {
		d := e.Display()
		if !strings.Contains(d, "parkten") || !strings.Contains(d, "behinderten") {
			t.Fatalf("%s does not hold both words: %s", e.TBNR, d)
		}
	}
	if n := len(c.Search("parkten", at, 0)); n < 50 {
		t.Fatalf("only %d entries for 'parkten'", n)
	}
	if n := len(c.Search("parkten", at, 4)); n != 4 {
		t.Fatalf("limit 4 gave %d", n)
	}
}

func TestFold(t *testing.T) {
	for _, pair := range [][2]string{
		{"Fußgängerüberweg", "fussgangeruberweg"},
		{"FUSSGAENGERUEBERWEG", "fussgangeruberweg"},
		{"Straße", "strasse"},
		{"Öffentlich", "offentlich"},
		{"Citroën", "citron"},
	} {
		if got := fold(pair[0]); got != pair[1] {
			t.Errorf("fold(%q) = %q, want %q", pair[0], got, pair[1])
		}
	}
}

func BenchmarkSearch(b *testing.B) {
	c := embedded(b)
	at := time.Date(2025, 1, 6, 8, 15, 0, 0, berlin(b))
	for b.Loop() {
		c.Search("gehweg behindert", at, 10)
	}
}
