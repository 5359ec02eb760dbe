package enforcement

import (
	"errors"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/kogge-fleet/kogge/protocol/casefile"
)

// Germany is the nationality code of German plates.
const Germany = "D"

// MaxGermanPlate is the most characters of a German plate's district code
// and identification number together (FZV: "nicht mehr als acht
// Zeichen"). The E or H suffix is a letter after the number and is not
// counted.
const MaxGermanPlate = 8

// maxPlateInput bounds what a plate parser reads.
const maxPlateInput = 64

// ErrPlate means a plate does not have the form of its nationality.
var ErrPlate = errors.New("invalid licence plate")

// Plate is a licence plate as a warden records it: the nationality and
// the plate without separators, upper case.
type Plate struct {
	// Nationality is the international vehicle registration code ("D",
	// "NL", "PL").
	Nationality string
	// Text is the plate without separators ("HBAB123E").
	Text string

	// German plates: the district code's length, when known (the warden
	// typed a separator after it, or only one split is possible); 0 when
	// "HBAB123" could be HB-AB 123 or HBA-B 123. digits is the offset of
	// the number, suffix whether an E or H follows it, federal whether it
	// is a federal plate of digits only.
	district int
	digits   int
	suffix   bool
	federal  bool
}

// Casefile returns the plate as the case record holds it.
func (p Plate) Casefile() casefile.Plate {
	return casefile.Plate{Text: p.Text, Nationality: p.Nationality, Display: p.String()}
}

// String returns the plate as printed: "HB-AB 123 E" for a German plate
// whose district code is known, "HBAB 123 E" when it is not, "Y-123456"
// for a numbered official plate; a foreign plate as recorded.
func (p Plate) String() string {
	if p.Nationality != Germany || p.digits == 0 {
		return p.Text
	}
	letters, rest := p.Text[:p.digits], p.Text[p.digits:]
	num, suffix := rest, ""
	if p.suffix {
		num, suffix = rest[:len(rest)-1], " "+rest[len(rest)-1:]
	}
	if p.federal {
		return letters + "-" + num
	}
	if p.district > 0 {
		return letters[:p.district] + "-" + letters[p.district:] + " " + num + suffix
	}
	return letters + " " + num + suffix
}

// specialDistricts are the codes of federal plates whose identification
// number is digits only, at most six (FZV § 8, Anlage 3): Bundestag and
// federal administration, federal police, Bundeswehr, waterways
// administration, THW.
var specialDistricts = map[string]struct{}{
	"BD": {}, "BG": {}, "BP": {}, "BW": {}, "THW": {}, "Y": {},
}

// ParsePlate reads a plate of a nationality ("" means Germany). German
// plates are checked strictly (see ParseGermanPlate); foreign plates
// leniently (see ParseForeignPlate).
func ParsePlate(nationality, input string) (Plate, error) {
	nat := strings.ToUpper(strings.TrimSpace(nationality))
	if nat == "" || nat == Germany {
		return ParseGermanPlate(input)
	}
	return ParseForeignPlate(nat, input)
}

// ParseGermanPlate reads a German plate as a warden types it: "HB-AB 123",
// "hb ab123e", "HBAB123" (any case, separators '-' and space optional)
// and returns it normalised. The plate is a district code of 1–3 letters
// (Ä, Ö, Ü allowed), 1–2 letters (no umlauts), a number of 1–4 digits
// without a leading zero, and optionally E (electric) or H (historic);
// district, letters and number have at most MaxGermanPlate characters.
// Federal plates (BD, BG, BP, BW, THW, Y) have a number of 1–6 digits
// and no letters. Diplomatic plates (0-…) are not accepted.
func ParseGermanPlate(input string) (Plate, error) {
	groups, err := plateGroups(input, true)
	if err != nil {
		return Plate{}, err
	}
	fail := func(format string, args ...any) (Plate, error) {
		return Plate{}, fmt.Errorf("%w: %q: %s (German plates: district, 1–2 letters, 1–4 digits, optional E or H, e.g. HB-AB 123)", ErrPlate, clip(input), fmt.Sprintf(format, args...))
	}
	// groups alternate letters and digits; separators split groups of
	// one class too ("HB AB").
	var letters, digits []string
	var suffix string
	for i, g := range groups {
		switch {
		case isDigitGroup(g) && suffix == "":
			digits = append(digits, g)
		case len(digits) == 0:
			letters = append(letters, g)
		case suffix == "" && i == len(groups)-1 && (g == "E" || g == "H"):
			suffix = g
		default:
			return fail("%q after the number", g)
		}
	}
	switch {
	case len(letters) == 0:
		return fail("no district code")
	case len(digits) == 0:
		return fail("no number")
	case len(letters) > 2:
		return fail("too many groups of letters")
	}
	p, err := germanOrdinary(letters, digits, suffix, fail)
	if err == nil {
		return p, nil
	}
	if _, special := specialDistricts[letters[0]]; special && len(letters) == 1 {
		if sp, spErr := germanFederal(letters[0], digits, suffix, fail); spErr == nil {
			return sp, nil
		}
	}
	return Plate{}, err
}

type plateFail func(format string, args ...any) (Plate, error)

// germanFederal checks a federal plate: a special district code and a
// number of 1–6 digits.
func germanFederal(district string, digits []string, suffix string, fail plateFail) (Plate, error) {
	num := strings.Join(digits, "")
	switch {
	case len(digits) > 2 || len(num) > 6:
		return fail("a federal plate has a number of at most six digits")
	case num[0] == '0':
		return fail("the number starts with 0")
	case suffix != "":
		return fail("a federal plate has no E or H")
	}
	return Plate{Nationality: Germany, Text: district + num, digits: len(district), federal: true}, nil
}

// germanOrdinary checks a plate of district code, letters and number.
func germanOrdinary(letters, digits []string, suffix string, fail plateFail) (Plate, error) {
	if len(digits) > 1 {
		return fail("the number is split")
	}
	num := digits[0]
	switch {
	case len(num) > 4:
		return fail("the number has %d digits, at most 4", len(num))
	case num[0] == '0':
		return fail("the number starts with 0")
	}
	var district int
	run := strings.Join(letters, "")
	n := utf8.RuneCountInString(run)
	if len(letters) == 2 {
		if err := checkDistrict(letters[0]); err != nil {
			return fail("%v", err)
		}
		if err := checkLetters(letters[1]); err != nil {
			return fail("%v", err)
		}
		district = len(letters[0])
	} else {
		// One run of letters: find the splits into a district code of 1–3
		// and 1–2 letters; the plate is valid if one exists.
		runes := []rune(run)
		var splits []int
		for d := 1; d <= 3; d++ {
			l := n - d
			if l < 1 || l > 2 {
				continue
			}
			if checkDistrict(string(runes[:d])) == nil && checkLetters(string(runes[d:])) == nil {
				splits = append(splits, len(string(runes[:d])))
			}
		}
		switch {
		case len(splits) == 0 && n < 2:
			return fail("district code and letters are both needed")
		case len(splits) == 0:
			return fail("%q is not a district code (1–3 letters) followed by 1–2 letters without umlauts", run)
		case len(splits) == 1:
			district = splits[0]
		}
	}
	if total := n + len(num); total > MaxGermanPlate {
		return fail("%d characters, at most %d without E or H", total, MaxGermanPlate)
	}
	return Plate{Nationality: Germany, Text: run + num + suffix, district: district, digits: len(run), suffix: suffix != ""}, nil
}

func checkDistrict(s string) error {
	n := 0
	for _, r := range s {
		n++
		if !(r >= 'A' && r <= 'Z' || r == 'Ä' || r == 'Ö' || r == 'Ü') {
			return fmt.Errorf("district code %q has %q", s, r)
		}
	}
	if n < 1 || n > 3 {
		return fmt.Errorf("district code %q has %d letters, 1 to 3", s, n)
	}
	return nil
}

func checkLetters(s string) error {
	n := 0
	for _, r := range s {
		n++
		if r < 'A' || r > 'Z' {
			return fmt.Errorf("letters %q: only A–Z after the district code", s)
		}
	}
	if n < 1 || n > 2 {
		return fmt.Errorf("%d letters %q after the district code, want 1 or 2", n, s)
	}
	return nil
}

func isDigitGroup(g string) bool { return g != "" && allDigits(g) }

// plateGroups upper-cases input and splits it at separators (space, '-',
// '.', '·') and at changes between letters and digits. It refuses other
// characters and overlong input.
func plateGroups(input string, umlauts bool) ([]string, error) {
	if len(input) > maxPlateInput {
		return nil, fmt.Errorf("%w: %d bytes entered, at most %d", ErrPlate, len(input), maxPlateInput)
	}
	if !utf8.ValidString(input) {
		return nil, fmt.Errorf("%w: not valid text", ErrPlate)
	}
	var groups []string
	var cur strings.Builder
	curDigit := false
	flush := func() {
		if cur.Len() > 0 {
			groups = append(groups, cur.String())
			cur.Reset()
		}
	}
	for _, r := range input {
		r = unicode.ToUpper(r)
		switch {
		case r == ' ' || r == '-' || r == '.' || r == '·' || r == '\t' || r == '\u00a0' || r == '–':
			flush()
		case r >= '0' && r <= '9', r >= 'A' && r <= 'Z', umlauts && (r == 'Ä' || r == 'Ö' || r == 'Ü'):
			digit := r >= '0' && r <= '9'
			if cur.Len() > 0 && digit != curDigit {
				flush()
			}
			curDigit = digit
			cur.WriteRune(r)
		default:
			return nil, fmt.Errorf("%w: %q: the character %q is not allowed on a plate", ErrPlate, clip(input), r)
		}
	}
	flush()
	if len(groups) == 0 {
		return nil, fmt.Errorf("%w: empty", ErrPlate)
	}
	return groups, nil
}

// ParseForeignPlate reads the plate of a foreign vehicle leniently:
// nationality is its registration code (1–3 letters A–Z), the plate upper
// case A–Z and 0–9 with separators (space, '-', '.', '·') that are
// dropped. Its length without separators must lie within the bounds of the
// nationality (see Nationalities); codes not in that list take 1–12.
func ParseForeignPlate(nationality, input string) (Plate, error) {
	nat := strings.ToUpper(strings.TrimSpace(nationality))
	if nat == Germany || nat == "" {
		return Plate{}, fmt.Errorf("%w: nationality %q is Germany: use ParseGermanPlate", ErrPlate, nat)
	}
	if l := len(nat); l < 1 || l > 3 || !isUpperAZ(nat) {
		return Plate{}, fmt.Errorf("%w: nationality %q is not a registration code of 1–3 letters (e.g. NL, PL, CH)", ErrPlate, clip(nationality))
	}
	groups, err := plateGroups(input, false)
	if err != nil {
		return Plate{}, err
	}
	text := strings.Join(groups, "")
	lo, hi := 1, 12
	if n, ok := nationalityByCode(nat); ok {
		lo, hi = n.MinLen, n.MaxLen
	}
	if len(text) < lo || len(text) > hi {
		return Plate{}, fmt.Errorf("%w: %q: %d characters; plates of %s have %d to %d", ErrPlate, clip(input), len(text), nat, lo, hi)
	}
	return Plate{Nationality: nat, Text: text}, nil
}

func isUpperAZ(s string) bool {
	for i := range len(s) {
		if s[i] < 'A' || s[i] > 'Z' {
			return false
		}
	}
	return s != ""
}
