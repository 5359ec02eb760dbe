package ui

import (
	"context"
	"strings"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/container"
	"fyne.io/fyne/v2/widget"

	"github.com/kogge-fleet/kogge/mobile-agent/shift"
)

// loginPage asks for the officer number, then the PIN, on a keypad.
func (u *UI) loginPage() fyne.CanvasObject {
	field, shown := u.t("login.officer"), u.officerNumber
	if u.loginStage == 1 {
		field, shown = u.t("login.pin", u.officerNumber), strings.Repeat("●", len(u.pinDigits))
	}
	display := text(shown, textHuge, true, colText)
	content := container.NewVBox(u.message(), para(u.t("login.hint")), caption(field), panel(atLeast(display, 0, 56)))
	key := func(label string, tapped func()) fyne.CanvasObject {
		b := button(label, widget.MediumImportance, tapped)
		return target(b)
	}
	digit := func(d string) fyne.CanvasObject {
		return key(d, func() {
			if u.loginStage == 0 && len(u.officerNumber) < 12 {
				u.officerNumber += d
			} else if u.loginStage == 1 && len(u.pinDigits) < shift.MaxPINLength {
				u.pinDigits += d
			}
			u.msg = ""
			u.render()
		})
	}
	back := key("⌫", func() {
		if u.loginStage == 1 {
			if u.pinDigits == "" {
				u.loginStage = 0
			} else {
				u.pinDigits = u.pinDigits[:len(u.pinDigits)-1]
			}
		} else if u.officerNumber != "" {
			u.officerNumber = u.officerNumber[:len(u.officerNumber)-1]
		}
		u.render()
	})
	// "OK" fits the keypad's column in every language; the caption above
	// says what it confirms.
	ok := button(u.t("login.ok"), widget.HighImportance, u.loginNext)
	pad := container.NewGridWithColumns(3,
		digit("1"), digit("2"), digit("3"), digit("4"), digit("5"), digit("6"),
		digit("7"), digit("8"), digit("9"), back, digit("0"), target(ok))
	return screen(u.statusBar(), u.t("login.title"), content, pad)
}

// loginNext moves from the officer number to the PIN, then logs in.
func (u *UI) loginNext() {
	if u.loginStage == 0 {
		if u.officerNumber == "" {
			u.msg, u.msgErr = u.t("login.officer-missing"), true
			u.render()
			return
		}
		u.loginStage = 1
		u.msg = ""
		u.render()
		return
	}
	id, pin := u.officerNumber, u.pinDigits
	u.pinDigits = ""
	u.act(func(ctx context.Context) error {
		_, err := u.app.Login(ctx, id, pin)
		return err
	}, func(err error) {
		// Either the number or the PIN was wrong: both are typed again.
		u.loginStage, u.officerNumber = 0, ""
		if err != nil {
			u.fail(err)
			return
		}
		u.show(pageHome, "", false)
	})
}

// homePage is the shift screen: who is on duty, the shift, the
// peripherals, and what to do next.
func (u *UI) homePage() fyne.CanvasObject {
	st := u.app.ShiftStatus()
	if st.Officer == nil {
		u.page = pageLogin
		return u.loginPage()
	}
	o := st.Officer
	content := container.NewVBox(u.message(), text(o.Name, textTitle-4, true, colText), para(u.t("home.officer", o.ID, o.Crew)))
	onShift := st.Shift != nil && st.Shift.Officer == o.ID
	if onShift {
		content.Add(para(u.t("home.shift-since", st.Shift.Start.In(u.app.Location()).Format("15:04"))))
	} else {
		content.Add(para(u.t("home.no-shift")))
	}
	var devs []fyne.CanvasObject
	for _, p := range u.app.Peripherals() {
		state, ground := u.t("peripheral.ok"), colOK
		if !p.Status.OK() {
			state, ground = p.Status.Reason, colDanger
			if state == "" {
				state = p.Status.State.String()
			}
		}
		devs = append(devs, container.NewBorder(nil, nil, container.NewVBox(badge(u.t("peripheral."+p.Name), ground)), nil, para(state)))
	}
	link := u.t("status.offline")
	if u.app.Online() {
		link = u.t("status.online")
	}
	devs = append(devs, para(u.t("home.link", link)), para(u.t("home.catalogue", u.app.Catalogue().Version())))
	content.Add(panel(devs...))

	logout := button(u.t("home.logout"), widget.MediumImportance, func() {
		u.app.Logout()
		u.show(pageLogin, u.t("home.logged-out"), false)
	})
	if !onShift {
		start := button(u.t("home.start-shift"), widget.HighImportance, func() {
			u.act(func(ctx context.Context) error {
				_, err := u.app.StartShift(ctx)
				return err
			}, func(err error) {
				if err != nil {
					u.fail(err)
					return
				}
				u.show(pageHome, "", false)
			})
		})
		return screen(u.statusBar(), u.t("home.title"), content, target(start), target(logout))
	}
	newNotice := button(u.t("home.new-notice"), widget.HighImportance, u.startNotice)
	newReport := button(u.t("home.new-report"), widget.HighImportance, u.startReport)
	cases := button(u.t("home.cases"), widget.MediumImportance, func() { u.show(pageCases, "", false) })
	end := button(u.t("home.end-shift"), widget.DangerImportance, func() {
		u.act(func(ctx context.Context) error {
			_, err := u.app.EndShift(ctx)
			return err
		}, func(err error) {
			if err != nil {
				u.fail(err)
				return
			}
			u.show(pageLogin, u.t("home.shift-ended"), false)
		})
	})
	content.Add(target(end))
	return screen(u.statusBar(), u.t("home.title"), content,
		row(target(cases), target(logout)), target(newReport), target(newNotice))
}
