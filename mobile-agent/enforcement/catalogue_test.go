package enforcement

import (
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// berlin is the office time zone of the tests.
func berlin(t testing.TB) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		t.Fatalf("time zone Europe/Berlin: %v (install tzdata)", err)
	}
	return loc
}

func embedded(t testing.TB) *Catalogue {
	t.Helper()
	c, err := EmbeddedCatalogue()
	if err != nil {
		t.Fatal(err)
	}
	return c
}

const testHeader = "# format: kogge-catalogue/1\n# version: 7\n" +
	"tbnr,text,amount_eur,kind,points,valid_from,valid_until,min_observation,qualifiers\n"

// catalogueFile is a catalogue of testHeader and rows.
func catalogueFile(rows ...string) []byte {
	return []byte(testHeader + strings.Join(rows, "\n") + "\n")
}

func mustParse(t testing.TB, b []byte) *Catalogue {
	t.Helper()
	c, err := ParseCatalogue(b)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestEmbeddedCatalogue(t *testing.T) {
	c := embedded(t)
	if c.Version() != 1 || c.Len() != 80 {
		t.Fatalf("version %d, %d entries; want version 1 with the 80 rows of the seed", c.Version(), c.Len())
	}
	if c.Issued().Format(time.DateOnly) != "2024-08-22" || !strings.Contains(c.Source(), "KBA") {
		t.Fatalf("issued %v, source %q", c.Issued(), c.Source())
	}
	day := time.Date(2026, 3, 2, 12, 0, 0, 0, berlin(t))
	if n := len(c.ValidAt(day)); n != 80 {
		t.Fatalf("%d entries valid in 2026, want 80", n)
	}
	if n := len(c.ValidAt(time.Date(2021, 11, 8, 12, 0, 0, 0, berlin(t)))); n != 0 {
		t.Fatalf("%d entries valid before the BKatV amendment came into force; the seed's amounts apply from 2021-11-09", n)
	}
	// Spot checks against the seed (BKatV annex as amended 2021-10-13).
	for _, want := range []struct {
		tbnr      string
		cents     int64
		sanction  Sanction
		min       time.Duration
		qualifier string
	}{
		{"141312", 2500, Warning, 0, ""},
		{"141315", 5000, Warning, time.Hour, "obstruction"},
		{"112454", 5500, Warning, 0, ""},
		{"112655", 7000, Fine, 0, "obstruction"},
		{"112612", 10000, Fine, 0, "emergency-vehicle"},
		{"112666", 8500, Fine, 15 * time.Minute, "over-15-minutes"},
		{"113101", 2500, Warning, 30 * time.Minute, "over-30-minutes"},
		{"113104", 4000, Warning, 3 * time.Hour, "over-three-hours"},
		{"142673", 10000, Fine, 0, "accident"},
	} {
		e, err := c.Lookup(want.tbnr, day)
		if err != nil {
			t.Fatal(err)
		}
		if e.AmountCents != want.cents || e.Sanction != want.sanction || e.MinObservation != want.min {
			t.Errorf("%s: %d cents %v min %v; want %d %v %v", want.tbnr, e.AmountCents, e.Sanction, e.MinObservation, want.cents, want.sanction, want.min)
		}
		if want.qualifier != "" && !strings.Contains(strings.Join(e.Qualifiers, "|"), want.qualifier) {
			t.Errorf("%s: qualifiers %v lack %s", want.tbnr, e.Qualifiers, want.qualifier)
		}
		if e.Source == "" || e.Text == "" {
			t.Errorf("%s: no source or text", want.tbnr)
		}
	}
}

// TestEmbeddedQualifiersMatchText checks that the columns Kogge added to the
// seed agree with the offence texts they were taken from.
func TestEmbeddedQualifiersMatchText(t *testing.T) {
	durations := map[string]time.Duration{
		"15 Minuten": 15 * time.Minute, "30 Minuten": 30 * time.Minute,
		"1 Stunde": time.Hour, "2 Stunden": 2 * time.Hour, "3 Stunden": 3 * time.Hour,
	}
	re := regexp.MustCompile(`länger als (\d+ (?:Minuten|Stunden?))`)
	for _, e := range embedded(t).All() {
		m := re.FindStringSubmatch(e.Text)
		var want time.Duration
		if m != nil {
			var ok bool
			if want, ok = durations[m[1]]; !ok {
				t.Errorf("%s: unexpected duration %q", e.TBNR, m[1])
			}
		}
		if e.MinObservation != want {
			t.Errorf("%s: min observation %v, text says %v: %s", e.TBNR, e.MinObservation, want, e.Text)
		}
		has := func(q string) bool { return strings.Contains("|"+strings.Join(e.Qualifiers, "|")+"|", "|"+q+"|") }
		if strings.Contains(e.Text, "behinderten") != has("obstruction") {
			t.Errorf("%s: qualifiers %v vs text %q", e.TBNR, e.Qualifiers, e.Text)
		}
		if strings.Contains(e.Text, "gefährdeten") != has("endangerment") {
			t.Errorf("%s: qualifiers %v vs text %q", e.TBNR, e.Qualifiers, e.Text)
		}
		if e.ValidFrom.Format(time.DateOnly) != "2021-11-09" || !e.ValidUntil.IsZero() {
			t.Errorf("%s: valid %s", e.TBNR, period(e))
		}
	}
}

// TestDataReadmeCitesSources keeps the data file's citation with it.
func TestDataReadmeCitesSources(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("data", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"Tatbestandskatalog", "BKatV", "Joshua2504/owia", "2021-11-09"} {
		if !strings.Contains(string(b), s) {
			t.Errorf("data/README.md does not mention %q", s)
		}
	}
	if !strings.Contains(string(embeddedCatalogue), "github.com/Joshua2504/owia") {
		t.Error("the embedded catalogue lost its per-row sources")
	}
}

func TestParseCatalogueRejects(t *testing.T) {
	ok := "141312,Sie parkten im absoluten Haltverbot.,25,Verwarnung,,2021-11-09,,,"
	tests := []struct {
		name string
		file []byte
		want string // in the error
	}{
		{"empty", nil, "no \"# format"},
		{"no format", []byte("# version: 1\ntbnr,text,amount_eur,kind,valid_from\n" + "141312,x,25,Verwarnung,2021-11-09\n"), "no \"# format"},
		{"other format", []byte("# format: kogge-catalogue/2\n# version: 1\n"), "this build reads kogge-catalogue/1"},
		{"no version", []byte("# format: kogge-catalogue/1\ntbnr,text,amount_eur,kind,valid_from\n"), "no \"# version"},
		{"bad version", []byte("# format: kogge-catalogue/1\n# version: 1.5\n"), "line 2: version \"1.5\""},
		{"zero version", []byte("# format: kogge-catalogue/1\n# version: 0\n"), "not a positive integer"},
		{"version twice", []byte("# format: kogge-catalogue/1\n# version: 2\n# version: 3\n"), "line 3: \"version\" given twice"},
		{"no table", []byte("# format: kogge-catalogue/1\n# version: 2\n"), "no table header"},
		{"missing column", []byte("# format: kogge-catalogue/1\n# version: 2\ntbnr,text,amount_eur,valid_from\n"), "no column \"kind\""},
		{"column twice", []byte("# format: kogge-catalogue/1\n# version: 2\ntbnr,text,text,amount_eur,kind,valid_from\n"), "column \"text\" given twice"},
		{"no rows", catalogueFile(), "no offences"},
		{"short tbnr", catalogueFile("14131,x,25,Verwarnung,,2021-11-09,,,"), "line 4 (TBNR 14131): tbnr \"14131\" is not six digits"},
		{"letters in tbnr", catalogueFile(ok, "14131x,x,25,Verwarnung,,2021-11-09,,,"), "line 5"},
		{"empty text", catalogueFile("141312,,25,Verwarnung,,2021-11-09,,,"), "text is empty"},
		{"open placeholder", catalogueFile("141174,Sie parkten auf einem <Radweg/Radfahrstreifen.,55,Verwarnung,,2021-11-09,,,"), "not closed"},
		{"one alternative", catalogueFile("141174,Sie parkten auf einem <Radweg>.,55,Verwarnung,,2021-11-09,,,"), "no alternatives"},
		{"empty alternative", catalogueFile("141174,Sie parkten auf einem <Radweg/>.,55,Verwarnung,,2021-11-09,,,"), "empty alternative"},
		{"stray bracket", catalogueFile("141174,Sie parkten > hier.,55,Verwarnung,,2021-11-09,,,"), "'>' without '<'"},
		{"control character", catalogueFile("141312,\"Sie\tparkten\",25,Verwarnung,,2021-11-09,,,"), "control"},
		{"bad amount", catalogueFile("141312,x,25 EUR,Verwarnung,,2021-11-09,,,"), "amount_eur"},
		{"three decimals", catalogueFile("141312,x,25.000,Verwarnung,,2021-11-09,,,"), "amount_eur"},
		{"warning not in steps of 5", catalogueFile("141312,x,57,Verwarnung,,2021-11-09,,,"), "steps of 5"},
		{"warning with cents", catalogueFile("141312,x,25.50,Verwarnung,,2021-11-09,,,"), "steps of 5"},
		{"warning below 5", catalogueFile("141312,x,3,Verwarnung,,2021-11-09,,,"), "5 to 55 EUR"},
		{"warning above 55", catalogueFile("141312,x,60,Verwarnung,,2021-11-09,,,"), "above that the kind is Bußgeld"},
		{"warning with points", catalogueFile("141312,x,55,Verwarnung,1,2021-11-09,,,"), "no points"},
		{"fine of 55", catalogueFile("112655,x,55,Bußgeld,,2021-11-09,,,"), "fines are above 55 EUR"},
		{"fine with cents", catalogueFile("112655,x,70.50,Bußgeld,,2021-11-09,,,"), "whole euros"},
		{"fine too high", catalogueFile("112655,x,6000,Bußgeld,,2021-11-09,,,"), "check the amount"},
		{"too many points", catalogueFile("112655,x,70,Bußgeld,4,2021-11-09,,,"), "points"},
		{"unknown kind", catalogueFile("141312,x,25,Strafe,,2021-11-09,,,"), "neither Verwarnung nor Bußgeld"},
		{"no valid_from", catalogueFile("141312,x,25,Verwarnung,,,,,"), "valid_from"},
		{"bad valid_from", catalogueFile("141312,x,25,Verwarnung,,09.11.2021,,,"), "valid_from \"09.11.2021\""},
		{"until before from", catalogueFile("141312,x,25,Verwarnung,,2021-11-09,2021-11-08,,"), "before valid_from"},
		{"observation in seconds", catalogueFile("141314,x,40,Verwarnung,,2021-11-09,,90s,"), "whole minutes"},
		{"negative observation", catalogueFile("141314,x,40,Verwarnung,,2021-11-09,,-1h,"), "min_observation"},
		{"observation too long", catalogueFile("141314,x,40,Verwarnung,,2021-11-09,,25h,"), "min_observation"},
		{"bad qualifier", catalogueFile("141313,x,40,Verwarnung,,2021-11-09,,,Obstruction"), "qualifier \"Obstruction\""},
		{"qualifier twice", catalogueFile("141313,x,40,Verwarnung,,2021-11-09,,,obstruction|obstruction"), "given twice"},
		{"duplicate tbnr", catalogueFile(ok, ok), "line 5 (TBNR 141312): valid 2021-11-09 to open-ended overlaps"},
		{"overlapping periods", catalogueFile(
			"141312,x,15,Verwarnung,,2020-01-01,2021-11-09,,",
			"141312,x,25,Verwarnung,,2021-11-09,,,"), "overlaps another row"},
		{"overlap inside", catalogueFile(
			"141312,x,15,Verwarnung,,2020-01-01,2025-12-31,,",
			"141312,x,25,Verwarnung,,2022-01-01,2022-12-31,,"), "overlaps"},
		{"short row", catalogueFile("141312,x,25,Verwarnung"), "malformed CSV"},
		{"bare quote", catalogueFile(`141312,Sie "parkten",25,Verwarnung,,2021-11-09,,,`), "malformed CSV"},
		{"not utf-8", append(catalogueFile(ok), 0xff, 0xfe), "not UTF-8"},
		{"too large", make([]byte, MaxCatalogueSize+1), "at most"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := ParseCatalogue(tt.file)
			if err == nil {
				t.Fatalf("accepted (%d entries)", c.Len())
			}
			var ce *CatalogueError
			if !errors.As(err, &ce) {
				t.Fatalf("error %v is not a *CatalogueError", err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %q does not say %q", err, tt.want)
			}
		})
	}
}

func TestParseCatalogueFlexible(t *testing.T) {
	// Columns in another order, an unknown column, CRLF line ends, a BOM,
	// comments, amounts with a decimal comma, kinds in English.
	file := "\ufeff# A test catalogue\r\n# version: 3\r\n# note: not a key\r\n# format: kogge-catalogue/1\r\n" +
		"kind,future_column,amount_eur,tbnr,valid_from,text,driving_ban_months,points\r\n" +
		"warning,whatever,\"27,50\",141312,2021-11-09,Sie parkten.,,\r\n" +
		"fine,,70,112655,2021-11-09,Sie parkten und behinderten +) dadurch Andere.,1,1\r\n"
	// 27.50 EUR is not a warning amount: the decimal comma is read, the rule
	// applies.
	if _, err := ParseCatalogue([]byte(file)); err == nil || !strings.Contains(err.Error(), "27,50 €") {
		t.Fatalf("27,50 EUR warning: %v", err)
	}
	c := mustParse(t, []byte(strings.Replace(file, "\"27,50\"", "\"25,00\"", 1)))
	if c.Version() != 3 || c.Len() != 2 {
		t.Fatalf("version %d, %d entries", c.Version(), c.Len())
	}
	e, err := c.Lookup("112655", time.Date(2022, 1, 1, 0, 0, 0, 0, time.UTC))
	if err != nil {
		t.Fatal(err)
	}
	if e.Sanction != Fine || e.Points != 1 || e.BanMonths != 1 || e.AmountCents != 7000 {
		t.Fatalf("entry %+v", e)
	}
	w, _ := c.Lookup("141312", time.Date(2022, 1, 1, 0, 0, 0, 0, time.UTC))
	if w.AmountCents != 2500 || w.Sanction != Warning {
		t.Fatalf("entry %+v", w)
	}
}

// versions is a catalogue with an offence in two validity periods and one
// that ran out (test data, not the federal amounts).
var versions = catalogueFile(
	"141312,Sie parkten im absoluten Haltverbot (Zeichen 283).,15,Verwarnung,,2020-04-28,2021-11-08,,",
	"141312,Sie parkten im absoluten Haltverbot (Zeichen 283).,25,Verwarnung,,2021-11-09,,,",
	"141999,Sie parkten auf einer Fläche für eine Ausstellung.,10,Verwarnung,,2020-01-01,2023-12-31,,",
)

func TestValidityDates(t *testing.T) {
	c := mustParse(t, versions)
	loc := berlin(t)
	tests := []struct {
		name  string
		tbnr  string
		at    time.Time
		cents int64
		err   error
	}{
		{"first day of the old amount", "141312", time.Date(2020, 4, 28, 0, 0, 0, 0, loc), 1500, nil},
		{"last day of the old amount", "141312", time.Date(2021, 11, 8, 23, 59, 59, 0, loc), 1500, nil},
		{"first day of the new amount", "141312", time.Date(2021, 11, 9, 0, 0, 0, 0, loc), 2500, nil},
		// 23:30 UTC on the 8th is 00:30 in Berlin on the 9th: the office's
		// date counts.
		{"date in the office's zone", "141312", time.Date(2021, 11, 8, 23, 30, 0, 0, time.UTC).In(loc), 2500, nil},
		{"long after", "141312", time.Date(2030, 1, 1, 12, 0, 0, 0, loc), 2500, nil},
		{"before any version", "141312", time.Date(2020, 4, 27, 12, 0, 0, 0, loc), 0, ErrNotValid},
		{"last day of a closed entry", "141999", time.Date(2023, 12, 31, 22, 0, 0, 0, loc), 1000, nil},
		{"after a closed entry", "141999", time.Date(2024, 1, 1, 0, 0, 0, 0, loc), 0, ErrNotValid},
		{"unknown", "999999", time.Date(2024, 1, 1, 0, 0, 0, 0, loc), 0, ErrUnknownOffence},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, err := c.Lookup(tt.tbnr, tt.at)
			if !errors.Is(err, tt.err) {
				t.Fatalf("error %v, want %v", err, tt.err)
			}
			if err == nil && e.AmountCents != tt.cents {
				t.Fatalf("%d cents, want %d", e.AmountCents, tt.cents)
			}
		})
	}
	if n := len(c.ValidAt(time.Date(2022, 6, 1, 12, 0, 0, 0, loc))); n != 2 {
		t.Fatalf("%d entries valid in 2022, want 2", n)
	}
	if n := len(c.ValidAt(time.Date(2024, 6, 1, 12, 0, 0, 0, loc))); n != 1 {
		t.Fatalf("%d entries valid in 2024, want 1", n)
	}
	if e, ok := c.Latest("141312"); !ok || e.AmountCents != 2500 {
		t.Fatalf("latest %+v %v", e, ok)
	}
	if got := c.Search("Ausstellung", time.Date(2024, 6, 1, 0, 0, 0, 0, loc), 0); len(got) != 0 {
		t.Fatalf("search found an entry that ran out: %v", got)
	}
	if got := c.Search("Ausstellung", time.Date(2023, 6, 1, 0, 0, 0, 0, loc), 0); len(got) != 1 {
		t.Fatalf("search in 2023: %v", got)
	}
}

func TestCatalogueUpdate(t *testing.T) {
	cur := mustParse(t, versions) // version 7
	newer := []byte(strings.Replace(string(versions), "# version: 7", "# version: 8", 1))
	next, err := cur.Update(newer)
	if err != nil {
		t.Fatal(err)
	}
	if next.Version() != 8 || string(next.Bytes()) != string(newer) {
		t.Fatalf("version %d", next.Version())
	}
	if cur.Version() != 7 {
		t.Fatal("the old catalogue changed")
	}
	for _, v := range []string{"7", "6"} {
		b := []byte(strings.Replace(string(versions), "# version: 7", "# version: "+v, 1))
		if _, err := cur.Update(b); !errors.Is(err, ErrNotNewer) {
			t.Fatalf("update to version %s: %v, want ErrNotNewer", v, err)
		}
	}
	broken := []byte(strings.Replace(string(newer), ",25,Verwarnung", ",57,Verwarnung", 1))
	_, err = cur.Update(broken)
	var ce *CatalogueError
	if !errors.As(err, &ce) || ce.Line != 5 || !strings.Contains(err.Error(), "version 7 stays in use") {
		t.Fatalf("broken update: %v", err)
	}
	// A stored catalogue reads back as it was.
	again := mustParse(t, next.Bytes())
	if again.Version() != 8 || again.Len() != next.Len() {
		t.Fatal("stored catalogue differs")
	}
}

func TestPlaceholders(t *testing.T) {
	c := embedded(t)
	e, err := c.Lookup("141174", time.Date(2025, 1, 6, 8, 0, 0, 0, berlin(t)))
	if err != nil {
		t.Fatal(err)
	}
	alts := e.Placeholders()
	if len(alts) != 1 || strings.Join(alts[0], "|") != "Radweg|Radfahrstreifen" {
		t.Fatalf("placeholders %q", alts)
	}
	for _, choice := range []string{"Radfahrstreifen", "radfahrstreifen", "2", " 2 "} {
		got, err := e.Fill([]string{choice})
		if err != nil || got != "Sie parkten auf einem Radfahrstreifen (Zeichen 237)." {
			t.Fatalf("fill %q: %q %v", choice, got, err)
		}
	}
	for _, bad := range [][]string{nil, {"Gehweg"}, {"3"}, {"0"}, {"Radweg", "Radweg"}} {
		if _, err := e.Fill(bad); !errors.Is(err, ErrChoice) {
			t.Fatalf("fill %q: %v, want ErrChoice", bad, err)
		}
	}
	if d := e.Display(); d != "Sie parkten auf einem Radweg/Radfahrstreifen (Zeichen 237)." {
		t.Fatalf("display %q", d)
	}
	// Marks are not printed.
	o, _ := c.Lookup("112655", time.Date(2025, 1, 6, 8, 0, 0, 0, berlin(t)))
	if got, err := o.Fill(nil); err != nil || got != "Sie parkten verbotswidrig auf dem Gehweg und behinderten dadurch Andere." {
		t.Fatalf("fill: %q %v", got, err)
	}
	if len(o.Placeholders()) != 0 {
		t.Fatal("placeholders in a text without")
	}
}

func BenchmarkParseCatalogue(b *testing.B) {
	for b.Loop() {
		if _, err := ParseCatalogue(embeddedCatalogue); err != nil {
			b.Fatal(err)
		}
	}
}
