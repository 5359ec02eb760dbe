package enforcement

import (
	"bytes"
	_ "embed"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/kogge-fleet/kogge/protocol/casefile"
)

//go:embed data/tbnr-parking.csv
var embeddedCatalogue []byte

// CatalogueFormat is the format line a catalogue file must carry
// ("# format: kogge-catalogue/1").
const CatalogueFormat = "kogge-catalogue/1"

// Limits of a catalogue file. A parser refuses anything larger.
const (
	MaxCatalogueSize    = 4 << 20
	MaxCatalogueEntries = 10000
	maxEntryText        = 1000
	maxRefText          = 1000
	maxQualifiers       = 16
)

// Amount rules of the catalogue (DOMAIN.md §2, § 56 OWiG).
const (
	// A warning fine (Verwarnungsgeld) is MinWarningCents to
	// MaxWarningCents (5 to 55 EUR) in steps of WarningStepCents (5 EUR).
	MinWarningCents  = 500
	MaxWarningCents  = 5500
	WarningStepCents = 500
	// MaxFineCents bounds a catalogue fine. It is a guard against typing
	// errors in a catalogue update, not a legal limit.
	MaxFineCents = 500000
	// MaxPoints is the most points (Fahreignungsregister) one offence
	// carries; MaxBanMonths the longest driving ban (§ 25 StVG).
	MaxPoints    = 3
	MaxBanMonths = 3
)

// Sanction says how an offence is dealt with.
type Sanction uint8

const (
	// Warning is a warning fine (Verwarnung), 5–55 EUR, settled on the
	// street with the printed notice.
	Warning Sanction = iota + 1
	// Fine is a matter for a fine notice (Bußgeldbescheid): the case goes
	// to the fine office and no warning is printed.
	Fine
)

// String returns the sanction as the case record names it
// (casefile.SanctionWarning or casefile.SanctionFine).
func (s Sanction) String() string {
	switch s {
	case Warning:
		return casefile.SanctionWarning
	case Fine:
		return casefile.SanctionFine
	}
	return "sanction(" + strconv.Itoa(int(s)) + ")"
}

// German returns the German term: Verwarnung or Bußgeld.
func (s Sanction) German() string {
	switch s {
	case Warning:
		return "Verwarnung"
	case Fine:
		return "Bußgeld"
	}
	return s.String()
}

// Entry is one offence of the catalogue (Tatbestand) in one validity
// period. Entries are values; do not modify their slices.
type Entry struct {
	// TBNR is the offence number: six digits (first the law, then the
	// section, then the variant).
	TBNR string
	// Text is the offence text as the catalogue has it, with placeholders
	// "<a/b>" (the warden picks one alternative) and the marks "+)" and
	// "*)" (the warden states particulars). See Placeholders and Fill.
	Text string
	// LegalRef points to the law and the BKat line, for people.
	LegalRef string
	// AmountCents is the standard amount (Regelsatz) in euro cents.
	AmountCents int64
	// Sanction is Warning or Fine.
	Sanction Sanction
	// Points in the driving-aptitude register (Fahreignungsregister).
	Points int
	// BanMonths is the standard driving ban in months; 0 means none.
	BanMonths int
	// ValidFrom is the first day the entry applies; ValidUntil the last
	// one (zero: open-ended). Both are dates at midnight UTC.
	ValidFrom, ValidUntil time.Time
	// MinObservation is how long a warden must have observed the vehicle
	// before the offence is established ("länger als 1 Stunde"); zero
	// when the offence needs no observed time.
	MinObservation time.Duration
	// Qualifiers are the circumstances the entry stands for, such as
	// "obstruction" or "over-one-hour"; they go into the case record's
	// circumstances.
	Qualifiers []string
	// Source names where the row's text and amount come from.
	Source string
}

// ValidOn reports whether the entry applies on the date of t (in t's
// location).
func (e Entry) ValidOn(t time.Time) bool {
	d := dateOf(t)
	return !d.Before(e.ValidFrom) && (e.ValidUntil.IsZero() || !d.After(e.ValidUntil))
}

// Amount returns the amount in the German notation, e.g. "25,00 €".
func (e Entry) Amount() string { return FormatEuro(e.AmountCents) }

func (e Entry) clone() Entry {
	e.Qualifiers = slices.Clone(e.Qualifiers)
	return e
}

// dateOf returns the calendar date of t in its location, as midnight UTC.
func dateOf(t time.Time) time.Time {
	y, m, d := t.Date()
	return time.Date(y, m, d, 0, 0, 0, 0, time.UTC)
}

// Catalogue is a versioned offence catalogue. It is immutable and safe
// for concurrent use; an update yields a new Catalogue.
type Catalogue struct {
	version int
	issued  time.Time
	source  string
	raw     []byte
	entries []Entry // by TBNR, then ValidFrom
	byTBNR  map[string][]int
	index   []searchDoc // parallel to entries
}

// Errors a caller acts on.
var (
	// ErrUnknownOffence: the TBNR is not in the catalogue.
	ErrUnknownOffence = errors.New("offence not in the catalogue")
	// ErrNotValid: the TBNR is in the catalogue, but not valid on the
	// date asked for.
	ErrNotValid = errors.New("offence not valid on that date")
	// ErrNotNewer: a catalogue update is not newer than the catalogue in
	// use; the device keeps its catalogue.
	ErrNotNewer = errors.New("catalogue update is not newer")
)

// CatalogueError is a problem in a catalogue file: the line (1-based; 0
// when the file as a whole is wrong) and what is wrong.
type CatalogueError struct {
	Line int
	TBNR string
	Msg  string
}

func (e *CatalogueError) Error() string {
	var b strings.Builder
	b.WriteString("catalogue")
	if e.Line > 0 {
		fmt.Fprintf(&b, " line %d", e.Line)
	}
	if e.TBNR != "" {
		fmt.Fprintf(&b, " (TBNR %s)", e.TBNR)
	}
	b.WriteString(": ")
	b.WriteString(e.Msg)
	return b.String()
}

// EmbeddedCatalogue returns the catalogue shipped in the binary
// (data/tbnr-parking.csv).
func EmbeddedCatalogue() (*Catalogue, error) {
	c, err := ParseCatalogue(embeddedCatalogue)
	if err != nil {
		return nil, fmt.Errorf("embedded catalogue: %w", err)
	}
	return c, nil
}

// ParseCatalogue reads and checks a catalogue file: a header of
// "# key: value" lines (format kogge-catalogue/1 and an integer version
// are required; issued and source are optional) and a CSV table whose
// columns are found by name (tbnr, text, amount_eur, kind and valid_from
// are required; points, driving_ban_months, valid_until, min_observation,
// qualifiers, legal_ref and source are optional; unknown columns are
// ignored).
//
// It refuses, naming the line: a file over MaxCatalogueSize or not UTF-8;
// rows of the wrong width, with a TBNR that is not six digits, an empty
// text or malformed placeholders; an amount that does not fit its kind —
// a Verwarnung is 5–55 EUR in steps of 5 without points or driving ban,
// a Bußgeld is more than 55 EUR in whole euros up to MaxFineCents —;
// points above MaxPoints, bans above MaxBanMonths; a validity period that
// ends before it starts; a minimum observation that is not whole minutes
// up to 24 h; two rows with one TBNR whose validity periods overlap.
func ParseCatalogue(b []byte) (*Catalogue, error) {
	if len(b) > MaxCatalogueSize {
		return nil, &CatalogueError{Msg: fmt.Sprintf("%d bytes, at most %d", len(b), MaxCatalogueSize)}
	}
	if !utf8.Valid(b) {
		return nil, &CatalogueError{Msg: "not UTF-8 text"}
	}
	c := &Catalogue{raw: slices.Clone(b), byTBNR: map[string][]int{}}
	body, line, err := c.parseHeader(bytes.TrimPrefix(b, []byte("\ufeff")))
	if err != nil {
		return nil, err
	}
	if err := c.parseTable(body, line); err != nil {
		return nil, err
	}
	c.buildIndex()
	return c, nil
}

// parseHeader reads the leading "#" lines and returns the rest and the
// number of lines read.
func (c *Catalogue) parseHeader(b []byte) ([]byte, int, error) {
	seen := map[string]int{}
	line := 0
	for len(b) > 0 && b[0] == '#' {
		line++
		l, rest, _ := bytes.Cut(b, []byte("\n"))
		b = rest
		text := strings.TrimSpace(strings.TrimPrefix(string(l), "#"))
		key, value, ok := strings.Cut(text, ":")
		key, value = strings.TrimSpace(key), strings.TrimSpace(value)
		switch {
		case !ok:
			continue // a comment
		case key != "format" && key != "version" && key != "issued" && key != "source":
			continue // a comment with a colon
		}
		if prev, dup := seen[key]; dup {
			return nil, 0, &CatalogueError{Line: line, Msg: fmt.Sprintf("%q given twice (first on line %d)", key, prev)}
		}
		seen[key] = line
		switch key {
		case "format":
			if value != CatalogueFormat {
				return nil, 0, &CatalogueError{Line: line, Msg: fmt.Sprintf("format %q: this build reads %s", value, CatalogueFormat)}
			}
		case "version":
			v, err := strconv.Atoi(value)
			if err != nil || v < 1 || v > 1e9 {
				return nil, 0, &CatalogueError{Line: line, Msg: fmt.Sprintf("version %q is not a positive integer", value)}
			}
			c.version = v
		case "issued":
			d, err := time.Parse(time.DateOnly, value)
			if err != nil {
				return nil, 0, &CatalogueError{Line: line, Msg: fmt.Sprintf("issued %q is not a date YYYY-MM-DD", value)}
			}
			c.issued = d
		case "source":
			if err := checkText(value, maxRefText); err != nil {
				return nil, 0, &CatalogueError{Line: line, Msg: "source: " + err.Error()}
			}
			c.source = value
		}
	}
	switch {
	case seen["format"] == 0:
		return nil, 0, &CatalogueError{Msg: "no \"# format: " + CatalogueFormat + "\" line in the header"}
	case seen["version"] == 0:
		return nil, 0, &CatalogueError{Msg: "no \"# version: N\" line in the header"}
	}
	return b, line, nil
}

// columns of a catalogue table.
var (
	requiredColumns = []string{"tbnr", "text", "amount_eur", "kind", "valid_from"}
	optionalColumns = []string{"points", "driving_ban_months", "valid_until", "min_observation", "qualifiers", "legal_ref", "source"}
)

func (c *Catalogue) parseTable(b []byte, headerLines int) error {
	r := csv.NewReader(bytes.NewReader(b))
	r.ReuseRecord = true
	lineOf := func() int {
		l, _ := r.FieldPos(0)
		return headerLines + l
	}
	head, err := r.Read()
	if err == io.EOF {
		return &CatalogueError{Line: headerLines + 1, Msg: "no table header"}
	}
	if err != nil {
		return csvError(err, headerLines)
	}
	col := map[string]int{}
	for i, name := range head {
		name = strings.TrimSpace(name)
		if _, dup := col[name]; dup && name != "" {
			return &CatalogueError{Line: lineOf(), Msg: fmt.Sprintf("column %q given twice", name)}
		}
		col[name] = i
	}
	for _, name := range requiredColumns {
		if _, ok := col[name]; !ok {
			return &CatalogueError{Line: lineOf(), Msg: fmt.Sprintf("no column %q; required are %s", name, strings.Join(requiredColumns, ", "))}
		}
	}
	get := func(rec []string, name string) string {
		if i, ok := col[name]; ok {
			return strings.TrimSpace(rec[i])
		}
		return ""
	}
	for {
		rec, err := r.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			return csvError(err, headerLines)
		}
		line := lineOf()
		if len(c.entries) >= MaxCatalogueEntries {
			return &CatalogueError{Line: line, Msg: fmt.Sprintf("more than %d rows", MaxCatalogueEntries)}
		}
		e, err := parseEntry(func(name string) string { return get(rec, name) })
		if err != nil {
			return &CatalogueError{Line: line, TBNR: get(rec, "tbnr"), Msg: err.Error()}
		}
		for _, i := range c.byTBNR[e.TBNR] {
			if overlap(c.entries[i], e) {
				return &CatalogueError{Line: line, TBNR: e.TBNR, Msg: fmt.Sprintf("valid %s overlaps another row of the same TBNR (valid %s); one TBNR has one row per validity period", period(e), period(c.entries[i]))}
			}
		}
		c.byTBNR[e.TBNR] = append(c.byTBNR[e.TBNR], len(c.entries))
		c.entries = append(c.entries, e)
	}
	if len(c.entries) == 0 {
		return &CatalogueError{Msg: "no offences"}
	}
	sort.SliceStable(c.entries, func(i, j int) bool {
		a, b := c.entries[i], c.entries[j]
		if a.TBNR != b.TBNR {
			return a.TBNR < b.TBNR
		}
		return a.ValidFrom.Before(b.ValidFrom)
	})
	clear(c.byTBNR)
	for i, e := range c.entries {
		c.byTBNR[e.TBNR] = append(c.byTBNR[e.TBNR], i)
	}
	return nil
}

func csvError(err error, headerLines int) error {
	var pe *csv.ParseError
	if errors.As(err, &pe) {
		return &CatalogueError{Line: headerLines + pe.Line, Msg: "malformed CSV: " + pe.Err.Error()}
	}
	return &CatalogueError{Msg: "malformed CSV: " + err.Error()}
}

func period(e Entry) string {
	until := "open-ended"
	if !e.ValidUntil.IsZero() {
		until = e.ValidUntil.Format(time.DateOnly)
	}
	return e.ValidFrom.Format(time.DateOnly) + " to " + until
}

func overlap(a, b Entry) bool {
	aEndsBefore := !a.ValidUntil.IsZero() && a.ValidUntil.Before(b.ValidFrom)
	bEndsBefore := !b.ValidUntil.IsZero() && b.ValidUntil.Before(a.ValidFrom)
	return !aEndsBefore && !bEndsBefore
}

// parseEntry reads and checks one row.
func parseEntry(get func(string) string) (Entry, error) {
	var e Entry
	e.TBNR = get("tbnr")
	if !IsTBNR(e.TBNR) {
		return e, fmt.Errorf("tbnr %q is not six digits", clip(e.TBNR))
	}
	e.Text = get("text")
	if e.Text == "" {
		return e, errors.New("text is empty")
	}
	if err := checkText(e.Text, maxEntryText); err != nil {
		return e, fmt.Errorf("text: %w", err)
	}
	if _, err := parseTemplate(e.Text); err != nil {
		return e, fmt.Errorf("text: %w", err)
	}
	var err error
	if e.AmountCents, err = parseEuro(get("amount_eur")); err != nil {
		return e, fmt.Errorf("amount_eur: %w", err)
	}
	switch kind := get("kind"); strings.ToLower(kind) {
	case "verwarnung", "warning":
		e.Sanction = Warning
	case "bußgeld", "bussgeld", "fine":
		e.Sanction = Fine
	default:
		return e, fmt.Errorf("kind %q is neither Verwarnung nor Bußgeld", clip(kind))
	}
	if e.Points, err = smallInt(get("points"), MaxPoints); err != nil {
		return e, fmt.Errorf("points: %w", err)
	}
	if e.BanMonths, err = smallInt(get("driving_ban_months"), MaxBanMonths); err != nil {
		return e, fmt.Errorf("driving_ban_months: %w", err)
	}
	if err := checkKind(e); err != nil {
		return e, err
	}
	if e.ValidFrom, err = time.Parse(time.DateOnly, get("valid_from")); err != nil {
		return e, fmt.Errorf("valid_from %q is not a date YYYY-MM-DD", clip(get("valid_from")))
	}
	if s := get("valid_until"); s != "" {
		if e.ValidUntil, err = time.Parse(time.DateOnly, s); err != nil {
			return e, fmt.Errorf("valid_until %q is not a date YYYY-MM-DD", clip(s))
		}
		if e.ValidUntil.Before(e.ValidFrom) {
			return e, fmt.Errorf("valid_until %s is before valid_from %s", s, get("valid_from"))
		}
	}
	if s := get("min_observation"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil || d <= 0 || d > 24*time.Hour || d%time.Minute != 0 {
			return e, fmt.Errorf("min_observation %q is not a duration of whole minutes up to 24h (e.g. 15m, 1h)", clip(s))
		}
		e.MinObservation = d
	}
	if s := get("qualifiers"); s != "" {
		for q := range strings.SplitSeq(s, "|") {
			q = strings.TrimSpace(q)
			if !isQualifier(q) {
				return e, fmt.Errorf("qualifier %q: want lower-case letters, digits and '-', up to 32", clip(q))
			}
			if slices.Contains(e.Qualifiers, q) {
				return e, fmt.Errorf("qualifier %q given twice", q)
			}
			e.Qualifiers = append(e.Qualifiers, q)
		}
		if len(e.Qualifiers) > maxQualifiers {
			return e, fmt.Errorf("%d qualifiers, at most %d", len(e.Qualifiers), maxQualifiers)
		}
	}
	e.LegalRef = get("legal_ref")
	if err := checkText(e.LegalRef, maxRefText); err != nil {
		return e, fmt.Errorf("legal_ref: %w", err)
	}
	e.Source = get("source")
	if err := checkText(e.Source, maxRefText); err != nil {
		return e, fmt.Errorf("source: %w", err)
	}
	return e, nil
}

// checkKind applies the amount rules of a warning and a fine.
func checkKind(e Entry) error {
	switch e.Sanction {
	case Warning:
		if !IsWarningAmount(e.AmountCents) {
			return fmt.Errorf("a Verwarnung of %s: warning amounts are 5 to 55 EUR in steps of 5 (§ 56 OWiG); above that the kind is Bußgeld", FormatEuro(e.AmountCents))
		}
		if e.Points != 0 || e.BanMonths != 0 {
			return errors.New("a Verwarnung carries no points and no driving ban")
		}
	case Fine:
		switch {
		case e.AmountCents <= MaxWarningCents:
			return fmt.Errorf("a Bußgeld of %s: fines are above 55 EUR; up to 55 EUR the kind is Verwarnung", FormatEuro(e.AmountCents))
		case e.AmountCents%100 != 0:
			return fmt.Errorf("a Bußgeld of %s: catalogue fines are whole euros", FormatEuro(e.AmountCents))
		case e.AmountCents > MaxFineCents:
			return fmt.Errorf("a Bußgeld of %s is above %s: check the amount", FormatEuro(e.AmountCents), FormatEuro(MaxFineCents))
		}
	}
	return nil
}

// IsWarningAmount reports whether cents is a lawful warning amount: 5 to
// 55 EUR in steps of 5.
func IsWarningAmount(cents int64) bool {
	return cents >= MinWarningCents && cents <= MaxWarningCents && cents%WarningStepCents == 0
}

// IsTBNR reports whether s is an offence number: six ASCII digits.
func IsTBNR(s string) bool {
	if len(s) != 6 {
		return false
	}
	for i := range len(s) {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

func isQualifier(s string) bool {
	if s == "" || len(s) > 32 {
		return false
	}
	for i := range len(s) {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

// parseEuro reads an amount in euros: "55", "27.50" or "27,50".
func parseEuro(s string) (int64, error) {
	whole, frac, hasFrac := strings.Cut(strings.Replace(s, ",", ".", 1), ".")
	if whole == "" || len(whole) > 7 || !allDigits(whole) || hasFrac && (len(frac) < 1 || len(frac) > 2 || !allDigits(frac)) {
		return 0, fmt.Errorf("%q is not an amount in euros such as 25 or 27.50", clip(s))
	}
	w, _ := strconv.ParseInt(whole, 10, 64)
	cents := w * 100
	if hasFrac {
		f, _ := strconv.ParseInt(frac, 10, 64)
		if len(frac) == 1 {
			f *= 10
		}
		cents += f
	}
	return cents, nil
}

func allDigits(s string) bool {
	for i := range len(s) {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

func smallInt(s string, max int) (int, error) {
	if s == "" {
		return 0, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 || n > max {
		return 0, fmt.Errorf("%q is not a number from 0 to %d", clip(s), max)
	}
	return n, nil
}

// checkText refuses control characters and overlong texts.
func checkText(s string, max int) error {
	if len(s) > max {
		return fmt.Errorf("%d bytes, at most %d", len(s), max)
	}
	for i, r := range s {
		if r < 0x20 || r == 0x7f || r == utf8.RuneError {
			return fmt.Errorf("control or invalid character at byte %d", i)
		}
	}
	return nil
}

// clip shortens a value quoted in an error message.
func clip(s string) string {
	if len(s) <= 40 {
		return s
	}
	r := []rune(s)
	if len(r) > 40 {
		r = r[:40]
	}
	return string(r) + "…"
}

// Version is the catalogue's version; an update must be higher.
func (c *Catalogue) Version() int { return c.version }

// Issued is the date the catalogue was issued (zero if not stated).
func (c *Catalogue) Issued() time.Time { return c.issued }

// Source names the catalogue's source as its header states it.
func (c *Catalogue) Source() string { return c.source }

// Bytes returns the catalogue file, to be stored by a device that took an
// update and read again with ParseCatalogue at the next start.
func (c *Catalogue) Bytes() []byte { return slices.Clone(c.raw) }

// Len is the number of entries over all validity periods.
func (c *Catalogue) Len() int { return len(c.entries) }

// All returns every entry, all validity periods, by TBNR and date.
func (c *Catalogue) All() []Entry {
	out := make([]Entry, len(c.entries))
	for i, e := range c.entries {
		out[i] = e.clone()
	}
	return out
}

// ValidAt returns the entries that apply on the date of t (in t's
// location; pass times in the office's time zone), by TBNR.
func (c *Catalogue) ValidAt(t time.Time) []Entry {
	var out []Entry
	for _, e := range c.entries {
		if e.ValidOn(t) {
			out = append(out, e.clone())
		}
	}
	return out
}

// Lookup returns the entry of tbnr that applies on the date of t (in t's
// location). It fails with ErrUnknownOffence for a TBNR the catalogue
// lacks and ErrNotValid for one that does not apply on that date.
func (c *Catalogue) Lookup(tbnr string, t time.Time) (Entry, error) {
	idx := c.byTBNR[tbnr]
	if len(idx) == 0 {
		return Entry{}, fmt.Errorf("TBNR %s: %w (catalogue version %d); check the number or update the catalogue", clip(tbnr), ErrUnknownOffence, c.version)
	}
	for _, i := range idx {
		if c.entries[i].ValidOn(t) {
			return c.entries[i].clone(), nil
		}
	}
	var periods []string
	for _, i := range idx {
		periods = append(periods, period(c.entries[i]))
	}
	return Entry{}, fmt.Errorf("TBNR %s on %s: %w; it applies %s", tbnr, t.Format(time.DateOnly), ErrNotValid, strings.Join(periods, ", "))
}

// Latest returns the newest entry of tbnr regardless of dates, for
// printing a notice whose date the catalogue no longer covers.
func (c *Catalogue) Latest(tbnr string) (Entry, bool) {
	idx := c.byTBNR[tbnr]
	if len(idx) == 0 {
		return Entry{}, false
	}
	return c.entries[idx[len(idx)-1]].clone(), true
}

// Update reads a newer catalogue (from the twin) and returns it; the
// receiver stays as it is. It fails with ErrNotNewer when the update's
// version is not above the receiver's, and with a *CatalogueError when the
// update is malformed or breaks a rule (see ParseCatalogue).
func (c *Catalogue) Update(b []byte) (*Catalogue, error) {
	next, err := ParseCatalogue(b)
	if err != nil {
		return nil, fmt.Errorf("catalogue update refused, version %d stays in use: %w", c.version, err)
	}
	if next.version <= c.version {
		return nil, fmt.Errorf("catalogue update to version %d refused, version %d stays in use: %w", next.version, c.version, ErrNotNewer)
	}
	return next, nil
}
