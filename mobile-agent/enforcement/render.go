package enforcement

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/kogge-fleet/kogge/drivers/printer/escpos"
	"github.com/kogge-fleet/kogge/protocol/casefile"
)

// Office is the issuing office as the printed notice shows it, with the
// account that takes warning payments.
type Office struct {
	// Name is the authority ("Freie Hansestadt Bremen"); required.
	Name string
	// Unit is the department ("Ordnungsamt – Verkehrsüberwachung").
	Unit string
	// Address is the postal address on one line.
	Address string
	// Contact is a phone number or web address for questions.
	Contact string
	// Payee is the account holder; default Name.
	Payee string
	// IBAN and BIC of the account; IBAN required, BIC optional (SEPA
	// transfers need none).
	IBAN string
	BIC  string
	// PaymentDays is the time to pay a warning: § 56 Abs. 2 OWiG says
	// at once or within a week. Default 7.
	PaymentDays int
	// PayNote and ObjectNote replace the default texts on how to pay a
	// warning and what to do when one does not agree.
	PayNote    string
	ObjectNote string
}

// Default texts of a notice.
const (
	defaultPayNote = "Wenn Sie mit der Verwarnung einverstanden sind, überweisen Sie das Verwarnungsgeld bis zum angegebenen Tag " +
		"(§ 56 Abs. 2 OWiG). Geben Sie als Verwendungszweck nur die Zahlungsreferenz an, oder scannen Sie den GiroCode " +
		"mit Ihrer Banking-App. Mit der Zahlung ist die Sache erledigt."
	defaultObjectNote = "Wenn Sie nicht einverstanden sind, zahlen Sie nicht. Die Verwarnung wird dann nicht wirksam; " +
		"die Bußgeldstelle schickt Ihnen einen Anhörungsbogen, und Sie können sich äußern (§ 55 OWiG)."
	fineNote = "Dieser Verstoß kann nicht mit einer Verwarnung erledigt werden. Der Vorgang wird an die Bußgeldstelle " +
		"abgegeben. Sie erhalten einen Anhörungsbogen und können sich äußern (§ 55 OWiG). Bitte zahlen Sie jetzt nichts."
	fineObjectNote = "Gegen einen Bußgeldbescheid können Sie innerhalb von zwei Wochen nach Zustellung Einspruch " +
		"einlegen (§ 67 OWiG)."
	concurrentNote = "Eine Handlung, mehrere Verstöße: es gilt der höchste Betrag (§ 19 OWiG)."
)

func (o *Office) setDefaults() {
	if o.Payee == "" {
		o.Payee = o.Name
	}
	if o.PaymentDays == 0 {
		o.PaymentDays = 7
	}
}

// Validate reports an office that cannot be printed or paid to.
func (o *Office) Validate() error {
	if strings.TrimSpace(o.Name) == "" {
		return errors.New("office: no name")
	}
	for _, f := range []struct{ name, v string }{
		{"name", o.Name}, {"unit", o.Unit}, {"address", o.Address}, {"contact", o.Contact},
	} {
		if err := checkText(f.v, casefile.MaxText); err != nil {
			return fmt.Errorf("office: %s: %w", f.name, err)
		}
	}
	for _, f := range []struct{ name, v string }{{"pay note", o.PayNote}, {"objection note", o.ObjectNote}} {
		if err := checkText(f.v, 2000); err != nil {
			return fmt.Errorf("office: %s: %w", f.name, err)
		}
	}
	if err := checkText(o.Payee, 70); err != nil {
		return fmt.Errorf("office: payee (at most 70 bytes in a GiroCode): %w", err)
	}
	if err := CheckIBAN(o.IBAN); err != nil {
		return fmt.Errorf("office: %w", err)
	}
	if b := o.BIC; b != "" && (len(b) != 8 && len(b) != 11 || !isAlnum(b)) {
		return fmt.Errorf("office: BIC %q: want 8 or 11 upper-case letters and digits", clip(b))
	}
	if o.PaymentDays < 0 || o.PaymentDays > 60 {
		return fmt.Errorf("office: payment days %d: want 1 to 60", o.PaymentDays)
	}
	return nil
}

// RenderOptions configure a Renderer.
type RenderOptions struct {
	// Columns is the paper width in characters: 48 for 80 mm paper (the
	// default), 32 for 58 mm.
	Columns int
	// Location is the office's time zone for printed times. Default
	// Europe/Berlin.
	Location *time.Location
	// Device names the handheld on the notice (optional).
	Device string
}

// Renderer prints notices as ESC/POS jobs (code page 858, for umlauts,
// ß, § and €).
type Renderer struct {
	office Office
	cols   int
	loc    *time.Location
	device string
}

// ErrVoided means a voided notice was to be printed.
var ErrVoided = errors.New("notice is voided")

// NewRenderer returns a renderer for the office.
func NewRenderer(office Office, opts RenderOptions) (*Renderer, error) {
	office.setDefaults()
	if err := office.Validate(); err != nil {
		return nil, fmt.Errorf("enforcement: %w", err)
	}
	if opts.Columns == 0 {
		opts.Columns = 48
	}
	if opts.Columns < 32 || opts.Columns > 96 {
		return nil, fmt.Errorf("enforcement: %d columns: want 32–96", opts.Columns)
	}
	if opts.Location == nil {
		loc, err := time.LoadLocation("Europe/Berlin")
		if err != nil {
			return nil, fmt.Errorf("enforcement: time zone Europe/Berlin: %w (install tzdata or set RenderOptions.Location)", err)
		}
		opts.Location = loc
	}
	if err := checkText(opts.Device, casefile.MaxText); err != nil {
		return nil, fmt.Errorf("enforcement: device: %w", err)
	}
	return &Renderer{office: office, cols: opts.Columns, loc: opts.Location, device: opts.Device}, nil
}

// labelWidth is the column where the values of the fields start.
const labelWidth = 13

// Render returns the print job of a notice. A warning prints as a
// Verwarnung with the amount, how to pay (account, payment reference, due
// date, a GiroCode QR code) and how to object. A fine prints no warning:
// the slip (Hinweis) tells the driver that the fine office takes over and
// not to pay now. Both show the office, notice number, time, place, plate
// and offences with their TBNR and the officer. cat supplies the offence
// texts (the version valid at the time of the offence). A voided notice
// is not printed (ErrVoided).
func (r *Renderer) Render(n *casefile.Notice, cat *Catalogue) ([]byte, error) {
	switch {
	case n == nil:
		return nil, errors.New("render notice: none")
	case n.Voided:
		return nil, fmt.Errorf("render notice %s: %w; print a new notice instead", n.Number, ErrVoided)
	case cat == nil:
		return nil, fmt.Errorf("render notice %s: no catalogue", n.Number)
	}
	if err := n.Validate(); err != nil {
		return nil, fmt.Errorf("render notice: %w", err)
	}
	warning := n.Sanction == casefile.SanctionWarning
	var qr string
	if warning {
		var err error
		if qr, err = r.GiroCode(n); err != nil {
			return nil, fmt.Errorf("render notice %s: %w", n.Number, err)
		}
	}
	w := r.cols
	d := escpos.NewDocument(escpos.CP858)
	title := "Hinweis"
	if warning {
		title = "Verwarnung"
	}
	d.Align(escpos.Center).Bold(true).Size(2, 2).Line(title).Size(1, 1)
	d.Lines(r.office.Name, w).Bold(false)
	for _, l := range []string{r.office.Unit, r.office.Address, r.office.Contact} {
		if l != "" {
			d.Lines(l, w)
		}
	}
	d.Feed(1).Align(escpos.Left)

	r.field(d, "Nr.:", n.Number)
	r.field(d, "Tatzeit:", r.when(n))
	r.field(d, "Tatort:", place(n.Location))
	r.field(d, "Kennzeichen:", plateText(n.Plate)+" ("+n.Plate.Nationality+")")
	if v := joinNonEmpty(", ", n.Make, n.Colour); v != "" {
		r.field(d, "Fahrzeug:", v)
	}
	if len(n.Valves) > 0 {
		var vs []string
		for _, v := range n.Valves {
			vs = append(vs, v.String())
		}
		r.field(d, "Ventile:", strings.Join(vs, " "))
	}
	d.Feed(1)

	at := n.ObservedFrom.Time().In(r.loc)
	for i, tbnr := range n.Offences {
		d.Bold(true).Line("Tatbestand " + tbnr).Bold(false)
		var filled string
		if i < len(n.OffenceTexts) {
			filled = n.OffenceTexts[i]
		}
		text, legal := offenceText(cat, tbnr, at, filled)
		if text != "" {
			d.Lines(text, w)
		}
		if legal != "" {
			d.Lines(legal, w)
		}
	}
	if warning && len(n.Offences) > 1 {
		d.Lines(concurrentNote, w)
	}
	d.Feed(1)

	if warning {
		r.payment(d, n, qr)
		object := r.office.ObjectNote
		if object == "" {
			object = defaultObjectNote
		}
		d.Bold(true).Line("Nicht einverstanden?").Bold(false).Lines(object, w)
	} else {
		d.Lines(fineNote, w).Feed(1)
		d.Bold(true).Line("Nicht einverstanden?").Bold(false).Lines(fineObjectNote, w)
	}
	d.Feed(1)
	sign := "Dienstnummer " + n.Officer
	if r.device != "" {
		sign += " · Gerät " + r.device
	}
	d.Align(escpos.Right).Lines(sign, w).Align(escpos.Left)
	d.Feed(3).Cut(true)
	return d.Bytes()
}

// payment prints the amount and how to pay a warning.
func (r *Renderer) payment(d *escpos.Document, n *casefile.Notice, qr string) {
	w := r.cols
	d.Text("Verwarnungsgeld: ").Bold(true).Underline(escpos.Underline1).
		Line(FormatEuro(n.AmountCents)).Underline(escpos.NoUnderline).Bold(false)
	due := n.CreatedAt.Time().In(r.loc).AddDate(0, 0, r.office.PaymentDays)
	r.field(d, "Zahlbar bis:", due.Format("02.01.2006"))
	d.Feed(1)
	pay := r.office.PayNote
	if pay == "" {
		pay = defaultPayNote
	}
	d.Bold(true).Line("So zahlen Sie").Bold(false).Lines(pay, w)
	r.field(d, "Empfänger:", r.office.Payee)
	r.field(d, "IBAN:", Group4(strings.ToUpper(strings.ReplaceAll(r.office.IBAN, " ", ""))))
	if r.office.BIC != "" {
		r.field(d, "BIC:", r.office.BIC)
	}
	r.field(d, "Betrag:", FormatEuro(n.AmountCents))
	r.field(d, "Referenz:", Group4(n.PaymentRef))
	d.Feed(1).Align(escpos.Center)
	d.QR(qr, escpos.QR{Module: 6, Level: escpos.ECMedium})
	d.Lines("GiroCode: mit der Banking-App scannen", w).Align(escpos.Left).Feed(1)
}

// field prints "label  value", the value wrapped and indented.
func (r *Renderer) field(d *escpos.Document, label, value string) {
	pad := strings.Repeat(" ", labelWidth)
	for i, l := range escpos.Wrap(value, r.cols-labelWidth) {
		if i == 0 {
			d.Line(label + pad[min(len([]rune(label)), labelWidth):] + l)
		} else {
			d.Line(pad + l)
		}
	}
}

// when is the time of the offence: "06.01.2025, 08:15–08:32 Uhr".
func (r *Renderer) when(n *casefile.Notice) string {
	from := n.ObservedFrom.Time().In(r.loc)
	s := from.Format("02.01.2006, 15:04")
	if n.ObservedTo != 0 {
		to := n.ObservedTo.Time().In(r.loc)
		switch {
		case to.Format("02.01.2006 15:04") == from.Format("02.01.2006 15:04"):
		case to.Format("02.01.2006") == from.Format("02.01.2006"):
			s += "–" + to.Format("15:04")
		default:
			s += " Uhr – " + to.Format("02.01.2006, 15:04")
		}
	}
	return s + " Uhr"
}

func place(p casefile.Place) string {
	street := joinNonEmpty(" ", p.Street, p.HouseNumber)
	city := joinNonEmpty(" ", p.PostalCode, p.City)
	s := joinNonEmpty(", ", street, city)
	if p.Position != nil && street == "" {
		pos := fmt.Sprintf("GPS %.5f, %.5f", p.Position.Lat, p.Position.Lon)
		if p.Position.AccuracyM > 0 {
			pos += " (±" + strconv.Itoa(int(p.Position.AccuracyM+0.5)) + " m)"
		}
		s = joinNonEmpty(", ", pos, s)
	}
	return s
}

// plateText is the plate as printed, with the district code set off when
// it can be told.
func plateText(p casefile.Plate) string {
	if pl, err := ParsePlate(p.Nationality, p.Text); err == nil {
		return pl.String()
	}
	return p.Text
}

// offenceText returns the printed text and legal reference of an offence:
// the text as the notice recorded it (filled), else the catalogue's; the
// catalogue version valid at the time, else the newest one.
func offenceText(cat *Catalogue, tbnr string, at time.Time, filled string) (text, legal string) {
	e, err := cat.Lookup(tbnr, at)
	if err != nil {
		var ok bool
		if e, ok = cat.Latest(tbnr); !ok {
			return "", ""
		}
	}
	if filled != "" {
		return filled, e.LegalRef
	}
	return e.Display(), e.LegalRef
}

func joinNonEmpty(sep string, parts ...string) string {
	var out []string
	for _, p := range parts {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return strings.Join(out, sep)
}

// GiroCode returns the payment data of a warning for its QR code: an EPC
// QR code (EPC069-12 version 002, "GiroCode"), which banking apps in the
// SEPA area read — service tag BCD, version 002, UTF-8, SEPA credit
// transfer, BIC (optional), payee, IBAN, amount "EUR25.00", no purpose
// code, the RF payment reference as structured remittance, and the notice
// number as a note to the payer.
func (r *Renderer) GiroCode(n *casefile.Notice) (string, error) {
	if n.Sanction != casefile.SanctionWarning {
		return "", fmt.Errorf("giro code: notice %s is a %s; only warnings are paid on the spot", n.Number, n.Sanction)
	}
	if err := CheckPaymentReference(n.PaymentRef); err != nil {
		return "", fmt.Errorf("giro code: %w", err)
	}
	if n.AmountCents < 1 || n.AmountCents > 99999999999 {
		return "", fmt.Errorf("giro code: amount %d cents out of range", n.AmountCents)
	}
	lines := []string{
		"BCD", "002", "1", "SCT",
		r.office.BIC,
		r.office.Payee,
		strings.ToUpper(strings.ReplaceAll(r.office.IBAN, " ", "")),
		"EUR" + formatAmount(n.AmountCents, ".", ""),
		"",
		strings.ReplaceAll(n.PaymentRef, " ", ""),
		"",
		clipBytes("Verwarnung "+n.Number, 70),
	}
	s := strings.Join(lines, "\n")
	if len(s) > 331 {
		return "", fmt.Errorf("giro code: %d bytes, at most 331", len(s))
	}
	return s, nil
}

// clipBytes cuts s to at most n bytes at a character boundary.
func clipBytes(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !isRuneStart(s[n]) {
		n--
	}
	return s[:n]
}

func isRuneStart(b byte) bool { return b&0xC0 != 0x80 }
