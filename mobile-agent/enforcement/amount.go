package enforcement

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Assessment is what a case costs: the applicable amount and how the case
// is dealt with.
type Assessment struct {
	// AmountCents is the applicable amount in euro cents.
	AmountCents int64
	// Sanction is Warning when the amount is a lawful warning amount (5 to
	// 55 EUR in steps of 5) and every offence is a warning offence;
	// otherwise Fine: the case goes to the fine office and no warning is
	// printed.
	Sanction Sanction
	// Lead is the offence whose amount applies.
	Lead Entry
	// Entries are the case's offences, in the order given.
	Entries []Entry
	// Texts are the offence texts as printed (placeholders filled),
	// parallel to Entries; set by Issuer.Check.
	Texts []string
}

// ErrNoOffence means a case names no offence.
var ErrNoOffence = errors.New("no offence")

// Assess returns the applicable amount for offences that one act of the
// driver committed together (Tateinheit, § 19 OWiG: one act, one sanction
// from the provision with the highest amount). Kogge applies the highest
// single standard amount; on equal amounts the first offence given leads.
// It does not add amounts: offences from separate acts (Tatmehrheit,
// § 20 OWiG), such as parking on the footway and, later, elsewhere, are
// separate cases with separate notices. Aggravated variants (obstruction,
// over one hour) are catalogue entries of their own with their own
// amounts, so picking the variant is what raises the amount.
//
// The sanction follows the amount: up to 55 EUR a warning (the amount
// must be 5–55 EUR in steps of 5), above it a fine; a fine offence makes
// the case a fine even if its amount were lower.
func Assess(entries []Entry) (Assessment, error) {
	if len(entries) == 0 {
		return Assessment{}, fmt.Errorf("assess: %w: pick at least one offence", ErrNoOffence)
	}
	a := Assessment{Entries: append([]Entry(nil), entries...)}
	seen := map[string]bool{}
	fine := false
	for i, e := range entries {
		if seen[e.TBNR] {
			return Assessment{}, fmt.Errorf("assess: offence %s given twice; one act is one offence per TBNR", e.TBNR)
		}
		seen[e.TBNR] = true
		if e.AmountCents <= 0 {
			return Assessment{}, fmt.Errorf("assess: offence %s has no amount", e.TBNR)
		}
		if i == 0 || e.AmountCents > a.AmountCents {
			a.AmountCents, a.Lead = e.AmountCents, e
		}
		fine = fine || e.Sanction == Fine
	}
	switch {
	case fine || a.AmountCents > MaxWarningCents:
		a.Sanction = Fine
	case IsWarningAmount(a.AmountCents):
		a.Sanction = Warning
	default:
		return Assessment{}, fmt.Errorf("assess: %s is not a warning amount (5 to 55 EUR in steps of 5); check the catalogue entry %s", FormatEuro(a.AmountCents), a.Lead.TBNR)
	}
	return a, nil
}

// FormatEuro formats cents in the German notation: "25,00 €",
// "1.250,00 €".
func FormatEuro(cents int64) string {
	return formatAmount(cents, ",", ".") + " €"
}

// formatAmount renders cents as euros with the decimal mark dec and the
// thousands separator sep (none if "").
func formatAmount(cents int64, dec, sep string) string {
	neg := cents < 0
	if neg {
		cents = -cents
	}
	whole := strconv.FormatInt(cents/100, 10)
	if sep != "" && len(whole) > 3 {
		var b strings.Builder
		lead := len(whole) % 3
		if lead > 0 {
			b.WriteString(whole[:lead])
		}
		for i := lead; i < len(whole); i += 3 {
			if b.Len() > 0 {
				b.WriteString(sep)
			}
			b.WriteString(whole[i : i+3])
		}
		whole = b.String()
	}
	s := fmt.Sprintf("%s%s%02d", whole, dec, cents%100)
	if neg {
		s = "-" + s
	}
	return s
}
