package ui

import (
	"context"
	"image/color"
	"slices"
	"strings"
	"time"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/container"
	"fyne.io/fyne/v2/widget"

	mobileagent "github.com/kogge-fleet/kogge/mobile-agent"
	"github.com/kogge-fleet/kogge/mobile-agent/roadwork"
	"github.com/kogge-fleet/kogge/mobile-agent/shift"
	"github.com/kogge-fleet/kogge/protocol/casefile"
)

// statusColour is the ground of a case's status badge.
func statusColour(c shift.Case) color.Color {
	switch {
	case c.Attention || c.Status == mobileagent.NoticeVoided:
		return colDanger
	case c.Status == string(mobileagent.NoticeSaved) || c.Status == string(roadwork.StatusSaved) ||
		c.Status == string(mobileagent.NoticeSending) || c.Status == string(roadwork.StatusSending):
		return colWarn
	case c.Reference != "":
		return colOK
	}
	return colPrimary
}

// casesPage lists the officer's cases of the day with their statuses.
func (u *UI) casesPage() fyne.CanvasObject {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	cases, err := u.app.Cases(ctx, u.opts.Lang)
	cancel()
	list := container.NewVBox(u.message())
	if err != nil {
		list.Add(banner(u.errorText(err), true))
	}
	if len(cases) == 0 {
		list.Add(para(u.t("cases.none")))
	}
	for _, c := range cases {
		kind := u.t("cases.notice")
		if c.Kind == casefile.KindReport {
			kind = u.t("cases.report")
		}
		lines := []fyne.CanvasObject{
			text(c.CreatedAt.In(u.app.Location()).Format("15:04")+" · "+kind, textSmall, true, colDisabledFg),
			para(c.Title),
			container.NewHBox(badge(c.StatusText, statusColour(c))),
		}
		if c.Reference != "" {
			lines = append(lines, para(u.t("cases.reference", c.Reference)))
		}
		if c.Note != "" {
			lines = append(lines, para(c.Note))
		}
		list.Add(newTapCard(func() { u.openCase(c) }, lines...))
	}
	back := button(u.t("action.back"), widget.HighImportance, func() { u.show(pageHome, "", false) })
	return screen(u.statusBar(), u.t("cases.title"), list, target(back))
}

// openCase shows a case: a report's status, or a notice with its
// actions.
func (u *UI) openCase(c shift.Case) {
	u.selected = c
	if c.Kind == casefile.KindReport {
		u.reportID = c.ID
		u.show(pageReportStatus, "", false)
		return
	}
	u.issued = nil
	u.show(pageCase, "", false)
}

// casePage is a notice of the list: its status, reprint and void.
func (u *UI) casePage() fyne.CanvasObject {
	number, _, _ := strings.Cut(u.selected.Title, " · ")
	e, ok := u.app.NoticeEntry(number)
	if !ok {
		u.page = pageCases
		return u.casesPage()
	}
	c := container.NewVBox(u.message(), text(e.Number, textTitle, true, colText), para(e.Title()))
	st := e.Status.Label(u.opts.Lang)
	ground := color.Color(colPrimary)
	if e.Voided {
		st, ground = u.t("issued.voided")+" · "+st, colDanger
	}
	c.Add(container.NewHBox(badge(st, ground)))
	if e.Reference != "" {
		c.Add(para(u.t("cases.reference", e.Reference)))
	}
	if e.Voided {
		c.Add(para(u.t("void.reason") + ": " + e.VoidReason))
	}
	if e.Printed() {
		c.Add(para(u.t("case.printed", e.PrintedAt.In(u.app.Location()).Format("15:04"))))
	}
	reprint := button(u.t("issued.reprint"), widget.MediumImportance, func() { u.reprint(e.Number) })
	void := button(u.t("void.title"), widget.DangerImportance, func() {
		u.reason = ""
		u.show(pageVoid, "", false)
	})
	if e.Voided {
		reprint.Disable()
		void.Disable()
	}
	back := button(u.t("action.back"), widget.HighImportance, func() { u.show(pageCases, "", false) })
	return screen(u.statusBar(), u.t("case.title"), c, row(target(reprint), target(void)), target(back))
}

// startReport starts a damage report.
func (u *UI) startReport() {
	if err := u.app.NewReport("", ""); err != nil {
		u.fail(err)
		return
	}
	u.report = reportInput{}
	u.reportSeen = mobileagent.ReportPhoto{}
	u.show(pageReport, "", false)
}

// reportPage is the damage report on one screen.
func (u *UI) reportPage() fyne.CanvasObject {
	v, ok := u.app.Report()
	if !ok {
		u.page = pageHome
		return u.homePage()
	}
	var cats []fyne.CanvasObject
	for _, cat := range roadwork.Categories() {
		cats = append(cats, choice(cat.Label(u.opts.Lang), v.Category == cat, false, func() {
			if err := u.app.ReportCategory(string(cat)); err != nil {
				u.fail(err)
				return
			}
			u.render()
		}))
	}
	var sevs []fyne.CanvasObject
	for _, s := range roadwork.Severities() {
		sevs = append(sevs, choice(roadwork.SeverityLabel(s, u.opts.Lang), v.Severity == s, s == casefile.SeverityDanger, func() {
			if err := u.app.ReportSeverity(s); err != nil {
				u.fail(err)
				return
			}
			u.render()
		}))
	}
	locate := func(ctx context.Context) error {
		_, err := u.app.ReportLocate(ctx)
		return err
	}
	note := widget.NewMultiLineEntry()
	note.Wrapping = fyne.TextWrapWord
	note.SetText(u.report.note)
	note.OnChanged = func(s string) { u.report.note = s }
	photo := button(u.t("report.take-photo", len(v.Photos)), widget.HighImportance, func() {
		var p mobileagent.ReportPhoto
		u.act(func(ctx context.Context) error {
			var err error
			p, err = u.app.TakeReportPhoto(ctx)
			return err
		}, func(err error) {
			if err != nil {
				u.fail(err)
				return
			}
			u.reportSeen = p
			u.show(pageReport, u.t("report.photo-blurred", p.Faces, p.Plates), false)
		})
	})
	objs := []fyne.CanvasObject{u.message(),
		caption(u.t("report.category")), container.NewGridWithColumns(2, cats...),
		caption(u.t("report.severity")), container.NewGridWithColumns(2, sevs...),
		caption(u.t("report.place"))}
	objs = append(objs, u.placeFields(v.Position, locate, pageReport, &u.report.street, &u.report.house)...)
	c := container.NewVBox(append(objs, field(u.t("report.note"), note), target(photo))...)
	cancel := button(u.t("action.cancel"), widget.MediumImportance, func() {
		u.app.DiscardReport()
		u.show(pageHome, u.t("report.discarded"), false)
	})
	submit := button(u.t("report.submit"), widget.HighImportance, u.submitReport)
	return screen(u.statusBar(), u.t("report.title"), c, actionRow(cancel, submit))
}

// submitReport hands the fields to the app and files the report.
func (u *UI) submitReport() {
	in := u.report
	var e roadwork.Entry
	u.act(func(ctx context.Context) error {
		if strings.TrimSpace(in.street) != "" {
			if err := u.app.ReportAddress(in.street, in.house); err != nil {
				return err
			}
		}
		if err := u.app.ReportNote(in.note); err != nil {
			return err
		}
		var err error
		e, err = u.app.SubmitReport(ctx)
		return err
	}, func(err error) {
		if err != nil {
			u.fail(err)
			return
		}
		u.reportID = e.ID
		u.show(pageReportStatus, u.t("report.saved"), false)
	})
}

// reportStatusPage shows a report's status as the office gives it.
func (u *UI) reportStatusPage() fyne.CanvasObject {
	e, ok := u.app.ReportEntry(u.reportID)
	if !ok {
		u.page = pageCases
		return u.casesPage()
	}
	ground := color.Color(colPrimary)
	switch {
	case e.Status.Attention():
		ground = colDanger
	case e.Status == roadwork.StatusSaved || e.Status == roadwork.StatusSending:
		ground = colWarn
	case e.Status == roadwork.StatusSolved:
		ground = colOK
	}
	c := container.NewVBox(u.message(),
		text(e.Category.Label(u.opts.Lang), textTitle, true, colText),
		para(roadwork.SeverityLabel(e.Severity, u.opts.Lang)+" · "+e.Where()),
		container.NewHBox(badge(e.Status.Label(u.opts.Lang), ground)))
	if e.Reference != "" {
		c.Add(para(u.t("cases.reference", e.Reference)))
	}
	if e.Note != "" {
		c.Add(panel(caption(u.t("report.office-note")), para(e.Note)))
	}
	if e.Reason != "" {
		c.Add(banner(e.Reason, true))
	}
	c.Add(para(u.t("report.updated", e.UpdatedAt.In(u.app.Location()).Format("15:04"))))
	var steps []fyne.CanvasObject
	order := roadwork.Statuses()
	cur := slices.Index(order, e.Status)
	for _, s := range []roadwork.Status{roadwork.StatusSaved, roadwork.StatusSent, roadwork.StatusReceived,
		roadwork.StatusInProgress, roadwork.StatusSolved} {
		mark := "○"
		if slices.Index(order, s) <= cur && (s != roadwork.StatusSolved || e.Status == s) {
			mark = "●"
		}
		steps = append(steps, para(mark+" "+s.Label(u.opts.Lang)))
	}
	if e.Status.Final() && e.Status != roadwork.StatusSolved {
		steps = append(steps, para("● "+e.Status.Label(u.opts.Lang)))
	}
	c.Add(panel(steps...))
	back := button(u.t("action.back"), widget.HighImportance, func() { u.show(pageCases, "", false) })
	home := button(u.t("action.home"), widget.MediumImportance, func() { u.show(pageHome, "", false) })
	return screen(u.statusBar(), u.t("report.status-title"), c, row(target(home), target(back)))
}
