package enforcement

import (
	"sort"
	"strings"
	"time"
	"unicode"

	"golang.org/x/text/unicode/norm"
)

// searchDoc is an entry's text prepared for search.
type searchDoc struct {
	words []string // folded words of the display text
}

func (c *Catalogue) buildIndex() {
	c.index = make([]searchDoc, len(c.entries))
	for i, e := range c.entries {
		c.index[i] = searchDoc{words: foldWords(e.Display())}
	}
}

// fold prepares text for comparison: lower case, accents removed (ä → a),
// ß → ss, and the spellings ae, oe, ue taken as a, o, u, so that
// "Fußgängerüberweg", "fussgaengerueberweg" and "FUSSGANGERUBERWEG" are
// the same.
func fold(s string) string {
	var b strings.Builder
	for _, r := range norm.NFD.String(s) {
		switch {
		case unicode.Is(unicode.Mn, r):
			continue
		case r == 'ß' || r == 'ẞ':
			b.WriteString("ss")
		default:
			b.WriteRune(unicode.ToLower(r))
		}
	}
	return spellings.Replace(b.String())
}

// spellings folds the umlaut spellings ae, oe, ue (read only).
var spellings = strings.NewReplacer("ae", "a", "oe", "o", "ue", "u")

// foldWords splits folded text into words of letters and digits.
func foldWords(s string) []string {
	return strings.FieldsFunc(fold(s), func(r rune) bool {
		return !unicode.IsLetter(r) && !unicode.IsDigit(r)
	})
}

// Scores of one query word.
const (
	scoreTBNR       = 100 // the TBNR starts with the word
	scoreWord       = 30  // a word of the text is the query word
	scorePrefix     = 20  // a word of the text starts with it
	scoreSubstring  = 10  // a word of the text contains it (3+ letters)
	minSubstringLen = 3
)

// Search finds the entries valid on the date of at (in at's location)
// that match query, best first, at most limit (all when limit ≤ 0).
//
// A query of digits matches TBNRs by prefix ("14131" finds 141310 …
// 141315, in TBNR order). Words match the offence text regardless of
// case and umlaut spelling ("fussganger", "Fußgänger" and
// "fussgaenger" are alike). Every query word must match; a word that
// equals a word of the text counts most, then a word that starts one, then
// one inside a word (from three letters). Among equal scores the shorter
// text comes first, so a base offence precedes its aggravated variants
// ("… und behinderten dadurch Andere").
func (c *Catalogue) Search(query string, at time.Time, limit int) []Entry {
	q := foldWords(query)
	if len(q) == 0 {
		return nil
	}
	numeric := true
	for _, w := range q {
		numeric = numeric && allDigits(w)
	}
	type hit struct {
		i, score int
	}
	var hits []hit
	for i, e := range c.entries {
		if !e.ValidOn(at) {
			continue
		}
		total := 0
		for _, w := range q {
			s := wordScore(w, e.TBNR, c.index[i].words)
			if s == 0 {
				total = 0
				break
			}
			total += s
		}
		if total > 0 {
			hits = append(hits, hit{i, total})
		}
	}
	sort.SliceStable(hits, func(a, b int) bool {
		ha, hb := hits[a], hits[b]
		if ha.score != hb.score {
			return ha.score > hb.score
		}
		ea, eb := c.entries[ha.i], c.entries[hb.i]
		if !numeric {
			if la, lb := len(c.index[ha.i].words), len(c.index[hb.i].words); la != lb {
				return la < lb
			}
		}
		return ea.TBNR < eb.TBNR
	})
	if limit > 0 && len(hits) > limit {
		hits = hits[:limit]
	}
	out := make([]Entry, len(hits))
	for k, h := range hits {
		out[k] = c.entries[h.i].clone()
	}
	return out
}

func wordScore(w, tbnr string, words []string) int {
	best := 0
	if allDigits(w) && strings.HasPrefix(tbnr, w) {
		best = scoreTBNR
	}
	for _, t := range words {
		switch {
		case t == w:
			best = max(best, scoreWord)
		case strings.HasPrefix(t, w):
			best = max(best, scorePrefix)
		case len(w) >= minSubstringLen && strings.Contains(t, w):
			best = max(best, scoreSubstring)
		}
	}
	return best
}
