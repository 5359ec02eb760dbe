package enforcement

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// segment is a piece of an offence text: literal text, or a placeholder
// with its alternatives.
type segment struct {
	lit  string
	alts []string
}

// parseTemplate splits an offence text into literal text and placeholders
// "<a/b/…>" (at least two alternatives, none empty, no nesting).
func parseTemplate(text string) ([]segment, error) {
	var segs []segment
	rest := text
	for rest != "" {
		open := strings.IndexAny(rest, "<>")
		if open < 0 {
			segs = append(segs, segment{lit: rest})
			break
		}
		if rest[open] == '>' {
			return nil, fmt.Errorf("'>' without '<' at %q", clip(rest[open:]))
		}
		if open > 0 {
			segs = append(segs, segment{lit: rest[:open]})
		}
		end := strings.IndexAny(rest[open+1:], "<>")
		if end < 0 || rest[open+1+end] == '<' {
			return nil, fmt.Errorf("placeholder %q is not closed with '>'", clip(rest[open:]))
		}
		body := rest[open+1 : open+1+end]
		alts := strings.Split(body, "/")
		if len(alts) < 2 {
			return nil, fmt.Errorf("placeholder <%s> offers no alternatives: write <a/b>", clip(body))
		}
		for i, a := range alts {
			alts[i] = strings.TrimSpace(a)
			if alts[i] == "" {
				return nil, fmt.Errorf("placeholder <%s> has an empty alternative", clip(body))
			}
		}
		segs = append(segs, segment{alts: alts})
		rest = rest[open+1+end+1:]
	}
	return segs, nil
}

// Placeholders returns the alternatives of each placeholder of the text,
// in order; nil when the text has none. The warden picks one per
// placeholder (see Fill).
func (e Entry) Placeholders() [][]string {
	segs, _ := parseTemplate(e.Text)
	var out [][]string
	for _, s := range segs {
		if s.alts != nil {
			out = append(out, append([]string(nil), s.alts...))
		}
	}
	return out
}

// Display returns the text for lists: placeholders as "a/b", without
// the marks "+)" and "*)".
func (e Entry) Display() string {
	segs, err := parseTemplate(e.Text)
	if err != nil {
		return stripMarks(e.Text)
	}
	var b strings.Builder
	for _, s := range segs {
		if s.alts != nil {
			b.WriteString(strings.Join(s.alts, "/"))
		} else {
			b.WriteString(s.lit)
		}
	}
	return stripMarks(b.String())
}

// ErrChoice means the alternatives picked for an offence text's
// placeholders do not fit: too few, too many, or not offered.
var ErrChoice = errors.New("placeholder choice does not fit")

// Fill returns the text as printed: each placeholder replaced by the
// alternative chosen for it, the marks "+)" and "*)" removed. A choice is
// an alternative's text (case does not matter) or its position, "1" for
// the first. A text without placeholders takes no choices.
func (e Entry) Fill(choices []string) (string, error) {
	segs, err := parseTemplate(e.Text)
	if err != nil {
		return "", fmt.Errorf("TBNR %s: %w", e.TBNR, err)
	}
	var b strings.Builder
	n := 0
	for _, s := range segs {
		if s.alts == nil {
			b.WriteString(s.lit)
			continue
		}
		if n >= len(choices) {
			return "", fmt.Errorf("TBNR %s: %w: pick one of %s", e.TBNR, ErrChoice, strings.Join(s.alts, " / "))
		}
		alt, ok := pick(s.alts, choices[n])
		if !ok {
			return "", fmt.Errorf("TBNR %s: %w: %q is not one of %s", e.TBNR, ErrChoice, clip(choices[n]), strings.Join(s.alts, " / "))
		}
		b.WriteString(alt)
		n++
	}
	if n < len(choices) {
		return "", fmt.Errorf("TBNR %s: %w: %d choices given, the text has %d placeholders", e.TBNR, ErrChoice, len(choices), n)
	}
	return stripMarks(b.String()), nil
}

// pick finds choice among alts by text or 1-based position.
func pick(alts []string, choice string) (string, bool) {
	choice = strings.TrimSpace(choice)
	if i, err := strconv.Atoi(choice); err == nil && i >= 1 && i <= len(alts) {
		return alts[i-1], true
	}
	for _, a := range alts {
		if strings.EqualFold(a, choice) {
			return a, true
		}
	}
	return "", false
}

// stripMarks removes the catalogue's marks "+)" and "*)" and the doubled
// spaces they leave.
func stripMarks(s string) string {
	s = strings.ReplaceAll(s, "+)", "")
	s = strings.ReplaceAll(s, "*)", "")
	return strings.Join(strings.Fields(s), " ")
}
