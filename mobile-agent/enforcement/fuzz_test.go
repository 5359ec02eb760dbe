package enforcement

import (
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

func FuzzParseCatalogue(f *testing.F) {
	f.Add(embeddedCatalogue)
	f.Add(versions)
	f.Add(catalogueFile("141174,Sie parkten auf einem <Radweg/Radfahrstreifen>.,55,Verwarnung,,2021-11-09,,1h,obstruction"))
	f.Add(catalogueFile("141312,x,57,Verwarnung,,2021-11-09,,,"))
	f.Add([]byte("# format: kogge-catalogue/1\n# version: 2\ntbnr,text\n\"unterminated"))
	f.Add([]byte{})
	at := time.Date(2025, 1, 6, 12, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := ParseCatalogue(b)
		if err != nil {
			if c != nil {
				t.Fatal("catalogue and error")
			}
			return
		}
		if c.Len() < 1 || c.Version() < 1 {
			t.Fatalf("accepted an empty catalogue: %d entries, version %d", c.Len(), c.Version())
		}
		for _, e := range c.All() {
			if !IsTBNR(e.TBNR) || e.Text == "" || checkKind(e) != nil || e.ValidFrom.IsZero() {
				t.Fatalf("accepted a bad entry %+v", e)
			}
			if _, err := parseTemplate(e.Text); err != nil {
				t.Fatalf("accepted a bad text %q", e.Text)
			}
			if _, err := c.Lookup(e.TBNR, e.ValidFrom); err != nil {
				t.Fatalf("entry %s not found on its first day: %v", e.TBNR, err)
			}
		}
		again, err := ParseCatalogue(c.Bytes())
		if err != nil || again.Len() != c.Len() {
			t.Fatalf("stored catalogue does not read back: %v", err)
		}
		c.Search(string(b[:min(len(b), 20)]), at, 5)
	})
}

func FuzzSearch(f *testing.F) {
	c, err := EmbeddedCatalogue()
	if err != nil {
		f.Fatal(err)
	}
	for _, q := range []string{"gehweg", "1413", "Fußgänger", "", "ä", "\xff", "<>/", "141312 parkten"} {
		f.Add(q)
	}
	at := time.Date(2025, 1, 6, 12, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, q string) {
		for _, e := range c.Search(q, at, 0) {
			if !e.ValidOn(at) {
				t.Fatalf("found %s, not valid", e.TBNR)
			}
		}
	})
}

func FuzzEntryText(f *testing.F) {
	f.Add("Sie parkten auf einem <Radweg/Radfahrstreifen> (Zeichen 237).", "2")
	f.Add("Sie parkten und behinderten +) dadurch *) Andere.", "")
	f.Add("<a/b><c/d>", "a")
	f.Add("<<>>", "x")
	f.Fuzz(func(t *testing.T, text, choice string) {
		e := Entry{TBNR: "100000", Text: text}
		e.Placeholders()
		e.Display()
		out, err := e.Fill([]string{choice})
		if err == nil && strings.ContainsAny(out, "<>") && !strings.ContainsAny(choice, "<>") {
			t.Fatalf("filled text %q still has a placeholder", out)
		}
	})
}

func FuzzParsePlate(f *testing.F) {
	for _, s := range [][2]string{
		{"D", "HB-AB 123"}, {"", "hb ab123e"}, {"D", "Y-123 456"}, {"D", "MÜ-AB 12 H"},
		{"NL", "12-ABC-3"}, {"PL", "WE 12345"}, {"XYZ", "???"}, {"D", "\xff"}, {"d", "ß"},
	} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, nat, input string) {
		p, err := ParsePlate(nat, input)
		if err != nil {
			return
		}
		if p.Text == "" || p.Nationality == "" || !utf8.ValidString(p.Text) || strings.ContainsAny(p.Text, " -.") {
			t.Fatalf("accepted %q as %+v", input, p)
		}
		again, err := ParsePlate(p.Nationality, p.Text)
		if err != nil || again.Text != p.Text {
			t.Fatalf("%q → %q does not parse back: %v", input, p.Text, err)
		}
		if p.Nationality == Germany && utf8.RuneCountInString(p.Text) > MaxGermanPlate+1 {
			t.Fatalf("German plate %q too long", p.Text)
		}
		// The printed form reads back as the same plate.
		if shown, err := ParsePlate(p.Nationality, p.String()); err != nil || shown.Text != p.Text {
			t.Fatalf("printed %q does not read back: %v", p.String(), err)
		}
	})
}

func FuzzParseNoticeNumber(f *testing.F) {
	f.Add("HB42-0000123-1")
	f.Add("hb42-0000123-1 ")
	f.Add("A-999999999999-0")
	f.Add("--")
	f.Fuzz(func(t *testing.T, s string) {
		n, err := ParseNoticeNumber(s)
		if err != nil {
			return
		}
		if n.String() != strings.ToUpper(strings.TrimSpace(s)) {
			t.Fatalf("%q read as %q", s, n)
		}
		if err := CheckPaymentReference(n.PaymentReference()); err != nil {
			t.Fatalf("reference of %q: %v", s, err)
		}
	})
}

func FuzzParseValve(f *testing.F) {
	for _, s := range []string{"VL05", "vr7", "HL 12", "HR00", "XX1", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		v, err := ParseValve(s)
		if err != nil {
			return
		}
		if CheckValves(nil) != nil || v.Hour < 1 || v.Hour > 12 {
			t.Fatalf("%q read as %+v", s, v)
		}
		if again, err := ParseValve(v.String()); err != nil || again != v {
			t.Fatalf("%q → %s does not read back", s, v)
		}
	})
}

func FuzzCheckReference(f *testing.F) {
	f.Add("RF18 5390 0754 7034")
	f.Add("DE89 3704 0044 0532 0130 00")
	f.Add("RF")
	f.Fuzz(func(t *testing.T, s string) {
		if CheckPaymentReference(s) == nil && !strings.HasPrefix(strings.ToUpper(strings.TrimLeft(s, " ")), "RF") {
			t.Fatalf("accepted %q", s)
		}
		CheckIBAN(s)
	})
}
