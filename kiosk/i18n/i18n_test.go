package i18n

import (
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"slices"
	"strings"
	"testing"
	"testing/fstest"
	"time"
	"unicode"
)

// steps are the catalogue prefixes of the screens the kiosk UI shows, one
// per flow.Step (kiosk/flow/view.go), in the Step order.
var steps = []string{
	"welcome", "language", "documents", "identify", "photo", "photo-choice",
	"finger-right", "finger-left", "signature", "payment", "review",
	"saving", "receipt", "counter", "cancelled", "out-of-service",
}

// guidance are the photo guidance keys listed in kiosk/flow/view.go
// (View.Guidance).
var guidance = []string{
	"photo.too-close", "photo.too-far", "photo.higher", "photo.lower",
	"photo.left", "photo.right", "photo.hold-still", "photo.look-straight",
	"photo.several-faces", "photo.no-face", "photo.eyes-closed",
	"photo.mouth-open", "photo.too-dark", "photo.too-bright", "photo.background",
}

// required are keys beyond the steps' titles and instructions that the
// kiosk cannot do without: buttons, the timeout warning, the document
// kinds and counter items of view.go, the receipt, the admin screen.
var required = []string{
	"ui.cancel", "ui.next", "ui.done", "ui.retry", "ui.text-larger", "ui.text-normal",
	"ui.progress", "ui.attempt", "ui.number", "ui.list-separator",
	"timeout.title", "timeout.remaining", "timeout.continue",
	"welcome.start", "welcome.touch",
	"document.id-card", "document.passport", "document.temporary-id",
	"identify.skip", "photo-choice.item",
	"signature.clear", "signature.here",
	"review.agree", "review.decline", "review.consent",
	"receipt.take", "receipt.printing", "receipt.pay-at-counter", "counter.go", "cancelled.bye",
	"out-of-service.peripheral", "out-of-service.error", "ui.skip", "payment.skip", "identify.pin-ok", "ui.correct",
	"photo.new",
	"counter.items", "counter.face", "counter.finger-2", "counter.finger-7", "counter.signature", "counter.fee",
	"admin.title", "admin.pin", "admin.pin-wrong", "admin.ok", "admin.clear", "admin.close",
	"admin.peripherals", "admin.sync", "admin.connected", "admin.disconnected", "admin.pending",
	"admin.last-sync", "admin.version", "admin.reboot", "admin.reboot-confirm",
	"admin.state.ok", "admin.state.degraded", "admin.state.missing", "admin.state.error",
	"admin.peripheral.camera", "admin.peripheral.fingerprint", "admin.peripheral.printer",
	"admin.peripheral.payment", "admin.peripheral.eid",
}

func requiredKeys() []string {
	keys := slices.Clone(required)
	for _, s := range steps {
		keys = append(keys, s+".title", s+".instruction")
	}
	return append(keys, guidance...)
}

// TestCatalogComplete fails when a key is missing or empty in any language
// or when a message's placeholders differ from the German reference.
func TestCatalogComplete(t *testing.T) {
	c := Default()
	if err := c.Check(requiredKeys()...); err != nil {
		for _, e := range strings.Split(err.Error(), "\n") {
			t.Error(e)
		}
	}
}

func TestLanguages(t *testing.T) {
	want := []string{"de", "en", "tr", "ar", "ru", "uk", "pl"}
	if got := Languages(); !slices.Equal(got, want) {
		t.Fatalf("Languages() = %v, want %v", got, want)
	}
	names := map[string]string{
		"de": "Deutsch", "en": "English", "tr": "Türkçe", "ar": "العربية",
		"ru": "Русский", "uk": "Українська", "pl": "Polski",
	}
	for tag, name := range names {
		if got := Name(tag); got != name {
			t.Errorf("Name(%q) = %q, want %q", tag, got, name)
		}
		wantDir := LTR
		if tag == "ar" {
			wantDir = RTL
		}
		if got := Dir(tag); got != wantDir {
			t.Errorf("Dir(%q) = %v, want %v", tag, got, wantDir)
		}
	}
	if got := Name("xx"); got != "xx" {
		t.Errorf("Name of an unknown tag = %q, want the tag", got)
	}
	if RTL.String() != "rtl" || LTR.String() != "ltr" {
		t.Errorf("Direction strings = %q, %q", LTR, RTL)
	}
}

func TestT(t *testing.T) {
	tests := []struct {
		lang, key string
		args      map[string]string
		want      string
	}{
		{"de", "ui.progress", map[string]string{"progress": "3", "total": "9"}, "Schritt 3 von 9"},
		{"en", "ui.attempt", map[string]string{"attempt": "1", "attempts": "3"}, "Try 1 of 3"},
		{"ar", "ui.progress", map[string]string{"progress": "2", "total": "9"}, "الخطوة 2 من 9"},
		// A placeholder without an argument stays visible.
		{"de", "ui.progress", map[string]string{"progress": "3"}, "Schritt 3 von {total}"},
		// Unknown languages fall back to the reference language.
		{"xx", "ui.cancel", nil, "Abbrechen"},
		// Unknown keys come back as themselves.
		{"en", "no.such-key", nil, "no.such-key"},
		// Arguments are not themselves expanded.
		{"en", "out-of-service.error", map[string]string{"reason": "{reason}"}, "Technical fault. {reason}"},
	}
	for _, tt := range tests {
		if got := T(tt.lang, tt.key, tt.args); got != tt.want {
			t.Errorf("T(%q, %q, %v) = %q, want %q", tt.lang, tt.key, tt.args, got, tt.want)
		}
	}
	c := Default()
	if !c.Has("tr", "ui.cancel") || c.Has("tr", "no.such-key") || c.Has("xx", "ui.cancel") {
		t.Error("Has does not tell known keys from unknown ones")
	}
	if !c.Known("uk") || c.Known("xx") {
		t.Error("Known does not tell known languages from unknown ones")
	}
}

func TestMoney(t *testing.T) {
	tests := []struct {
		lang  string
		cents int64
		want  string
	}{
		{"de", 600, "6,00\u00a0€"},
		{"de", 3700, "37,00\u00a0€"},
		{"de", 123456789, "1.234.567,89\u00a0€"},
		{"en", 600, "€6.00"},
		{"en", 123456, "€1,234.56"},
		{"tr", 1205, "€12,05"},
		{"ar", 600, "6.00\u00a0€"},
		{"ru", 250000, "2\u00a0500,00\u00a0€"},
		{"uk", 5, "0,05\u00a0€"},
		{"pl", 0, "0,00\u00a0€"},
		{"de", -150, "-1,50\u00a0€"},
		{"en", -9223372036854775808, "€-92,233,720,368,547,758.08"},
	}
	for _, tt := range tests {
		if got := Money(tt.lang, tt.cents); got != tt.want {
			t.Errorf("Money(%q, %d) = %q, want %q", tt.lang, tt.cents, got, tt.want)
		}
	}
}

func TestDateTime(t *testing.T) {
	at := time.Date(2026, 3, 7, 9, 5, 0, 0, time.UTC)
	c := Default()
	for lang, want := range map[string]string{"de": "07.03.2026, 09:05", "en": "07/03/2026, 09:05", "ar": "07/03/2026 09:05"} {
		if got := c.DateTime(lang, at); got != want {
			t.Errorf("DateTime(%q) = %q, want %q", lang, got, want)
		}
	}
}

func TestPlaceholders(t *testing.T) {
	got := Placeholders("{b} and {a}, {b} again, not {A} nor {}")
	if want := []string{"a", "b"}; !slices.Equal(got, want) {
		t.Errorf("Placeholders = %v, want %v", got, want)
	}
}

// langFile builds a valid language file with the given messages.
func langFile(tag string, order int, msgs map[string]string) string {
	b, err := json.Marshal(map[string]any{
		"tag": tag, "name": "Name " + tag, "dir": "ltr", "order": order,
		"money":    map[string]string{"pattern": "{amount} €", "decimal": ",", "group": "."},
		"dateTime": "02.01.2006", "messages": msgs,
	})
	if err != nil {
		panic(err)
	}
	return string(b)
}

func TestCheckFindsProblems(t *testing.T) {
	fsys := fstest.MapFS{
		"aa.json": {Data: []byte(langFile("aa", 1, map[string]string{
			"one": "One {n}", "two": "Two", "three": "Three",
		}))},
		"bb.json": {Data: []byte(langFile("bb", 2, map[string]string{
			"one": "Eins {m}", "two": "  ", "four": "Vier",
		}))},
	}
	c, err := Load(fsys)
	if err != nil {
		t.Fatal(err)
	}
	if got := c.Languages(); !slices.Equal(got, []string{"aa", "bb"}) {
		t.Fatalf("Languages = %v", got)
	}
	err = c.Check("one", "five")
	if err == nil {
		t.Fatal("Check found nothing wrong")
	}
	for _, want := range []string{
		`aa: required key "five" is missing`,
		`bb: key "three" is missing`,
		`bb: key "two" is empty`,
		`bb: key "one" has placeholders [m], the reference aa has [n]`,
		`bb: key "four" is not in the reference aa`,
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("Check error lacks %q; got:\n%v", want, err)
		}
	}
	// The reference language answers for keys another one lacks.
	if got := c.T("bb", "three", nil); got != "Three" {
		t.Errorf("fallback to the reference = %q", got)
	}
}

func TestLoadRejects(t *testing.T) {
	good := langFile("de", 1, map[string]string{"a": "b"})
	tests := []struct {
		name, file, data, want string
	}{
		{"syntax", "de.json", `{"tag": "de",`, "decode JSON"},
		{"unknown field", "de.json", strings.Replace(good, `"tag"`, `"colour":1,"tag"`, 1), "unknown field"},
		{"trailing data", "de.json", good + `{}`, "after the top-level object"},
		{"tag and file name differ", "en.json", good, "does not match the file name"},
		{"bad tag", "de.json", strings.Replace(good, `"tag":"de"`, `"tag":"Deutsch"`, 1), "not a BCP 47"},
		{"no name", "de.json", strings.Replace(good, `"name":"Name de"`, `"name":" "`, 1), `"name" is empty`},
		{"bad dir", "de.json", strings.Replace(good, `"dir":"ltr"`, `"dir":"up"`, 1), `"dir" is "up"`},
		{"no amount", "de.json", strings.Replace(good, `{amount} €`, `€`, 1), "{amount}"},
		{"no decimal", "de.json", strings.Replace(good, `"decimal":","`, `"decimal":""`, 1), "decimal"},
		{"no messages", "de.json", strings.Replace(good, `"messages":{"a":"b"}`, `"messages":{}`, 1), `"messages" is empty`},
		{"bad key", "de.json", strings.Replace(good, `{"a":"b"}`, `{"A B":"b"}`, 1), "message key"},
		{"no date layout", "de.json", strings.Replace(good, `"dateTime":"02.01.2006"`, `"dateTime":""`, 1), "dateTime"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Load(fstest.MapFS{tt.file: {Data: []byte(tt.data)}})
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Load error = %v, want one containing %q", err, tt.want)
			}
		})
	}
	if _, err := Load(fstest.MapFS{}); err == nil {
		t.Error("Load of an empty directory succeeded")
	}
	if _, err := Load(fstest.MapFS{"de.json": {Data: []byte(good)}}); err != nil {
		t.Errorf("Load of a good file: %v", err)
	}
}

// sameAsEnglish are messages that may read the same as in English.
var sameAsEnglish = map[string][]string{
	"admin.ok":          {"de"},
	"ui.list-separator": {"de", "tr", "ru", "uk", "pl"},
}

// scriptFree are messages that need no letter of the language's script.
var scriptFree = []string{"ui.list-separator"}

// TestRealTranslations fails when a language copies English text instead
// of translating it, or writes in the wrong script.
func TestRealTranslations(t *testing.T) {
	c := Default()
	script := map[string]*unicode.RangeTable{"ar": unicode.Arabic, "ru": unicode.Cyrillic, "uk": unicode.Cyrillic}
	for _, lang := range c.Languages() {
		if lang == "en" {
			continue
		}
		for _, k := range c.Keys(lang) {
			msg := c.T(lang, k, nil)
			if msg == c.T("en", k, nil) && !slices.Contains(sameAsEnglish[k], lang) {
				t.Errorf("%s: %q is the English text %q; translate it", lang, k, msg)
			}
			if tab, ok := script[lang]; ok && !slices.Contains(scriptFree, k) && !strings.ContainsFunc(msg, func(r rune) bool { return unicode.Is(tab, r) }) {
				t.Errorf("%s: %q = %q has no letter of the language's script", lang, k, msg)
			}
		}
	}
}

// TestNoDuplicateKeys catches a key written twice in one file, which JSON
// decoding would silently resolve to the last one.
func TestNoDuplicateKeys(t *testing.T) {
	names, err := fs.Glob(embedded, "locales/*.json")
	if err != nil || len(names) == 0 {
		t.Fatalf("no embedded language files: %v", err)
	}
	for _, name := range names {
		data, err := embedded.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		if dups := duplicateKeys(t, data); len(dups) > 0 {
			t.Errorf("%s: keys written more than once: %v", name, dups)
		}
	}
}

// duplicateKeys walks the JSON tokens and returns every object key that
// occurs twice in the same object.
func duplicateKeys(t *testing.T, data []byte) []string {
	t.Helper()
	dec := json.NewDecoder(strings.NewReader(string(data)))
	type frame struct {
		seen      map[string]bool
		object    bool
		expectKey bool
	}
	var stack []*frame
	var dups []string
	for {
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) {
			return dups
		}
		if err != nil {
			t.Fatal(err)
		}
		var top *frame
		if len(stack) > 0 {
			top = stack[len(stack)-1]
		}
		switch v := tok.(type) {
		case json.Delim:
			switch v {
			case '{', '[':
				if top != nil && top.object {
					top.expectKey = true
				}
				stack = append(stack, &frame{seen: map[string]bool{}, object: v == '{', expectKey: v == '{'})
			default:
				stack = stack[:len(stack)-1]
			}
		case string:
			if top != nil && top.object && top.expectKey {
				if top.seen[v] {
					dups = append(dups, v)
				}
				top.seen[v] = true
				top.expectKey = false
				continue
			}
			if top != nil && top.object {
				top.expectKey = true
			}
		default:
			if top != nil && top.object {
				top.expectKey = true
			}
		}
	}
}

func TestDefaultIsShared(t *testing.T) {
	first, second := Default(), Default()
	if first != second {
		t.Error("Default builds a new catalogue on every call")
	}
}

func FuzzParse(f *testing.F) {
	data, err := embedded.ReadFile("locales/de.json")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(data)
	f.Add([]byte(langFile("en", 1, map[string]string{"a": "{b}"})))
	f.Add([]byte(`{"tag":"de","messages":null}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, data []byte) {
		l, err := parse(data)
		if err != nil {
			if l != nil {
				t.Fatal("parse returned a language with an error")
			}
			return
		}
		if l.tag == "" || l.name == "" || len(l.messages) == 0 || !strings.Contains(l.money.Pattern, "{amount}") {
			t.Fatalf("parse accepted an incomplete language: %+v", l)
		}
		c := &Catalog{order: []string{l.tag}, langs: map[string]*language{l.tag: l}}
		for k := range l.messages {
			_ = c.T(l.tag, k, map[string]string{"amount": "1"})
		}
		_ = c.Money(l.tag, 123456)
		_ = c.Check()
	})
}
