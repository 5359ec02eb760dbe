package enforcement

import (
	"errors"
	"strings"
	"testing"
)

func TestGermanPlates(t *testing.T) {
	valid := []struct {
		input   string
		text    string // normalised
		display string
	}{
		{"HB-AB 123", "HBAB123", "HB-AB 123"},
		{"hb ab123e", "HBAB123E", "HB-AB 123 E"},
		{"HB AB 1234", "HBAB1234", "HB-AB 1234"},
		{"  hb-ab-1234  ", "HBAB1234", "HB-AB 1234"},
		{"B-A 1", "BA1", "B-A 1"},
		{"BA1", "BA1", "B-A 1"},               // two letters: only B-A fits
		{"HBAB1234", "HBAB1234", "HBAB 1234"}, // HB-AB or HBA-B: not known
		{"HBABC1", "HBABC1", "HBA-BC 1"},      // five letters: only HBA-BC
		{"M-ÜN 5", "", ""},                    // umlaut in the letters: invalid, below
		{"MÜ-AB 12", "MÜAB12", "MÜ-AB 12"},
		{"mü ab 12 h", "MÜAB12H", "MÜ-AB 12 H"},
		{"BÜS-A 1", "BÜSA1", "BÜS-A 1"},
		{"LÖB Z 99", "LÖBZ99", "LÖB-Z 99"},
		{"K-X 9999", "KX9999", "K-X 9999"},
		{"HH-AB 123H", "HHAB123H", "HH-AB 123 H"},
		{"HH AB 123 E", "HHAB123E", "HH-AB 123 E"},
		{"ABC-DE 123", "ABCDE123", "ABC-DE 123"}, // 8 characters
		{"ABC-DE 123 E", "ABCDE123E", "ABC-DE 123 E"},
		{"B-W 123", "BW123", "B-W 123"}, // Berlin, not the federal code BW
		{"Y-123 456", "Y123456", "Y-123456"},
		{"THW 12345", "THW12345", "THW-12345"},
		{"BW 123456", "BW123456", "BW-123456"}, // six digits: only federal
		{"HB–AB 123", "HBAB123", "HB-AB 123"},  // en dash
		{"HBÄB 1", "HBÄB1", "HBÄ-B 1"},         // Ä only fits the district code
	}
	for _, tt := range valid {
		if tt.text == "" {
			continue
		}
		t.Run(tt.input, func(t *testing.T) {
			p, err := ParsePlate("D", tt.input)
			if err != nil {
				t.Fatal(err)
			}
			if p.Text != tt.text || p.Nationality != "D" || p.String() != tt.display {
				t.Fatalf("got %q (%s) shown %q; want %q shown %q", p.Text, p.Nationality, p.String(), tt.text, tt.display)
			}
			// The normalised text is a valid plate too.
			again, err := ParseGermanPlate(p.Text)
			if err != nil || again.Text != p.Text {
				t.Fatalf("normalised %q does not parse back: %v", p.Text, err)
			}
			if cf := p.Casefile(); cf.Text != tt.text || cf.Nationality != "D" {
				t.Fatalf("casefile plate %+v", cf)
			}
		})
	}
	invalid := []struct {
		input string
		why   string
	}{
		{"", "empty"},
		{"   ", "empty"},
		{"HB", "no number"},
		{"123", "no district code"},
		{"B 123", "district code and letters are both needed"},
		{"HB-AB", "no number"},
		{"HB-AB 12345", "5 digits, at most 4"},
		{"HB-AB 0123", "starts with 0"},
		{"HB-AB 0", "starts with 0"},
		{"HBCD-A 1", "district code \"HBCD\" has 4 letters"},
		{"HB-ABC 1", "3 letters \"ABC\" after the district code"},
		{"M-ÜN 5", "only A–Z after the district code"},
		{"HBABCD1", "is not a district code"},
		{"ABC-DE 1234", "9 characters, at most 8"},
		{"HB-AB 123 X", "\"X\" after the number"},
		{"HB-AB 123 EH", "\"EH\" after the number"},
		{"HB-AB 123 E 1", "after the number"},
		{"HB-AB 12 34", "the number is split"},
		{"HB-A-B 1", "too many groups of letters"},
		{"HB_AB 123", "the character '_' is not allowed"},
		{"HB/AB 123", "not allowed"},
		{"HB-AB 123ß", "not allowed"},
		{"HBAÄ 1", "not a district code"}, // Ä only in the district code
		{"Y-1234567", "at most 4"},        // neither ordinary nor federal
		{"Y 12 E", "district code and letters are both needed"},
		{"0-12-345", "no district code"}, // diplomatic plates are not taken
		{strings.Repeat("A", 70), "at most 64"},
		{"HB\xffAB 1", "not valid text"},
	}
	for _, tt := range invalid {
		t.Run("invalid "+tt.input, func(t *testing.T) {
			p, err := ParsePlate("", tt.input)
			if err == nil {
				t.Fatalf("accepted as %q", p.Text)
			}
			if !errors.Is(err, ErrPlate) || !strings.Contains(err.Error(), tt.why) {
				t.Fatalf("error %q; want ErrPlate saying %q", err, tt.why)
			}
		})
	}
}

func TestForeignPlates(t *testing.T) {
	valid := []struct{ nat, input, text string }{
		{"NL", "12-ABC-3", "12ABC3"},
		{"nl", "xx-99-xx", "XX99XX"},
		{"PL", "WE 12345", "WE12345"},
		{"F", "AB-123-CD", "AB123CD"},
		{"A", "W 12345 X", "W12345X"},
		{"CH", "ZH 123456", "ZH123456"},
		{"GB", "AB12 CDE", "AB12CDE"},
		{"DK", "AB 12 345", "AB12345"},
		{"UA", "AA 1234 BB", "AA1234BB"},
		{"I", "AB·123·CD", "AB123CD"},
		{"USA", "ABC 1234", "ABC1234"}, // not in the list: 1–12 characters
		{" pl ", "po1a", "PO1A"},
	}
	for _, tt := range valid {
		t.Run(tt.nat+" "+tt.input, func(t *testing.T) {
			p, err := ParsePlate(tt.nat, tt.input)
			if err != nil {
				t.Fatal(err)
			}
			if p.Text != tt.text || p.Nationality != strings.ToUpper(strings.TrimSpace(tt.nat)) || p.String() != tt.text {
				t.Fatalf("got %+v", p)
			}
		})
	}
	invalid := []struct{ nat, input, why string }{
		{"NL", "A", "1 characters; plates of NL have 2 to 8"},
		{"NL", "123456789", "9 characters"},
		{"PL", "WE 12345 ÄÖ", "not allowed"}, // no umlauts on foreign plates here
		{"F", "AB_123", "not allowed"},
		{"XYZW", "AB 12", "not a registration code"},
		{"N1", "AB 12", "not a registration code"},
		{"USA", "ABCDEFGHIJKLM", "1 to 12"},
		{"CH", "", "empty"},
	}
	for _, tt := range invalid {
		t.Run("invalid "+tt.nat+" "+tt.input, func(t *testing.T) {
			p, err := ParsePlate(tt.nat, tt.input)
			if err == nil {
				t.Fatalf("accepted as %+v", p)
			}
			if !errors.Is(err, ErrPlate) || !strings.Contains(err.Error(), tt.why) {
				t.Fatalf("error %q; want ErrPlate saying %q", err, tt.why)
			}
		})
	}
	if _, err := ParseForeignPlate("D", "HB AB 1"); !errors.Is(err, ErrPlate) {
		t.Fatalf("German plate as foreign: %v", err)
	}
}

func TestPickLists(t *testing.T) {
	nats := Nationalities()
	if nats[0].Code != Germany {
		t.Fatalf("first nationality %s, want D", nats[0].Code)
	}
	seen := map[string]bool{}
	for i, n := range nats {
		if seen[n.Code] || !isUpperAZ(n.Code) || n.German == "" || n.English == "" || n.MinLen < 1 || n.MaxLen < n.MinLen || n.MaxLen > 12 {
			t.Errorf("nationality %+v", n)
		}
		seen[n.Code] = true
		if i > 1 && fold(nats[i-1].German) > fold(n.German) {
			t.Errorf("%s before %s: not sorted by German name", nats[i-1].German, n.German)
		}
	}
	for _, code := range []string{"NL", "PL", "F", "A", "CH", "DK", "CZ", "B", "L"} {
		if !seen[code] {
			t.Errorf("neighbour %s missing", code)
		}
	}
	makes := Makes()
	for i := 1; i < len(makes); i++ {
		if strings.ToLower(makes[i-1]) >= strings.ToLower(makes[i]) {
			t.Errorf("makes not sorted at %s, %s", makes[i-1], makes[i])
		}
	}
	for _, m := range []string{"VW", "Mercedes-Benz", "BMW", "Opel", "Skoda"} {
		if !strings.Contains(strings.Join(makes, "|"), m) {
			t.Errorf("make %s missing", m)
		}
	}
	if c, ok := ColourByName("GREY"); !ok || c.German != "grau" {
		t.Fatalf("colour grey: %+v %v", c, ok)
	}
	if c, ok := ColourByName("weiß"); !ok || c.English != "white" {
		t.Fatalf("colour weiß: %+v %v", c, ok)
	}
	if _, ok := ColourByName("kariert"); ok {
		t.Fatal("unknown colour found")
	}
	// The lists are copies.
	Makes()[0] = "changed"
	if Makes()[0] == "changed" {
		t.Fatal("Makes returns the package's slice")
	}
}
