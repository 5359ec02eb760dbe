package alerts

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/quotedprintable"
	"net"
	"net/http"
	"net/smtp"
	"strings"
	"time"
)

// Webhook posts notifications as JSON. With a secret, the header
// X-Kogge-Signature carries sha256=HEX, the HMAC-SHA256 of the body under
// the secret, so that the receiver can check who sent it.
type Webhook struct {
	Client *http.Client
	Secret string
}

var _ Sender = (*Webhook)(nil)

// Send posts n to url and wants a 2xx answer.
func (w *Webhook) Send(ctx context.Context, url string, n Notification) error {
	body, err := json.Marshal(n)
	if err != nil {
		return fmt.Errorf("encode notification: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("webhook %s: %w", url, err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "kogge-alerts")
	req.Header.Set("X-Kogge-Event", n.Event)
	if w.Secret != "" {
		mac := hmac.New(sha256.New, []byte(w.Secret))
		mac.Write(body)
		req.Header.Set("X-Kogge-Signature", "sha256="+hex.EncodeToString(mac.Sum(nil)))
	}
	c := w.Client
	if c == nil {
		c = &http.Client{Timeout: 15 * time.Second}
	}
	resp, err := c.Do(req)
	if err != nil {
		return fmt.Errorf("webhook %s: %w", url, err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("webhook %s answered %s", url, resp.Status)
	}
	return nil
}

// TLS modes of the mailer.
const (
	// SMTPStartTLS upgrades the connection with STARTTLS and refuses a
	// server that does not offer it.
	SMTPStartTLS = "starttls"
	// SMTPTLS speaks TLS from the start (port 465).
	SMTPTLS = "tls"
	// SMTPPlain sends without TLS: only for a relay on the same host.
	SMTPPlain = "none"
)

// Mailer sends notifications by e-mail over SMTP.
type Mailer struct {
	// Addr is the SMTP server, HOST:PORT.
	Addr string
	// From is the sender address.
	From string
	// Username and Password authenticate (PLAIN, over TLS only) when set.
	Username string
	Password string
	// TLS is SMTPStartTLS (default), SMTPTLS or SMTPPlain.
	TLS string
	// TLSConfig is used for TLS; default verifies the server's name.
	TLSConfig *tls.Config
	// Hostname is the name given in EHLO; default "kogge".
	Hostname string
}

var _ Sender = (*Mailer)(nil)

// Validate checks the settings.
func (m *Mailer) Validate() error {
	if _, _, err := net.SplitHostPort(m.Addr); err != nil {
		return fmt.Errorf("smtp address %q: want HOST:PORT", m.Addr)
	}
	if !strings.Contains(m.From, "@") {
		return fmt.Errorf("smtp sender %q: an e-mail address is needed", m.From)
	}
	switch m.TLS {
	case "", SMTPStartTLS, SMTPTLS, SMTPPlain:
	default:
		return fmt.Errorf("smtp tls %q: want starttls, tls or none", m.TLS)
	}
	if m.Username != "" && m.TLS == SMTPPlain {
		return errors.New("smtp: a password is never sent without TLS; use starttls or tls")
	}
	return nil
}

// Send mails n to the address to.
func (m *Mailer) Send(ctx context.Context, to string, n Notification) error {
	if err := m.Validate(); err != nil {
		return err
	}
	host, _, _ := net.SplitHostPort(m.Addr)
	tlsCfg := m.TLSConfig
	if tlsCfg == nil {
		tlsCfg = &tls.Config{ServerName: host, MinVersion: tls.VersionTLS12}
	}
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", m.Addr)
	if err != nil {
		return fmt.Errorf("smtp %s: %w", m.Addr, err)
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	} else {
		_ = conn.SetDeadline(time.Now().Add(time.Minute))
	}
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Now()) })
	defer stop()
	if m.TLS == SMTPTLS {
		conn = tls.Client(conn, tlsCfg)
	}
	c, err := smtp.NewClient(conn, host)
	if err != nil {
		return fmt.Errorf("smtp %s: %w", m.Addr, err)
	}
	defer c.Close()
	hostname := m.Hostname
	if hostname == "" {
		hostname = "kogge"
	}
	if err := c.Hello(hostname); err != nil {
		return fmt.Errorf("smtp %s: %w", m.Addr, err)
	}
	if m.TLS == "" || m.TLS == SMTPStartTLS {
		if ok, _ := c.Extension("STARTTLS"); !ok {
			return fmt.Errorf("smtp %s does not offer STARTTLS; set the mode to tls or, for a local relay, none", m.Addr)
		}
		if err := c.StartTLS(tlsCfg); err != nil {
			return fmt.Errorf("smtp %s: starttls: %w", m.Addr, err)
		}
	}
	if m.Username != "" {
		if err := c.Auth(smtp.PlainAuth("", m.Username, m.Password, host)); err != nil {
			return fmt.Errorf("smtp %s: authentication: %w", m.Addr, err)
		}
	}
	if err := c.Mail(m.From); err != nil {
		return fmt.Errorf("smtp %s: sender: %w", m.Addr, err)
	}
	if err := c.Rcpt(to); err != nil {
		return fmt.Errorf("smtp %s: recipient %s: %w", m.Addr, to, err)
	}
	w, err := c.Data()
	if err != nil {
		return fmt.Errorf("smtp %s: %w", m.Addr, err)
	}
	if _, err := w.Write(m.message(to, n)); err != nil {
		return fmt.Errorf("smtp %s: %w", m.Addr, err)
	}
	if err := w.Close(); err != nil {
		return fmt.Errorf("smtp %s: message refused: %w", m.Addr, err)
	}
	return c.Quit()
}

// message builds the mail: plain text, quoted-printable, subject encoded
// for non-ASCII rule names.
func (m *Mailer) message(to string, n Notification) []byte {
	state := "FIRING"
	if n.Event == "resolved" {
		state = "RESOLVED"
	}
	subject := fmt.Sprintf("[Kogge] %s: %s – %s", state, n.RuleName, n.Subject)
	id := make([]byte, 12)
	_, _ = rand.Read(id)
	domain := "kogge.invalid"
	if _, d, ok := strings.Cut(m.From, "@"); ok {
		domain = d
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, "From: %s\r\nTo: %s\r\nSubject: %s\r\nDate: %s\r\nMessage-ID: <%s@%s>\r\n",
		m.From, to, mime.QEncoding.Encode("utf-8", subject), time.Now().UTC().Format(time.RFC1123Z), hex.EncodeToString(id), domain)
	b.WriteString("MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n")
	qp := quotedprintable.NewWriter(&b)
	fmt.Fprintf(qp, "Alert %s\r\n\r\nRule:    %s (%s)\r\nSubject: %s\r\nDetail:  %s\r\nFired:   %s\r\n",
		strings.ToLower(state), n.RuleName, n.Kind, n.Subject, n.Message, n.FiredAt.Format(time.RFC3339))
	if n.ResolvedAt != nil {
		fmt.Fprintf(qp, "Resolved: %s\r\n", n.ResolvedAt.Format(time.RFC3339))
	}
	if n.URL != "" {
		fmt.Fprintf(qp, "\r\n%s\r\n", n.URL)
	}
	qp.Close()
	return b.Bytes()
}
