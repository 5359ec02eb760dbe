package ui

import (
	"fmt"
	"image"
	"slices"
	"strconv"
	"strings"
	"time"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/canvas"
	"fyne.io/fyne/v2/container"
	"fyne.io/fyne/v2/layout"
	"fyne.io/fyne/v2/theme"
	"github.com/skip2/go-qrcode"

	"github.com/kogge-fleet/kogge/kiosk/flow"
	"github.com/kogge-fleet/kogge/kiosk/i18n"
)

// stepKeys are the catalogue prefixes of each step's screen: its title is
// prefix+".title", its instruction prefix+".instruction".
var stepKeys = map[flow.Step]string{
	flow.StepWelcome:      "welcome",
	flow.StepLanguage:     "language",
	flow.StepDocuments:    "documents",
	flow.StepIdentify:     "identify",
	flow.StepPhoto:        "photo",
	flow.StepPhotoChoice:  "photo-choice",
	flow.StepFingerRight:  "finger-right",
	flow.StepFingerLeft:   "finger-left",
	flow.StepSignature:    "signature",
	flow.StepPayment:      "payment",
	flow.StepReview:       "review",
	flow.StepSaving:       "saving",
	flow.StepReceipt:      "receipt",
	flow.StepCounter:      "counter",
	flow.StepCancelled:    "cancelled",
	flow.StepOutOfService: "out-of-service",
}

// citizenStep reports whether the step is one the citizen works through,
// which has a cancel button.
func citizenStep(s flow.Step) bool {
	return s >= flow.StepLanguage && s <= flow.StepReview
}

// screen is one drawn screen, with handles on what changes in place and
// what tests look for.
type screen struct {
	content fyne.CanvasObject
	title   *textBox
	status  *textBox
	frame   *canvas.Image // the live camera picture (photo step)
	pad     *signaturePad
	corner  *tapArea
	buttons map[string]*button // by role: "cancel", "next", "lang:de", "doc:passport" …
	images  []*tapImage        // photo candidates
	pinDots *textBox           // the eID PIN as dots
	// remaining is the timeout warning's "time left" line.
	remaining *textBox
	rtl       bool
}

// build holds what every part of a screen needs.
type build struct {
	u    *UI
	v    flow.View
	lang string
	rtl  bool
	ts   textSizes
	size fyne.Size
	cw   float32 // content width
	s    *screen

	argCache map[string]string
}

func (u *UI) newBuild(size fyne.Size, lang string) *build {
	b := &build{u: u, v: u.view, lang: lang, rtl: u.cat.Dir(lang) == i18n.RTL, ts: u.sizes(), size: size}
	b.cw = size.Width - 2*pad - 2*border
	b.s = &screen{buttons: map[string]*button{}, rtl: b.rtl}
	return b
}

// args are the placeholders every message may use, from the view; the
// view's own Args win.
func (b *build) args() map[string]string {
	if b.argCache != nil {
		return b.argCache
	}
	v := b.v
	a := map[string]string{
		"number":    v.Number,
		"amount":    b.u.cat.Money(b.lang, v.FeeCents),
		"attempt":   strconv.Itoa(v.Attempt),
		"attempts":  strconv.Itoa(v.Attempts),
		"progress":  strconv.Itoa(v.Progress),
		"total":     strconv.Itoa(v.Total),
		"remaining": clockTime(v.Remaining),
		"documents": b.list("document.", v.Chosen),
		// Arguments some of the flow's messages carry (kiosk/flow
		// messages.go); empty unless the view gives them.
		"left": "", "reason": "", "peripheral": "",
	}
	for k, val := range v.Args {
		a[k] = val
	}
	if p := a["peripheral"]; p != "" && b.has("admin.peripheral."+p) {
		a["peripheral"] = b.u.cat.T(b.lang, "admin.peripheral."+p, nil)
	}
	b.argCache = a
	return a
}

// clockTime writes a duration as m:ss, rounded up, which reads the same
// in every language and needs no plural forms.
func clockTime(d time.Duration) string {
	s := int((max(d, 0) + time.Second - 1) / time.Second)
	return fmt.Sprintf("%d:%02d", s/60, s%60)
}

// t is the message key in the screen's language with the view's
// placeholders.
func (b *build) t(key string) string { return b.u.cat.T(b.lang, key, b.args()) }

// known is t for a key that comes from outside (the flow's View): a key
// the catalogue lacks is logged once and yields fallback.
func (b *build) known(key, fallback string) string {
	if b.has(key) {
		return b.t(key)
	}
	b.missing(key)
	return fallback
}

func (b *build) has(key string) bool {
	c := b.u.cat
	return c.Has(b.lang, key) || c.Has(c.Languages()[0], key)
}

func (b *build) missing(key string) {
	if !b.u.unknown[key] {
		b.u.unknown[key] = true
		b.u.log.Warn("message key missing from the catalogue; add it to kiosk/i18n/locales", "key", key)
	}
}

// list translates kinds under prefix and joins them with the language's
// list separator.
func (b *build) list(prefix string, kinds []string) string {
	names := make([]string, len(kinds))
	for i, k := range kinds {
		names[i] = k
		if b.has(prefix + k) {
			names[i] = b.u.cat.T(b.lang, prefix+k, nil)
		} else {
			b.missing(prefix + k)
		}
	}
	return strings.Join(names, b.u.cat.T(b.lang, "ui.list-separator", nil))
}

func (b *build) text(s string, size float32, bold bool, width float32) *textBox {
	return b.u.shared(newText(s, size, bold, b.rtl, width))
}

// row lays objects out side by side, mirrored for right-to-left.
func (b *build) row(objs ...fyne.CanvasObject) *fyne.Container {
	if b.rtl {
		objs = slices.Clone(objs)
		slices.Reverse(objs)
	}
	return container.New(rowLayout{spacing: gap, stretch: -1}, objs...)
}

func (b *build) button(role, label string, kind buttonKind, width float32, onTap func()) *button {
	btn := newButton(label, kind, b.ts.button, b.rtl, width, onTap)
	btn.measures = b.u.measures
	b.s.buttons[role] = btn
	return btn
}

// footerWidth is the width of a footer button.
func (b *build) footerWidth() float32 {
	if b.u.large {
		return 340
	}
	return 260
}

func (b *build) cancelButton() *button {
	return b.button("cancel", b.t("ui.cancel"), kindDanger, b.footerWidth(), func() { b.u.send(flow.Cancel{}) })
}

// contentFunc builds a step's content for the space left between header
// and footer.
type contentFunc func(avail fyne.Size) fyne.CanvasObject

// static is a contentFunc for content that does not depend on the space.
func static(o fyne.CanvasObject) contentFunc { return func(fyne.Size) fyne.CanvasObject { return o } }

// page puts a step's content between the header (title, text size,
// progress, instruction, status line) and the footer buttons. With
// cancel, the footer starts with the cancel button; the actions follow
// at the end, the main one last. Content that does not fit scrolls.
func (b *build) page(content contentFunc, cancel bool, actions ...fyne.CanvasObject) fyne.CanvasObject {
	top := container.NewVBox(b.header())
	if b.v.Total > 0 && citizenStep(b.v.Step) {
		top.Add(b.progress())
	}
	if key, ok := stepKeys[b.v.Step]; ok {
		top.Add(b.text(b.t(key+".instruction"), b.ts.body, false, b.cw))
	}
	if st := b.statusLine(); st != nil {
		top.Add(st)
	}
	var foot []fyne.CanvasObject
	if cancel && citizenStep(b.v.Step) {
		foot = append(foot, b.cancelButton())
	}
	foot = append(foot, layout.NewSpacer())
	foot = append(foot, actions...)
	b.fitFooter(foot)
	bottom := b.row(foot...)
	if len(foot) == 1 {
		bottom = container.NewHBox()
	}
	// The inset keeps outlines at the edge of the content clear of the
	// scroll area's clipping.
	avail := fyne.NewSize(b.cw, b.size.Height-2*pad-2*border-2*theme.Padding()-
		top.MinSize().Height-bottom.MinSize().Height)
	inner := container.New(insetLayout{p: border}, canvas.NewRectangle(colBackground), content(avail))
	body := container.NewBorder(top, bottom, nil, nil, container.NewVScroll(inner))
	bg := canvas.NewRectangle(colBackground)
	return container.New(insetLayout{p: pad}, bg, body)
}

// fitFooter narrows the footer buttons when together they are wider
// than the screen (four buttons with large text); labels wrap instead.
func (b *build) fitFooter(objs []fyne.CanvasObject) {
	var btns []*button
	var total float32
	for _, o := range objs {
		if btn, ok := o.(*button); ok {
			btns = append(btns, btn)
			total += btn.width
		}
	}
	if len(btns) == 0 {
		return
	}
	total += float32(len(btns)-1) * gap
	if total <= b.cw {
		return
	}
	scale := (b.cw - float32(len(btns)-1)*gap) / (total - float32(len(btns)-1)*gap)
	for _, btn := range btns {
		btn.width = max(btn.width*scale, minTarget)
	}
}

// header is the hidden admin corner (always top left), the title and the
// text-size switch.
func (b *build) header() fyne.CanvasObject {
	corner := newTapArea(nil, fyne.NewSquareSize(minTarget), b.u.cornerTap)
	b.s.corner = corner
	label := b.t("ui.text-larger")
	if b.u.large {
		label = b.t("ui.text-normal")
	}
	sw := float32(260)
	if b.u.large {
		sw = 320
	}
	size := newButton("Aa  "+label, kindSecondary, b.ts.small, b.rtl, sw, b.u.toggleLarge)
	size.measures = b.u.measures
	b.s.buttons["text-size"] = size
	title := ""
	if key, ok := stepKeys[b.v.Step]; ok {
		title = b.t(key + ".title")
	}
	tb := b.text(title, b.ts.title, true, b.cw-minTarget-sw-2*gap)
	b.s.title = tb
	mid := container.New(vCenter{}, tb)
	if b.rtl {
		return container.NewBorder(nil, nil, container.NewHBox(corner, size), nil, mid)
	}
	return container.NewBorder(nil, nil, corner, size, mid)
}

func (b *build) progress() fyne.CanvasObject {
	label := b.text(b.t("ui.progress"), b.ts.small, false, 0)
	bar := newProgressBar(b.v.Progress, b.v.Total, b.rtl)
	if b.rtl {
		return container.New(rowLayout{spacing: gap, stretch: 1, center: true}, label, bar)
	}
	return container.New(rowLayout{spacing: gap, stretch: 0, center: true}, bar, label)
}

// statusLine is the flow's current message for the step, on a yellow
// panel, or nil.
func (b *build) statusLine() fyne.CanvasObject {
	if b.v.Message == "" {
		return nil
	}
	msg := b.known(b.v.Message, "")
	if msg == "" {
		return nil
	}
	// Some messages repeat what the screen says anyway.
	if key, ok := stepKeys[b.v.Step]; ok && msg == b.t(key+".instruction") {
		return nil
	}
	if b.v.Step == flow.StepReview && b.v.Message == "review.consent" {
		return nil // the consent panel says it
	}
	tb := b.text(msg, b.ts.body, true, b.cw-2*gap)
	b.s.status = tb
	return boxed(tb, colStatus, colText)
}

// buildScreen draws the screen for the current view.
func (u *UI) buildScreen(size fyne.Size) *screen {
	b := u.newBuild(size, u.lang())
	var content fyne.CanvasObject
	switch b.v.Step {
	case flow.StepWelcome:
		content = b.welcome()
	case flow.StepLanguage:
		content = b.page(static(b.languages()), true)
	case flow.StepDocuments:
		next := b.button("next", b.t("ui.next"), kindPrimary, b.footerWidth(), func() { u.send(flow.Next{}) })
		next.disabled = len(b.v.Chosen) == 0
		content = b.page(static(b.documents()), true, next)
	case flow.StepIdentify:
		skip := b.button("skip", b.t("identify.skip"), kindSecondary, b.footerWidth()+120, func() { u.send(flow.Skip{}) })
		content = b.page(static(b.identify()), true, skip)
	case flow.StepPhoto:
		content = b.page(b.photo, true, b.recovery("photo.new")...)
	case flow.StepPhotoChoice:
		content = b.page(b.candidates, true)
	case flow.StepFingerRight, flow.StepFingerLeft:
		content = b.page(static(b.finger()), true, b.recovery("ui.retry")...)
	case flow.StepSignature:
		content = b.signature()
	case flow.StepPayment:
		content = b.page(static(b.payment()), true, b.recovery("ui.retry")...)
	case flow.StepReview:
		decline := b.button("decline", b.t("review.decline"), kindSecondary, b.footerWidth(), func() { u.send(flow.Consent{Given: false}) })
		agree := b.button("agree", b.t("review.agree"), kindPrimary, b.footerWidth()+80, func() { u.send(flow.Consent{Given: true}) })
		content = b.page(static(b.review()), true, decline, agree)
	case flow.StepReceipt:
		content = b.page(static(b.number(true)), false, b.doneButton())
	case flow.StepCounter:
		content = b.page(static(b.number(false)), false, b.doneButton())
	case flow.StepCancelled:
		content = b.page(static(layout.NewSpacer()), false, b.doneButton())
	default: // saving, out of service, and steps this UI does not know
		content = b.page(static(layout.NewSpacer()), false)
	}
	b.s.content = content
	return b.s
}

func (b *build) doneButton() *button {
	return b.button("next", b.t("ui.done"), kindPrimary, b.footerWidth(), func() { b.u.send(flow.Next{}) })
}

// After these messages of the flow (kiosk/flow/messages.go) a step may
// be tried again (Retry) or left to the counter (Skip).
var (
	retryAfter = map[string]bool{
		"photo.retry": true, "finger.low-quality": true, "finger.no-finger": true,
		"finger.image-failed": true, "payment.declined": true, "payment.aborted": true,
	}
	skipAfter = map[string]bool{
		"photo.retry": true, "finger.low-quality": true, "finger.no-finger": true,
		"finger.image-failed": true, "signature.again": true, "payment.declined": true, "payment.aborted": true,
	}
)

// recovery offers what the flow takes after a failed try: leaving the
// step to the counter, and another try while attempts are left.
func (b *build) recovery(retryKey string) []fyne.CanvasObject {
	var out []fyne.CanvasObject
	msg := b.v.Message
	if skipAfter[msg] {
		key := "ui.skip"
		if b.v.Step == flow.StepPayment {
			key = "payment.skip"
		}
		out = append(out, b.button("skip", b.t(key), kindSecondary, b.footerWidth(), func() { b.u.send(flow.Skip{}) }))
	}
	if retryAfter[msg] && (b.v.Attempts == 0 || b.v.Attempt < b.v.Attempts) {
		out = append(out, b.button("retry", b.t(retryKey), kindPrimary, b.footerWidth(), func() { b.u.send(flow.Retry{}) }))
	}
	return out
}

// pinLength is the eID PIN's length.
const pinLength = 6

// identify shows the on-screen PIN pad when the flow asks for the eID
// PIN (a card reader without a keypad), else nothing beyond the status.
func (b *build) identify() fyne.CanvasObject {
	if b.v.Message != "identify.enter-pin" && b.v.Message != "identify.wrong-pin" {
		return layout.NewSpacer()
	}
	u := b.u
	dots := ""
	for i := range pinLength {
		if i < len(u.pin) {
			dots += "● "
		} else {
			dots += "○ "
		}
	}
	shown := b.text(strings.TrimSpace(dots), b.ts.huge*0.6, true, 0)
	shown.align = alignCenter
	b.s.pinDots = shown
	digit := func(d byte) func() {
		return func() {
			if len(u.pin) < pinLength {
				u.pin = append(u.pin, d)
				u.rebuild()
			}
		}
	}
	var keys []fyne.CanvasObject
	for _, d := range "1234567890" {
		keys = append(keys, b.button("pin:"+string(d), string(d), kindSecondary, minTarget+24, digit(byte(d))))
	}
	del := b.button("pin:correct", b.t("ui.correct"), kindSecondary, 2*minTarget+gap, func() {
		if len(u.pin) > 0 {
			u.pin[len(u.pin)-1] = 0
			u.pin = u.pin[:len(u.pin)-1]
			u.rebuild()
		}
	})
	ok := b.button("pin:ok", b.t("identify.pin-ok"), kindPrimary, 3*minTarget+2*gap, func() {
		if len(u.pin) != pinLength {
			return
		}
		pin := string(u.pin)
		u.clearPIN()
		u.send(flow.EnterPIN{PIN: pin})
	})
	ok.disabled = len(u.pin) != pinLength
	// Two rows of five digits and a row of controls: lower than a phone
	// keypad, so it fits above the footer.
	keypad := container.NewVBox(
		container.NewGridWithColumns(5, keys[:5]...),
		container.NewGridWithColumns(5, keys[5:]...),
		b.row(del, layout.NewSpacer(), ok),
	)
	// The dots stand beside the keys, on the side the language starts.
	r := b.row(shown, keypad)
	r.Layout = rowLayout{spacing: pad, stretch: -1, center: true}
	return container.NewHBox(layout.NewSpacer(), r, layout.NewSpacer())
}

// welcome is the idle screen: a touch anywhere starts, and the call to
// touch is repeated in every offered language.
func (b *build) welcome() fyne.CanvasObject {
	start := b.button("start", b.t("welcome.start"), kindPrimary, min(480, b.cw), func() { b.u.send(flow.Start{}) })
	start.textSize = b.ts.title
	start.height = 140
	langs := b.v.Languages
	if len(langs) == 0 {
		langs = b.u.cat.Languages()
	}
	var calls []fyne.CanvasObject
	cols := 3
	colW := (b.cw - float32(cols-1)*gap) / float32(cols)
	for _, l := range langs {
		if l == b.lang || !b.u.cat.Known(l) {
			continue
		}
		tb := b.u.shared(newText(b.u.cat.T(l, "welcome.touch", nil), b.ts.small, false, b.u.cat.Dir(l) == i18n.RTL, colW))
		tb.align = alignCenter
		tb.color = colHint
		calls = append(calls, tb)
	}
	content := container.NewVBox(
		layout.NewSpacer(),
		container.NewCenter(start),
		layout.NewSpacer(),
		b.grid(cols, calls),
	)
	page := b.page(static(content), false)
	touch := newTapArea(nil, fyne.Size{}, func() { b.u.send(flow.Start{}) })
	return container.NewStack(touch, page)
}

// grid lays out cells in rows of n, each row mirrored for right-to-left.
func (b *build) grid(n int, cells []fyne.CanvasObject) fyne.CanvasObject {
	rows := container.NewVBox()
	for i := 0; i < len(cells); i += n {
		row := slices.Clone(cells[i:min(i+n, len(cells))])
		for len(row) < n {
			row = append(row, layout.NewSpacer())
		}
		if b.rtl {
			slices.Reverse(row)
		}
		rows.Add(container.NewGridWithColumns(n, row...))
	}
	return rows
}

// languages offers each language under its own name, in its own script
// and direction.
func (b *build) languages() fyne.CanvasObject {
	langs := b.v.Languages
	if len(langs) == 0 {
		langs = b.u.cat.Languages()
	}
	w := (b.cw - gap) / 2
	var cells []fyne.CanvasObject
	for _, l := range langs {
		btn := newButton(b.u.cat.Name(l), kindChoice, b.ts.button, b.u.cat.Dir(l) == i18n.RTL, w, func() { b.u.send(flow.ChooseLanguage{Tag: l}) })
		btn.measures = b.u.measures
		btn.selected = l == b.v.Language
		b.s.buttons["lang:"+l] = btn
		cells = append(cells, btn)
	}
	return b.grid(2, cells)
}

func (b *build) documents() fyne.CanvasObject {
	w := min(b.cw, 820)
	box := container.NewVBox()
	for _, d := range b.v.Documents {
		btn := b.button("doc:"+d, b.known("document."+d, d), kindChoice, w, func() { b.u.send(flow.ToggleDocument{Kind: d}) })
		btn.selected = slices.Contains(b.v.Chosen, d)
		box.Add(btn)
	}
	return container.NewHBox(layout.NewSpacer(), box, layout.NewSpacer())
}

// photo shows the live camera picture and the most important guidance.
func (b *build) photo(avail fyne.Size) fyne.CanvasObject {
	fh := max(avail.Height-2*gap-2*border, 180)
	fw := min(b.cw*0.55, fh*4/3)
	fh = fw * 3 / 4
	img := canvas.NewImageFromImage(b.v.Frame)
	if b.v.Frame == nil {
		img = canvas.NewImageFromImage(image.NewGray(image.Rect(0, 0, 4, 3)))
	}
	img.FillMode = canvas.ImageFillContain
	img.ScaleMode = canvas.ImageScaleFastest
	img.SetMinSize(fyne.NewSize(fw, fh))
	b.s.frame = img
	gw := b.cw - (fw + 2*gap) - gap
	col := container.NewVBox()
	for i, g := range b.v.Guidance {
		if i == 0 {
			first := b.text(b.known(g, ""), b.ts.title, true, gw-2*gap)
			col.Add(boxed(first, colStatus, colText))
			continue
		}
		if i > 2 {
			break // three hints at most; one at a time is easier to follow
		}
		col.Add(b.text(b.known(g, ""), b.ts.body, false, gw))
	}
	if b.v.Attempts > 0 {
		col.Add(b.text(b.t("ui.attempt"), b.ts.small, false, gw))
	}
	pic := boxed(img, colBackground, colText)
	return b.row(pic, container.New(fixedWidth{w: gw}, col))
}

// candidates are the equally good photos to pick from.
func (b *build) candidates(avail fyne.Size) fyne.CanvasObject {
	n := len(b.v.Candidates)
	if n == 0 {
		return layout.NewSpacer()
	}
	// The caption takes about one line of button text under each photo.
	capH := b.ts.button*1.5 + 3*gap + 2*border
	ih := max(avail.Height-capH, 160)
	iw := min((b.cw-float32(n-1)*gap)/float32(n)-2*gap, ih*1244/1600)
	ih = iw * 1600 / 1244
	var cells []fyne.CanvasObject
	for i, c := range b.v.Candidates {
		caption := b.text(b.u.cat.T(b.lang, "photo-choice.item", map[string]string{"index": strconv.Itoa(i + 1)}), b.ts.button, true, iw)
		caption.align = alignCenter
		ti := newTapImage(c, caption, fyne.NewSize(iw, ih), func() { b.u.send(flow.PickPhoto{Index: i}) })
		b.s.images = append(b.s.images, ti)
		cells = append(cells, ti)
	}
	return container.NewHBox(layout.NewSpacer(), b.row(cells...), layout.NewSpacer())
}

// finger shows which finger goes on the scanner.
func (b *build) finger() fyne.CanvasObject {
	right := b.v.Step == flow.StepFingerRight
	hand := handIcon(right, 24)
	col := container.NewVBox()
	if b.v.Attempts > 0 {
		col.Add(b.text(b.t("ui.attempt"), b.ts.body, false, b.cw-300))
	}
	return b.row(hand, container.New(vCenter{}, col))
}

// signature is the drawing area with its own footer: clear and done.
func (b *build) signature() fyne.CanvasObject {
	u := b.u
	w := min(b.cw, 1100)
	hint := b.text(b.t("signature.here"), b.ts.small, false, w-2*pad)
	hint.color = colHint
	sp := newSignaturePad(&u.sig, u.clk.Now, fyne.NewSize(w, 240), hint)
	b.s.pad = sp
	done := b.button("done", b.t("ui.done"), kindPrimary, b.footerWidth(), func() {
		if u.sig.empty() {
			return
		}
		sw, sh := sp.area()
		strokes := make([][]flow.Point, len(u.sig.strokes))
		for i, s := range u.sig.strokes {
			strokes[i] = slices.Clone(s)
		}
		u.send(flow.SignatureDone{Strokes: strokes, W: sw, H: sh})
	})
	done.disabled = u.sig.empty()
	clearBtn := b.button("clear", b.t("signature.clear"), kindSecondary, b.footerWidth(), func() {
		u.sig.clear()
		u.rebuild()
	})
	sp.onChange = func() {
		if done.disabled {
			done.setDisabled(false)
		}
	}
	sp.onStroke = func() { u.send(flow.Touch{}) }
	content := func(avail fyne.Size) fyne.CanvasObject {
		sp.size.Height = min(max(avail.Height-gap, 200), 420)
		return container.NewHBox(layout.NewSpacer(), sp, layout.NewSpacer())
	}
	return b.page(content, true, clearBtn, done)
}

func (b *build) payment() fyne.CanvasObject {
	amount := b.text(b.u.cat.Money(b.lang, b.v.FeeCents), b.ts.huge, true, b.cw)
	amount.align = alignCenter
	return container.NewVBox(layout.NewSpacer(), amount, layout.NewSpacer())
}

// review lists what will be sent and what is left for the counter, and
// asks for consent.
func (b *build) review() fyne.CanvasObject {
	v := b.v
	item := func(s string) fyne.CanvasObject { return b.bullet(s, b.cw) }
	list := container.NewVBox()
	if len(v.Chosen) > 0 {
		list.Add(item(b.t("review.documents")))
	}
	moved := func(what string) bool { return slices.Contains(v.Counter, what) }
	if !moved("face") {
		list.Add(item(b.t("review.photo")))
	}
	if !moved("finger-2") {
		list.Add(item(b.t("review.finger-right")))
	}
	if !moved("finger-7") {
		list.Add(item(b.t("review.finger-left")))
	}
	if !moved("signature") {
		list.Add(item(b.t("review.signature")))
	}
	if v.FeeCents > 0 && !moved("fee") {
		list.Add(item(b.t("review.fee")))
	}
	if len(v.Counter) > 0 {
		list.Add(b.text(b.t("review.counter"), b.ts.body, true, b.cw))
		for _, c := range v.Counter {
			list.Add(item(b.known("counter."+c, c)))
		}
	}
	consent := b.text(b.t("review.consent"), b.ts.body, true, b.cw-2*gap)
	list.Add(boxed(consent, colBackground, colText))
	return list
}

// bullet is a list item: a square dot and the text, width wide.
func (b *build) bullet(s string, width float32) fyne.CanvasObject {
	dot := canvas.NewRectangle(colText)
	dot.SetMinSize(fyne.NewSquareSize(12))
	r := b.row(container.New(vCenter{}, dot), b.text(s, b.ts.body, false, width-12-gap))
	r.Layout = rowLayout{spacing: gap, stretch: -1, center: true}
	return r
}

// number shows the application number large; the receipt screen adds
// its QR code, the counter screen what is left to do there.
func (b *build) number(qr bool) fyne.CanvasObject {
	col := container.NewVBox(
		b.text(b.t("ui.number"), b.ts.body, false, b.cw),
		b.text(b.v.Number, b.ts.huge, true, 0),
	)
	if !qr && len(b.v.Counter) > 0 {
		col.Add(b.text(b.t("counter.items"), b.ts.body, true, b.cw))
		var items []fyne.CanvasObject
		w := (b.cw - gap) / 2
		for _, c := range b.v.Counter {
			items = append(items, b.bullet(b.known("counter."+c, c), w))
		}
		col.Add(b.grid(2, items))
	}
	if !qr || b.v.Number == "" {
		return col
	}
	code, err := qrcode.New(b.v.Number, qrcode.Medium)
	if err != nil {
		b.u.log.Warn("application number does not fit a QR code", "err", err)
		return col
	}
	code.DisableBorder = false
	img := canvas.NewImageFromImage(code.Image(256))
	img.ScaleMode = canvas.ImageScalePixels
	img.SetMinSize(fyne.NewSquareSize(240))
	return b.row(col, layout.NewSpacer(), img)
}

// buildWarning is the timeout warning over the screen: any touch on it
// answers (Touch), and so does its button.
func (u *UI) buildWarning(size fyne.Size) fyne.CanvasObject {
	b := u.newBuild(size, u.lang())
	w := min(b.cw, 900)
	title := b.text(b.t("timeout.title"), b.ts.title, true, w-2*pad)
	rest := b.text(u.remainingText(b.lang), b.ts.body, false, w-2*pad)
	b.s.remaining = rest
	yes := b.button("continue", b.t("timeout.continue"), kindPrimary, min(w-2*pad, 560), func() { u.send(flow.Touch{}) })
	yes.height = 120
	card := boxed(container.NewVBox(title, rest, container.NewCenter(yes)), colBackground, colText)
	backdrop := newTapArea(colBackdrop, fyne.Size{}, func() { u.send(flow.Touch{}) })
	u.warning = b.s
	return container.NewStack(backdrop, container.NewCenter(card))
}

// vCenter lays each object out at full width, centred vertically at its
// minimum height.
type vCenter struct{}

func (vCenter) Layout(objs []fyne.CanvasObject, size fyne.Size) {
	for _, o := range objs {
		h := o.MinSize().Height
		o.Move(fyne.NewPos(0, (size.Height-h)/2))
		o.Resize(fyne.NewSize(size.Width, h))
	}
}

func (vCenter) MinSize(objs []fyne.CanvasObject) fyne.Size {
	var s fyne.Size
	for _, o := range objs {
		s = s.Max(o.MinSize())
	}
	return s
}

// fixedWidth gives its objects a fixed width and stacks them.
type fixedWidth struct{ w float32 }

func (l fixedWidth) Layout(objs []fyne.CanvasObject, size fyne.Size) {
	for _, o := range objs {
		o.Move(fyne.NewPos(0, 0))
		o.Resize(fyne.NewSize(l.w, size.Height))
	}
}

func (l fixedWidth) MinSize(objs []fyne.CanvasObject) fyne.Size {
	var h float32
	for _, o := range objs {
		h = max(h, o.MinSize().Height)
	}
	return fyne.NewSize(l.w, h)
}

// rowLayout lays objects out left to right at their minimum widths,
// top-aligned, with spacing between them. Spacers (layout.NewSpacer)
// share the width left over; without spacers the object at index
// stretch (if not negative) takes it. Its height is the tallest object's;
// with center the others are centred vertically.
type rowLayout struct {
	spacing float32
	stretch int
	center  bool
}

func (l rowLayout) visible(objs []fyne.CanvasObject) (items []fyne.CanvasObject, spacers int) {
	for _, o := range objs {
		if !o.Visible() {
			continue
		}
		if sp, ok := o.(layout.SpacerObject); ok && sp.ExpandHorizontal() {
			spacers++
		}
		items = append(items, o)
	}
	return items, spacers
}

func isSpacer(o fyne.CanvasObject) bool {
	sp, ok := o.(layout.SpacerObject)
	return ok && sp.ExpandHorizontal()
}

func (l rowLayout) MinSize(objs []fyne.CanvasObject) fyne.Size {
	items, _ := l.visible(objs)
	var w, h float32
	n := 0
	for _, o := range items {
		if isSpacer(o) {
			continue
		}
		ms := o.MinSize()
		w += ms.Width
		h = max(h, ms.Height)
		n++
	}
	if n > 1 {
		w += l.spacing * float32(n-1)
	}
	return fyne.NewSize(w, h)
}

func (l rowLayout) Layout(objs []fyne.CanvasObject, size fyne.Size) {
	items, spacers := l.visible(objs)
	extra := max(size.Width-l.MinSize(objs).Width, 0)
	var x float32
	placed := 0
	for i, o := range items {
		if isSpacer(o) {
			x += extra / float32(spacers)
			continue
		}
		if placed > 0 {
			x += l.spacing
		}
		ms := o.MinSize()
		w := ms.Width
		if spacers == 0 && i == l.stretch {
			w += extra
		}
		var y float32
		if l.center {
			y = (size.Height - ms.Height) / 2
		}
		o.Move(fyne.NewPos(x, y))
		o.Resize(fyne.NewSize(w, ms.Height))
		x += w
		placed++
	}
}
