package ui

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/container"
	"fyne.io/fyne/v2/widget"

	"github.com/kogge-fleet/kogge/drivers/gnss"
	mobileagent "github.com/kogge-fleet/kogge/mobile-agent"
	"github.com/kogge-fleet/kogge/mobile-agent/enforcement"
)

// field is a form field: its caption above it, at least minTarget high.
func field(label string, o fyne.CanvasObject) fyne.CanvasObject {
	return container.NewVBox(caption(label), atLeast(o, 0, minTarget))
}

// startNotice starts a notice and opens the wizard.
func (u *UI) startNotice() {
	if err := u.app.NewNotice(); err != nil {
		u.fail(err)
		return
	}
	u.step, u.vehicle, u.query, u.street, u.house = stepVehicle, vehicleInput{nationality: "D"}, "", "", ""
	u.show(pageNotice, "", false)
}

// stepNames are the wizard's steps' titles.
var stepNames = [steps]string{"notice.step.vehicle", "notice.step.offences", "notice.step.place",
	"notice.step.observation", "notice.step.details", "notice.step.check"}

// noticePage is the current step of the notice wizard.
func (u *UI) noticePage() fyne.CanvasObject {
	v, ok := u.app.Notice()
	if !ok {
		u.page = pageHome
		return u.homePage()
	}
	head := container.NewVBox(u.message(), caption(u.t("notice.step", u.step+1, steps, u.t(stepNames[u.step]))))
	var body fyne.CanvasObject
	next := func() { u.noticeNext(v) }
	switch u.step {
	case stepVehicle:
		body = u.vehicleStep()
	case stepOffences:
		body = u.offencesStep(v)
	case stepPlace:
		body = u.placeStep(v)
	case stepObservation:
		body = u.observationStep(v)
	case stepDetails:
		body = u.detailsStep(v)
	case stepCheck:
		body = u.checkStep(v)
	}
	backLabel := u.t("action.back")
	back := func() { u.step--; u.show(pageNotice, "", false) }
	if u.step == stepVehicle {
		backLabel = u.t("action.cancel")
		back = func() { u.app.DiscardNotice(); u.show(pageHome, u.t("notice.discarded"), false) }
	}
	backB := button(backLabel, widget.MediumImportance, back)
	var nextB *widget.Button
	if u.step == stepCheck {
		nextB = button(u.t("notice.issue"), widget.HighImportance, u.issueNotice)
		if _, err := u.app.CheckNotice(); err != nil {
			nextB.Disable()
		}
	} else {
		nextB = button(u.t("action.next"), widget.HighImportance, next)
	}
	if u.step == stepCheck {
		// The long label takes the whole width, the back step above it.
		return screen(u.statusBar(), u.t("notice.title"), container.NewVBox(head, body), target(backB), target(nextB))
	}
	return screen(u.statusBar(), u.t("notice.title"), container.NewVBox(head, body), actionRow(backB, nextB))
}

// noticeNext hands the step's fields to the app and moves on.
func (u *UI) noticeNext(v mobileagent.NoticeView) {
	var err error
	switch u.step {
	case stepVehicle:
		if _, err = u.app.NoticePlate(u.vehicle.nationality, u.vehicle.plate); err == nil {
			err = u.app.NoticeVehicle(u.vehicle.make, u.vehicle.colour)
		}
	case stepOffences:
		if len(v.Offences) == 0 {
			err = errors.New(u.t("notice.no-offence"))
		}
	case stepPlace:
		if strings.TrimSpace(u.street) != "" {
			err = u.app.NoticeAddress(u.street, u.house)
		} else if v.Position == nil {
			err = errors.New(u.t("notice.no-place"))
		}
	case stepDetails:
		// The remarks are handed over as they are typed.
	}
	if err != nil {
		u.fail(err)
		return
	}
	u.step++
	u.show(pageNotice, "", false)
}

func (u *UI) vehicleStep() fyne.CanvasObject {
	var natOpts []string
	current := ""
	for _, n := range enforcement.Nationalities() {
		name := n.German
		if u.opts.Lang == "en" {
			name = n.English
		}
		o := n.Code + " – " + name
		natOpts = append(natOpts, o)
		if n.Code == u.vehicle.nationality {
			current = o
		}
	}
	nat := widget.NewSelect(natOpts, func(s string) { u.vehicle.nationality, _, _ = strings.Cut(s, " – ") })
	nat.Selected = current
	plate := widget.NewEntry()
	plate.SetPlaceHolder("HB-AB 123")
	plate.SetText(u.vehicle.plate)
	plate.OnChanged = func(s string) { u.vehicle.plate = s }
	mk := widget.NewSelectEntry(enforcement.Makes())
	mk.SetText(u.vehicle.make)
	mk.OnChanged = func(s string) { u.vehicle.make = s }
	var colours []string
	for _, c := range enforcement.Colours() {
		name := c.German
		if u.opts.Lang == "en" {
			name = c.English
		}
		colours = append(colours, name)
		if c.German == u.vehicle.colour || c.English == u.vehicle.colour {
			u.vehicle.colour = name
		}
	}
	colour := widget.NewSelect(colours, func(s string) { u.vehicle.colour = s })
	colour.Selected = u.vehicle.colour
	return container.NewVBox(field(u.t("notice.nationality"), nat), field(u.t("notice.plate"), plate),
		field(u.t("notice.make"), mk), field(u.t("notice.colour"), colour))
}

func (u *UI) offencesStep(v mobileagent.NoticeView) fyne.CanvasObject {
	results := container.NewVBox()
	fill := func() {
		results.RemoveAll()
		if strings.TrimSpace(u.query) == "" {
			return
		}
		hits := u.app.SearchOffences(u.query, 8)
		if len(hits) == 0 {
			results.Add(para(u.t("notice.no-hits")))
		}
		for _, e := range hits {
			tbnr := e.TBNR
			results.Add(newTapCard(func() { u.addOffence(tbnr) },
				text(e.TBNR+" · "+e.Amount()+" · "+e.Sanction.German(), textSmall, true, colPrimary), para(e.Display())))
		}
	}
	search := widget.NewEntry()
	search.SetPlaceHolder(u.t("notice.search-hint"))
	search.SetText(u.query)
	search.OnChanged = func(s string) { u.query = s; fill() }
	fill()
	chosen := container.NewVBox()
	for _, o := range v.Offences {
		tbnr := o.Entry.TBNR
		items := []fyne.CanvasObject{
			text(tbnr+" · "+o.Entry.Amount()+" · "+o.Entry.Sanction.German(), textSmall, true, colText), para(o.Text),
		}
		for i, alts := range o.Entry.Placeholders() {
			choices := slices.Clone(o.Choices)
			sel := widget.NewSelect(alts, func(s string) {
				for len(choices) <= i {
					choices = append(choices, "1")
				}
				choices[i] = s
				if _, err := u.app.NoticeAddOffence(tbnr, choices...); err != nil {
					u.fail(err)
					return
				}
				u.render()
			})
			if i < len(o.Choices) {
				sel.Selected = choiceText(alts, o.Choices[i])
			}
			items = append(items, atLeast(sel, 0, minTarget))
		}
		items = append(items, target(button(u.t("notice.remove"), widget.MediumImportance, func() {
			if err := u.app.NoticeRemoveOffence(tbnr); err != nil {
				u.fail(err)
				return
			}
			u.render()
		})))
		chosen.Add(panel(items...))
	}
	if len(v.Offences) == 0 {
		chosen.Add(para(u.t("notice.no-offence")))
	}
	return container.NewVBox(caption(u.t("notice.chosen")), chosen, field(u.t("notice.search"), search), results)
}

// choiceText returns the alternative a choice names ("2" or its text).
func choiceText(alts []string, choice string) string {
	if n, err := strconv.Atoi(choice); err == nil && n >= 1 && n <= len(alts) {
		return alts[n-1]
	}
	return choice
}

// addOffence adds an offence, picking the first alternative of each
// placeholder (the warden changes it on the list).
func (u *UI) addOffence(tbnr string) {
	var choices []string
	for _, e := range u.app.SearchOffences(tbnr, 1) {
		for range e.Placeholders() {
			choices = append(choices, "1")
		}
	}
	if _, err := u.app.NoticeAddOffence(tbnr, choices...); err != nil {
		u.fail(err)
		return
	}
	u.query = ""
	u.msg = ""
	u.render()
}

func (u *UI) placeStep(v mobileagent.NoticeView) fyne.CanvasObject {
	locate := func(ctx context.Context) error {
		_, err := u.app.NoticeLocate(ctx)
		return err
	}
	recent := container.NewVBox()
	for i, a := range u.app.RecentAddresses() {
		if i == 4 {
			break
		}
		a := a
		recent.Add(newTapCard(func() {
			u.street, u.house = a.Street, a.HouseNumber
			u.render()
		}, para(a.String())))
	}
	c := container.NewVBox(u.placeFields(v.Position, locate, pageNotice, &u.street, &u.house)...)
	if len(recent.Objects) > 0 {
		c.Add(caption(u.t("place.recent")))
		c.Add(recent)
	}
	return c
}

// placeFields are the place inputs of a notice and of a report: the
// position, with a button that takes it from the GNSS receiver (locate;
// then page is shown again), and the street and house number, kept in
// *street and *house.
func (u *UI) placeFields(p *gnss.Position, locate func(context.Context) error, pg page, street, house *string) []fyne.CanvasObject {
	pos := u.t("place.none")
	if p != nil {
		pos = u.t("place.position", p.Lat, p.Lon, p.Accuracy)
	}
	gps := button(u.t("place.take-gnss"), widget.HighImportance, func() {
		u.act(locate, func(err error) {
			if err != nil {
				u.fail(err)
				return
			}
			u.show(pg, "", false)
		})
	})
	entry := func(v *string) *widget.Entry {
		e := widget.NewEntry()
		e.SetText(*v)
		e.OnChanged = func(s string) { *v = s }
		return e
	}
	return []fyne.CanvasObject{panel(para(pos)), target(gps),
		field(u.t("place.street"), entry(street)), field(u.t("place.house"), entry(house))}
}

// remaining is how long the observation must still run, and the longest
// minimum of the offences (0: none needs one).
func (u *UI) remaining(v mobileagent.NoticeView) (left, need time.Duration) {
	for _, o := range v.Offences {
		need = max(need, o.Entry.MinObservation)
	}
	if need == 0 {
		return 0, 0
	}
	observed := v.Observation.Observed(u.app.Now())
	return max(0, need-observed), need
}

// countdownText says how long the observation must still run.
func (u *UI) countdownText() string {
	v, ok := u.app.Notice()
	if !ok {
		return ""
	}
	left, need := u.remaining(v)
	switch {
	case need == 0:
		return u.t("observe.no-minimum")
	case left > 0:
		return u.t("observe.wait", hms(left), enforcement.FormatDuration(need))
	}
	return u.t("observe.done", enforcement.FormatDuration(need))
}

// hms writes a duration as h:mm:ss or mm:ss.
func hms(d time.Duration) string {
	d = d.Round(time.Second)
	h, m, s := int(d/time.Hour), int(d/time.Minute)%60, int(d/time.Second)%60
	if h > 0 {
		return fmt.Sprintf("%d:%02d:%02d", h, m, s)
	}
	return fmt.Sprintf("%02d:%02d", m, s)
}

func (u *UI) observationStep(v mobileagent.NoticeView) fyne.CanvasObject {
	loc := u.app.Location()
	from := v.Observation.Start.In(loc).Format("15:04:05")
	until := u.t("observe.running")
	if !v.Observation.End.IsZero() {
		until = v.Observation.End.In(loc).Format("15:04:05")
	}
	u.countdown = widget.NewLabel(u.countdownText())
	u.countdown.TextStyle.Bold = true
	u.countdown.Wrapping = fyne.TextWrapWord
	shift := func(d time.Duration) func() {
		return func() {
			if err := u.app.NoticeObservationStart(v.Observation.Start.Add(d)); err != nil {
				u.fail(err)
				return
			}
			u.show(pageNotice, "", false)
		}
	}
	end := button(u.t("observe.end"), widget.MediumImportance, func() {
		if err := u.app.NoticeObservationEnd(u.app.Now()); err != nil {
			u.fail(err)
			return
		}
		u.show(pageNotice, "", false)
	})
	return container.NewVBox(
		panel(para(u.t("observe.from", from)), para(u.t("observe.until", until))),
		panel(u.countdown),
		caption(u.t("observe.adjust")),
		row(target(button("−5 min", widget.MediumImportance, shift(-5*time.Minute))),
			target(button("−1 min", widget.MediumImportance, shift(-time.Minute)))),
		target(end))
}

func (u *UI) detailsStep(v mobileagent.NoticeView) fyne.CanvasObject {
	hours := []string{"–"}
	for h := 1; h <= 12; h++ {
		hours = append(hours, strconv.Itoa(h))
	}
	current := map[string]string{}
	for _, x := range v.Valves {
		current[x.Wheel] = strconv.Itoa(int(x.Hour))
	}
	var wheels []fyne.CanvasObject
	for _, w := range enforcement.Wheels() {
		sel := widget.NewSelect(hours, func(s string) {
			now, _ := u.app.Notice()
			next := map[string]string{}
			for _, x := range now.Valves {
				next[x.Wheel] = strconv.Itoa(int(x.Hour))
			}
			if s == "–" {
				delete(next, w)
			} else {
				next[w] = s
			}
			if err := u.setValves(next); err != nil {
				u.fail(err)
			}
		})
		sel.PlaceHolder = "–"
		sel.Selected = "–"
		if h, ok := current[w]; ok {
			sel.Selected = h
		}
		wheels = append(wheels, field(u.t("valve."+w), sel))
	}
	photo := button(u.t("notice.take-photo", v.Photos), widget.HighImportance, func() {
		u.act(u.app.TakeNoticePhoto, func(err error) {
			if err != nil {
				u.fail(err)
				return
			}
			u.show(pageNotice, u.t("photo.taken"), false)
		})
	})
	remarks := widget.NewMultiLineEntry()
	remarks.SetText(v.Remarks)
	remarks.Wrapping = fyne.TextWrapWord
	remarks.OnChanged = func(s string) {
		if err := u.app.NoticeRemarks(s); err != nil {
			u.msg, u.msgErr = u.errorText(err), true
		}
	}
	return container.NewVBox(caption(u.t("notice.valves")), container.NewGridWithColumns(2, wheels...),
		target(photo), field(u.t("notice.remarks"), remarks))
}

// setValves replaces the valve positions.
func (u *UI) setValves(valves map[string]string) error {
	if err := u.app.NoticeClearValves(); err != nil {
		return err
	}
	for w, h := range valves {
		if err := u.app.NoticeValve(w + h); err != nil {
			return err
		}
	}
	return nil
}

// checkStep is the summary with the amount, or what is missing.
func (u *UI) checkStep(v mobileagent.NoticeView) fyne.CanvasObject {
	where := strings.TrimSpace(v.Street + " " + v.HouseNumber)
	if v.Position != nil {
		where = strings.TrimSpace(where + " " + u.t("place.accuracy", v.Position.Accuracy))
	}
	var valves []string
	for _, x := range v.Valves {
		valves = append(valves, x.String())
	}
	lines := []fyne.CanvasObject{
		text(v.Plate.String()+" ("+v.Plate.Nationality+")", textTitle, true, colText),
		para(strings.TrimSpace(v.Make + " " + v.Colour)),
		para(u.t("check.where", where)),
		para(u.t("check.observed", v.Observation.Start.In(u.app.Location()).Format("15:04"))),
	}
	for _, o := range v.Offences {
		lines = append(lines, para(o.Entry.TBNR+": "+o.Text))
	}
	lines = append(lines, para(u.t("check.details", strings.Join(valves, " "), v.Photos)))
	c := container.NewVBox(panel(lines...))
	a, err := u.app.CheckNotice()
	var wait *enforcement.ObservationError
	switch {
	case errors.As(err, &wait):
		u.countdown = widget.NewLabel(u.countdownText())
		u.countdown.TextStyle.Bold = true
		u.countdown.Wrapping = fyne.TextWrapWord
		c.Add(panel(u.countdown))
	case err != nil:
		c.Add(banner(u.errorText(err), true))
	default:
		kind := u.t("check.warning")
		if a.Sanction == enforcement.Fine {
			kind = u.t("check.fine")
		}
		c.Add(panel(text(enforcement.FormatEuro(a.AmountCents), textHuge, true, colText), para(kind)))
	}
	return c
}

// issueNotice saves and prints the notice.
func (u *UI) issueNotice() {
	var is mobileagent.Issued
	u.act(func(ctx context.Context) error {
		var err error
		is, err = u.app.IssueNotice(ctx)
		return err
	}, func(err error) {
		if err != nil {
			u.fail(err)
			return
		}
		u.issued = &is
		u.show(pageIssued, "", false)
	})
}

// issuedPage says that the notice is saved, and whether it printed.
func (u *UI) issuedPage() fyne.CanvasObject {
	is := u.issued
	if is == nil {
		u.page = pageHome
		return u.homePage()
	}
	e, _ := u.app.NoticeEntry(is.Entry.Number)
	c := container.NewVBox(u.message(), badge(u.t("issued.saved"), colOK),
		text(e.Number, textTitle, true, colText), para(e.Title()))
	actions := []fyne.CanvasObject{}
	switch {
	case e.Voided:
		c.Add(badge(u.t("issued.voided"), colDanger))
	case e.Printed():
		c.Add(badge(u.t("issued.printed"), colOK))
	default:
		msg := u.t("issued.not-printed")
		if is.PrintErr != nil {
			msg = u.t("issued.print-failed", is.PrintErr.Error())
		}
		c.Add(banner(msg, true))
		actions = append(actions, target(button(u.t("issued.reprint"), widget.HighImportance, func() { u.reprint(e.Number) })))
	}
	c.Add(para(u.t("issued.status", e.Status.Label(u.opts.Lang))))
	voidB := button(u.t("void.title"), widget.DangerImportance, func() {
		u.reason = ""
		u.show(pageVoid, "", false)
	})
	if e.Voided {
		voidB.Disable()
	}
	done := button(u.t("action.done"), widget.HighImportance, func() { u.issued = nil; u.show(pageHome, "", false) })
	actions = append(actions, actionRow(voidB, done))
	return screen(u.statusBar(), u.t("issued.title"), c, actions...)
}

// reprint prints a notice again.
func (u *UI) reprint(number string) {
	u.act(func(ctx context.Context) error { return u.app.PrintNotice(ctx, number) }, func(err error) {
		if u.issued != nil {
			u.issued.PrintErr = err
		}
		if err != nil {
			u.fail(err)
			return
		}
		u.msg, u.msgErr = u.t("issued.printed"), false
		u.render()
	})
}

// voidPage asks for the reason of a void.
func (u *UI) voidPage() fyne.CanvasObject {
	number := ""
	if u.issued != nil {
		number = u.issued.Entry.Number
	} else {
		number, _, _ = strings.Cut(u.selected.Title, " · ")
	}
	reason := widget.NewMultiLineEntry()
	reason.Wrapping = fyne.TextWrapWord
	reason.SetText(u.reason)
	reason.OnChanged = func(s string) { u.reason = s }
	c := container.NewVBox(u.message(), text(number, textTitle, true, colText), para(u.t("void.hint")),
		field(u.t("void.reason"), reason))
	cancel := button(u.t("action.cancel"), widget.MediumImportance, func() { u.backFromVoid("") })
	void := button(u.t("void.confirm"), widget.DangerImportance, func() {
		if strings.TrimSpace(u.reason) == "" {
			u.msg, u.msgErr = u.t("void.reason-missing"), true
			u.render()
			return
		}
		u.act(func(ctx context.Context) error {
			_, err := u.app.VoidNotice(ctx, number, u.reason)
			return err
		}, func(err error) {
			if err != nil {
				u.fail(err)
				return
			}
			u.backFromVoid(u.t("void.done", number))
		})
	})
	return screen(u.statusBar(), u.t("void.title"), c, actionRow(cancel, void))
}

// backFromVoid returns to where the void was started.
func (u *UI) backFromVoid(msg string) {
	if u.issued != nil {
		u.show(pageIssued, msg, false)
		return
	}
	u.show(pageCases, msg, false)
}
