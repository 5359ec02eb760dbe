// Package i18n is the kiosk's message catalogue: every string the citizen
// or the office staff read on the terminal, in German, English, Turkish,
// Arabic, Russian, Ukrainian and Polish.
//
// The catalogue is data, not code: one JSON file per language in
// locales/ (embedded into the binary), so translators can edit them
// without touching Go. A file holds the language's own name, its writing
// direction, how it writes euro amounts and times, and its messages:
//
//	{
//	  "tag": "de", "name": "Deutsch", "dir": "ltr", "order": 1,
//	  "money": {"pattern": "{amount} €", "decimal": ",", "group": "."},
//	  "dateTime": "02.01.2006 15:04",
//	  "messages": {"payment.instruction": "Die Gebühr beträgt {amount}. …"}
//	}
//
// Messages carry named placeholders in braces ({number}, {amount},
// {remaining} …) that T fills from its args. Every language must have
// every key of the reference language (the first in order), none empty,
// with the same placeholders; Check reports what is not so, and the
// package's tests run it on the embedded files.
package i18n

import (
	"bytes"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

//go:embed locales/*.json
var embedded embed.FS

// Direction is a language's writing direction.
type Direction int

const (
	// LTR is left to right (German, English, …).
	LTR Direction = iota
	// RTL is right to left (Arabic).
	RTL
)

// String returns "ltr" or "rtl".
func (d Direction) String() string {
	if d == RTL {
		return "rtl"
	}
	return "ltr"
}

// Catalog holds the messages of several languages. It is immutable once
// loaded and safe for concurrent use.
type Catalog struct {
	order []string // tags in display order; order[0] is the reference
	langs map[string]*language
}

type language struct {
	tag, name string
	dir       Direction
	order     int
	money     moneyFormat
	dateTime  string
	messages  map[string]string
}

type moneyFormat struct {
	Pattern string `json:"pattern"`
	Decimal string `json:"decimal"`
	Group   string `json:"group"`
}

// file is the JSON form of one language file.
type file struct {
	Tag      string            `json:"tag"`
	Name     string            `json:"name"`
	Dir      string            `json:"dir"`
	Order    int               `json:"order"`
	Money    moneyFormat       `json:"money"`
	DateTime string            `json:"dateTime"`
	Messages map[string]string `json:"messages"`
}

// maxFileSize bounds one language file; the real ones are a few KiB.
const maxFileSize = 1 << 20

var (
	tagPattern         = regexp.MustCompile(`^[a-z]{2,3}(-[A-Za-z0-9]{2,8})*$`)
	keyPattern         = regexp.MustCompile(`^[a-z0-9][a-z0-9.-]*$`)
	placeholderPattern = regexp.MustCompile(`\{([a-z][a-z0-9-]*)\}`)
)

var defaultCatalog = sync.OnceValues(func() (*Catalog, error) {
	sub, err := fs.Sub(embedded, "locales")
	if err != nil {
		return nil, err
	}
	return Load(sub)
})

// Default returns the catalogue built into the binary. The embedded files
// are checked by this package's tests, so an error here means a broken
// build; Default panics on it rather than show a half-translated screen.
func Default() *Catalog {
	c, err := defaultCatalog()
	if err != nil {
		panic(fmt.Sprintf("i18n: embedded catalogue is broken (fix kiosk/i18n/locales and run its tests): %v", err))
	}
	return c
}

// Load reads every *.json file at the root of fsys as one language. It
// fails on a file that is not valid (syntax, unknown fields, a tag that
// does not match the file name, a missing name, money pattern or
// direction); it does not check completeness: run Check for that.
func Load(fsys fs.FS) (*Catalog, error) {
	names, err := fs.Glob(fsys, "*.json")
	if err != nil {
		return nil, fmt.Errorf("list language files: %w", err)
	}
	if len(names) == 0 {
		return nil, errors.New("load catalogue: no language files (*.json) found")
	}
	c := &Catalog{langs: map[string]*language{}}
	for _, name := range names {
		data, err := fs.ReadFile(fsys, name)
		if err != nil {
			return nil, fmt.Errorf("read language file %s: %w", name, err)
		}
		l, err := parse(data)
		if err != nil {
			return nil, fmt.Errorf("language file %s: %w", name, err)
		}
		if want := strings.TrimSuffix(path.Base(name), ".json"); l.tag != want {
			return nil, fmt.Errorf("language file %s: tag %q does not match the file name; name the file %s.json", name, l.tag, l.tag)
		}
		c.langs[l.tag] = l
		c.order = append(c.order, l.tag)
	}
	sort.SliceStable(c.order, func(i, j int) bool {
		a, b := c.langs[c.order[i]], c.langs[c.order[j]]
		if a.order != b.order {
			return a.order < b.order
		}
		return a.tag < b.tag
	})
	return c, nil
}

// parse decodes one language file.
func parse(data []byte) (*language, error) {
	if len(data) > maxFileSize {
		return nil, fmt.Errorf("file is %d bytes, more than the %d allowed", len(data), maxFileSize)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var f file
	if err := dec.Decode(&f); err != nil {
		return nil, fmt.Errorf("decode JSON: %w", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, errors.New("decode JSON: data after the top-level object")
	}
	l := &language{tag: f.Tag, name: strings.TrimSpace(f.Name), order: f.Order, money: f.Money, dateTime: f.DateTime, messages: f.Messages}
	switch {
	case !tagPattern.MatchString(f.Tag):
		return nil, fmt.Errorf("tag %q is not a BCP 47 language tag such as \"de\" or \"pt-BR\"", f.Tag)
	case l.name == "":
		return nil, errors.New(`"name" is empty: give the language's own name, e.g. "Deutsch"`)
	case f.Money.Pattern == "" || strings.Count(f.Money.Pattern, "{amount}") != 1:
		return nil, errors.New(`money "pattern" must contain {amount} once, e.g. "{amount} €"`)
	case f.Money.Decimal == "":
		return nil, errors.New(`money "decimal" separator is empty`)
	case f.DateTime == "":
		return nil, errors.New(`"dateTime" layout is empty; use Go's reference time, e.g. "02.01.2006 15:04"`)
	case len(f.Messages) == 0:
		return nil, errors.New(`"messages" is empty`)
	}
	switch f.Dir {
	case "ltr":
		l.dir = LTR
	case "rtl":
		l.dir = RTL
	default:
		return nil, fmt.Errorf(`"dir" is %q; use "ltr" or "rtl"`, f.Dir)
	}
	for k := range f.Messages {
		if !keyPattern.MatchString(k) {
			return nil, fmt.Errorf("message key %q: use lower-case letters, digits, dots and dashes", k)
		}
	}
	return l, nil
}

// Languages lists the catalogue's language tags in display order; the
// first is the reference language and the fallback.
func (c *Catalog) Languages() []string { return slices.Clone(c.order) }

// lang returns the language for tag, falling back to the reference
// language for an unknown tag.
func (c *Catalog) lang(tag string) *language {
	if l, ok := c.langs[tag]; ok {
		return l
	}
	return c.langs[c.order[0]]
}

// Known reports whether the catalogue has the language tag.
func (c *Catalog) Known(tag string) bool {
	_, ok := c.langs[tag]
	return ok
}

// Has reports whether key has a message in the language (not counting
// the fallback).
func (c *Catalog) Has(tag, key string) bool {
	l, ok := c.langs[tag]
	if !ok {
		return false
	}
	_, ok = l.messages[key]
	return ok
}

// T returns the message key in the language, with every {placeholder}
// that args names replaced. A key the language lacks comes from the
// reference language; a key no language has comes back as the key
// itself, so the gap is visible and Check finds it. Placeholders args
// does not name stay as they are.
func (c *Catalog) T(tag, key string, args map[string]string) string {
	msg, ok := c.lang(tag).messages[key]
	if !ok {
		msg, ok = c.langs[c.order[0]].messages[key]
	}
	if !ok {
		return key
	}
	if len(args) == 0 || !strings.Contains(msg, "{") {
		return msg
	}
	return placeholderPattern.ReplaceAllStringFunc(msg, func(m string) string {
		if v, ok := args[m[1:len(m)-1]]; ok {
			return v
		}
		return m
	})
}

// Name returns the language's own name ("Deutsch", "Türkçe",
// "العربية"), or the tag for an unknown language.
func (c *Catalog) Name(tag string) string {
	if l, ok := c.langs[tag]; ok {
		return l.name
	}
	return tag
}

// Dir returns the language's writing direction.
func (c *Catalog) Dir(tag string) Direction { return c.lang(tag).dir }

// Money formats an amount in euro cents the way the language writes it
// ("6,00 €", "€6.00").
func (c *Catalog) Money(tag string, cents int64) string {
	f := c.lang(tag).money
	sign := ""
	u := uint64(cents)
	if cents < 0 {
		sign = "-"
		u = uint64(-(cents + 1)) + 1 // no overflow at math.MinInt64
	}
	whole := strconv.FormatUint(u/100, 10)
	var b strings.Builder
	for i, r := range whole {
		if i > 0 && (len(whole)-i)%3 == 0 {
			b.WriteString(f.Group)
		}
		b.WriteRune(r)
	}
	amount := fmt.Sprintf("%s%s%s%02d", sign, b.String(), f.Decimal, u%100)
	return strings.Replace(f.Pattern, "{amount}", amount, 1)
}

// DateTime formats a time the way the language writes date and time.
func (c *Catalog) DateTime(tag string, t time.Time) string {
	return t.Format(c.lang(tag).dateTime)
}

// Keys lists the language's message keys, sorted.
func (c *Catalog) Keys(tag string) []string {
	l, ok := c.langs[tag]
	if !ok {
		return nil
	}
	keys := make([]string, 0, len(l.messages))
	for k := range l.messages {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// Placeholders returns the names of the {placeholders} in msg, sorted and
// without duplicates.
func Placeholders(msg string) []string {
	var names []string
	for _, m := range placeholderPattern.FindAllStringSubmatch(msg, -1) {
		names = append(names, m[1])
	}
	sort.Strings(names)
	return slices.Compact(names)
}

// Check compares every language with the reference language (the first)
// and with the keys a caller requires (required may be nil). It reports,
// one error per problem, each key that is missing, extra or empty, and
// each message whose placeholders differ from the reference's.
func (c *Catalog) Check(required ...string) error {
	ref := c.langs[c.order[0]]
	var errs []error
	for _, k := range required {
		if _, ok := ref.messages[k]; !ok {
			errs = append(errs, fmt.Errorf("%s: required key %q is missing", ref.tag, k))
		}
	}
	for _, tag := range c.order {
		l := c.langs[tag]
		for _, k := range sortedKeys(ref.messages) {
			msg, ok := l.messages[k]
			switch {
			case !ok:
				errs = append(errs, fmt.Errorf("%s: key %q is missing", tag, k))
				continue
			case strings.TrimSpace(msg) == "":
				errs = append(errs, fmt.Errorf("%s: key %q is empty", tag, k))
				continue
			}
			if want, got := Placeholders(ref.messages[k]), Placeholders(msg); !slices.Equal(want, got) {
				errs = append(errs, fmt.Errorf("%s: key %q has placeholders %v, the reference %s has %v", tag, k, got, ref.tag, want))
			}
		}
		for _, k := range sortedKeys(l.messages) {
			if _, ok := ref.messages[k]; !ok {
				errs = append(errs, fmt.Errorf("%s: key %q is not in the reference %s; add it there or remove it", tag, k, ref.tag))
			}
		}
	}
	return errors.Join(errs...)
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// The functions below use the built-in catalogue (Default).

// T returns the message key in the language with args filled in; see
// Catalog.T.
func T(lang, key string, args map[string]string) string { return Default().T(lang, key, args) }

// Languages lists the built-in languages in display order.
func Languages() []string { return Default().Languages() }

// Dir returns the language's writing direction.
func Dir(lang string) Direction { return Default().Dir(lang) }

// Name returns the language's own name.
func Name(lang string) string { return Default().Name(lang) }

// Money formats euro cents for the language.
func Money(lang string, cents int64) string { return Default().Money(lang, cents) }
