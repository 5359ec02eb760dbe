package ui

import (
	"strconv"
	"time"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/canvas"
	"fyne.io/fyne/v2/container"
	"fyne.io/fyne/v2/layout"

	"github.com/kogge-fleet/kogge/kiosk/flow"
)

// maxPIN bounds the digits the PIN pad takes.
const maxPIN = 12

// adminState is the staff screen while it is open. It is drawn over the
// citizen's screen, which goes on underneath, and closes by itself after
// Options.AdminIdle without a touch.
type adminState struct {
	pin      string
	unlocked bool
	confirm  bool // asking whether to reboot
	message  string
	status   flow.AdminStatus
	stopIdle func() bool
	idleGen  int // an idle timer that fired before a later touch is void
}

// failures and lockout outlive one opening of the screen, so closing and
// reopening it does not reset the count of wrong PINs.
type pinGuard struct {
	failures int
	until    time.Time
}

func (u *UI) openAdmin() {
	if u.admin != nil || u.backend == nil {
		return
	}
	u.admin = &adminState{}
	u.touchAdmin()
	u.rebuild()
}

func (u *UI) closeAdmin() {
	if u.admin == nil {
		return
	}
	if u.admin.stopIdle != nil {
		u.admin.stopIdle()
	}
	u.admin = nil
	u.rebuild()
}

// touchAdmin restarts the idle timer.
func (u *UI) touchAdmin() {
	a := u.admin
	if a == nil {
		return
	}
	if a.stopIdle != nil {
		a.stopIdle()
	}
	a.idleGen++
	gen := a.idleGen
	a.stopIdle = u.clk.AfterFunc(u.opts.AdminIdle, func() {
		if u.admin == a && a.idleGen == gen {
			u.closeAdmin()
		}
	})
}

// adminDo wraps a staff action: it counts as activity and redraws.
func (u *UI) adminDo(f func(a *adminState)) func() {
	return func() {
		if u.admin == nil {
			return
		}
		u.touchAdmin()
		f(u.admin)
		u.rebuild()
	}
}

func (u *UI) pinDigit(d string) func() {
	return u.adminDo(func(a *adminState) {
		a.message = ""
		if len(a.pin) < maxPIN {
			a.pin += d
		}
	})
}

func (u *UI) pinSubmit(a *adminState) {
	now := u.clk.Now()
	if now.Before(u.guard.until) {
		a.pin = ""
		a.message = "admin.locked"
		return
	}
	ok := a.pin != "" && u.backend.CheckPIN(a.pin)
	a.pin = ""
	if !ok {
		u.guard.failures++
		a.message = "admin.pin-wrong"
		if u.guard.failures >= u.opts.AdminAttempts {
			u.guard.failures = 0
			u.guard.until = now.Add(u.opts.AdminLockout)
			a.message = "admin.locked"
		}
		return
	}
	u.guard.failures = 0
	a.unlocked = true
	a.message = ""
	a.status = u.backend.Status()
}

func (u *UI) reboot(a *adminState) {
	a.confirm = false
	if err := u.backend.Reboot(); err != nil {
		u.log.Error("reboot from the admin screen failed", "err", err)
		a.message = "admin.reboot-failed"
		u.rebootErr = err.Error()
		return
	}
	a.message = ""
}

// buildAdmin draws the staff screen in the office's language: the PIN
// pad until the PIN is right, then the terminal's state.
func (u *UI) buildAdmin(size fyne.Size) fyne.CanvasObject {
	b := u.newBuild(size, u.opts.Language)
	b.ts = normalText
	a := u.admin
	args := map[string]string{
		"remaining": clockTime(u.guard.until.Sub(u.clk.Now())),
		"error":     u.rebootErr,
	}
	tr := func(key string) string { return u.cat.T(b.lang, key, args) }
	bw := float32(260)

	closeBtn := b.button("admin-close", tr("admin.close"), kindSecondary, bw, u.closeAdmin)
	tools := []fyne.CanvasObject{closeBtn}
	if a.unlocked && !a.confirm {
		refresh := b.button("refresh", tr("admin.refresh"), kindSecondary, bw, u.adminDo(func(a *adminState) {
			a.message = ""
			a.status = u.backend.Status()
		}))
		reboot := b.button("reboot", tr("admin.reboot"), kindDanger, bw, u.adminDo(func(a *adminState) { a.confirm = true }))
		tools = []fyne.CanvasObject{refresh, reboot, closeBtn}
	}
	toolsW := float32(len(tools))*(bw+gap) - gap
	title := b.text(tr("admin.title"), b.ts.title, true, b.cw-toolsW-gap)
	b.s.title = title
	header := b.row(append([]fyne.CanvasObject{container.New(fixedWidth{w: b.cw - toolsW - gap}, container.New(vCenter{}, title))}, tools...)...)
	header.Layout = rowLayout{spacing: gap, stretch: -1, center: true}

	body := container.NewVBox()
	if a.message != "" {
		msg := b.text(tr(a.message), b.ts.body, true, b.cw-2*gap)
		b.s.status = msg
		body.Add(boxed(msg, colStatus, colText))
	}
	switch {
	case !a.unlocked:
		body.Add(u.pinPad(b, tr))
	case a.confirm:
		body.Add(b.text(tr("admin.reboot-confirm"), b.ts.body, true, b.cw))
		yes := b.button("reboot-yes", tr("admin.reboot-yes"), kindDanger, bw+60, u.adminDo(u.reboot))
		no := b.button("reboot-no", tr("admin.reboot-no"), kindSecondary, bw, u.adminDo(func(a *adminState) { a.confirm = false }))
		body.Add(b.row(no, layout.NewSpacer(), yes))
	default:
		body.Add(u.adminStatus(b, tr))
	}
	page := container.NewBorder(header, nil, nil, nil, container.NewVScroll(body))
	// The panel is opaque and catches every touch that misses its
	// controls, so nothing reaches the citizen's screen underneath.
	catcher := newTapArea(colBackground, fyne.Size{}, u.adminDo(func(*adminState) {}))
	u.adminScreen = b.s
	return container.NewStack(catcher, container.New(insetLayout{p: pad}, canvas.NewRectangle(colBackground), page))
}

// pinPad is the PIN display (dots) and a telephone keypad, which keeps
// its order in every language.
func (u *UI) pinPad(b *build, tr func(string) string) fyne.CanvasObject {
	a := u.admin
	dots := ""
	for range len(a.pin) {
		dots += "● "
	}
	shown := b.text(tr("admin.pin")+"   "+dots, b.ts.title, true, b.cw)
	var keys []fyne.CanvasObject
	for _, d := range []string{"1", "2", "3", "4", "5", "6", "7", "8", "9"} {
		keys = append(keys, b.button("pin:"+d, d, kindSecondary, 160, u.pinDigit(d)))
	}
	keys = append(keys,
		b.button("pin:clear", tr("admin.clear"), kindSecondary, 160, u.adminDo(func(a *adminState) { a.pin, a.message = "", "" })),
		b.button("pin:0", "0", kindSecondary, 160, u.pinDigit("0")),
		b.button("pin:ok", tr("admin.ok"), kindPrimary, 160, u.adminDo(u.pinSubmit)),
	)
	pad := container.NewGridWithColumns(3, keys...)
	return container.NewVBox(shown, container.NewHBox(layout.NewSpacer(), pad, layout.NewSpacer()))
}

// adminStatus lists the peripherals and, beside them, the connection to
// the server.
func (u *UI) adminStatus(b *build, tr func(string) string) fyne.CanvasObject {
	st := u.admin.status
	colW := (b.cw - pad) / 2
	const badgeW = 190
	devices := container.NewVBox(b.text(tr("admin.peripherals"), b.ts.title, true, colW))
	for _, p := range st.Peripherals {
		name := p.Name
		if u.cat.Has(b.lang, "admin.peripheral."+p.Name) {
			name = tr("admin.peripheral." + p.Name)
		}
		state := p.State
		if u.cat.Has(b.lang, "admin.state."+p.State) {
			state = tr("admin.state." + p.State)
		}
		badge := u.shared(newText(state, b.ts.small, true, b.rtl, badgeW-2*gap))
		badge.color = colOnDark
		badge.align = alignCenter
		fill := colDanger
		switch p.State {
		case "ok":
			fill = colOK
		case "degraded":
			fill = colWarn
		}
		line := name
		if p.Reason != "" {
			line += ": " + p.Reason
		}
		text := b.text(line, b.ts.body, false, colW-badgeW-gap)
		row := b.row(container.New(fixedWidth{w: badgeW}, boxed(badge, fill, fill)), text)
		row.Layout = rowLayout{spacing: gap, stretch: -1, center: true}
		devices.Add(row)
	}
	conn := tr("admin.disconnected")
	if st.Connected {
		conn = tr("admin.connected")
	}
	last := tr("admin.never")
	if !st.LastSync.IsZero() {
		last = u.cat.DateTime(b.lang, st.LastSync.Local())
	}
	sync := container.NewVBox(b.text(tr("admin.sync"), b.ts.title, true, colW))
	for _, s := range []string{
		conn,
		u.cat.T(b.lang, "admin.pending", map[string]string{"pending": strconv.Itoa(st.Pending)}),
		u.cat.T(b.lang, "admin.last-sync", map[string]string{"time": last}),
		u.cat.T(b.lang, "admin.version", map[string]string{"version": st.Version}),
	} {
		sync.Add(b.text(s, b.ts.body, false, colW))
	}
	cols := b.row(container.New(fixedWidth{w: colW}, devices), container.New(fixedWidth{w: colW}, sync))
	cols.Layout = rowLayout{spacing: pad, stretch: -1}
	return cols
}
