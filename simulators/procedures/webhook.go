package procedures

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"time"

	"github.com/kogge-fleet/kogge/fleet-server/connectors/webhook"
)

// WebhookOptions configure a Webhook receiver.
type WebhookOptions struct {
	// Secret is the shared HMAC key; requests must be signed with it.
	// It may be empty only with Accept.
	Secret []byte
	// Accept, when set, replaces the check of the webhook document: it
	// reads another format (idpass and owi over HTTPS) and returns the
	// record id and kind, or why the body is refused (400). It must check
	// that the record id is the Idempotency-Key.
	Accept func(h http.Header, body []byte) (key, kind string, err error)
	// CA issues the server certificate (and verifies client certificates);
	// nil: a new CA.
	CA *CA
	// RequireClientCert demands a client certificate from CA (mTLS).
	RequireClientCert bool
	// Tolerance is the accepted clock difference of a signature; default
	// 5 min.
	Tolerance time.Duration
	// LogFile, when set, receives every delivery as a JSON line.
	LogFile string
	Clock   func() time.Time
}

// Webhook is an HTTPS webhook receiver of webhook.Document deliveries.
type Webhook struct {
	opts   WebhookOptions
	srv    *Server
	ledger *Ledger
	faults
}

// NewWebhook starts a receiver on a free loopback port.
func NewWebhook(opts WebhookOptions) (*Webhook, error) {
	if len(opts.Secret) == 0 && opts.Accept == nil {
		return nil, errors.New("webhook simulator: a secret is required")
	}
	if opts.Tolerance == 0 {
		opts.Tolerance = 5 * time.Minute
	}
	if opts.Clock == nil {
		opts.Clock = time.Now
	}
	l, err := NewLedger("WH", opts.LogFile, opts.Clock)
	if err != nil {
		return nil, err
	}
	w := &Webhook{opts: opts, ledger: l}
	if w.srv, err = serveHTTPS(http.HandlerFunc(w.serve), opts.CA, opts.RequireClientCert); err != nil {
		return nil, err
	}
	return w, nil
}

// URL returns the endpoint to post to.
func (w *Webhook) URL() string { return w.srv.URL() + "/hook" }

// CA returns the CA of the server certificate.
func (w *Webhook) CA() *CA { return w.srv.ca }

// Ledger returns what the receiver accepted.
func (w *Webhook) Ledger() *Ledger { return w.ledger }

// Stats returns the unique and the duplicate deliveries.
func (w *Webhook) Stats() (unique, duplicates int) { return w.ledger.Stats() }

// Close stops the receiver.
func (w *Webhook) Close() error {
	err := w.srv.Close()
	return errors.Join(err, w.ledger.Close())
}

func (w *Webhook) serve(rw http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost || r.URL.Path != "/hook" {
		http.Error(rw, "not found", http.StatusNotFound)
		return
	}
	switch w.next() {
	case Fault500:
		http.Error(rw, "internal error (scripted)", http.StatusInternalServerError)
		return
	case FaultTimeout:
		w.srv.hold(r)
		return
	case FaultDrop:
		drop(rw)
		return
	case FaultRefuse:
		http.Error(rw, "refused (scripted)", http.StatusUnprocessableEntity)
		return
	case FaultGarbage:
		if _, code, err := w.accept(r); err != nil {
			http.Error(rw, err.Error(), code)
			return
		}
		rw.Header().Set("Content-Type", "application/json")
		io.WriteString(rw, `{"reference": 17, <html>`)
		return
	}
	ref, code, err := w.accept(r)
	if err != nil {
		http.Error(rw, err.Error(), code)
		return
	}
	rw.Header().Set("Content-Type", "application/json")
	json.NewEncoder(rw).Encode(webhook.Answer{Reference: ref})
}

// accept checks and records a delivery; it returns the reference, or the
// status and error to answer.
func (w *Webhook) accept(r *http.Request) (string, int, error) {
	body, err := io.ReadAll(io.LimitReader(r.Body, webhook.MaxDocument+1))
	if err != nil {
		return "", http.StatusBadRequest, err
	}
	key, kind, code, err := w.Check(r.Header, body)
	if err != nil {
		return "", code, err
	}
	ref, _ := w.ledger.Record(key, kind, len(body))
	return ref, 0, nil
}

// Check verifies a request as the receiver does: signature, idempotency
// key, and a document whose record id is the key. It returns the key and
// the kind, or the status to answer and why.
func (w *Webhook) Check(h http.Header, body []byte) (key, kind string, status int, err error) {
	if len(w.opts.Secret) > 0 {
		if err := webhook.Verify(w.opts.Secret, h, body, w.opts.Clock(), w.opts.Tolerance); err != nil {
			return "", "", http.StatusUnauthorized, err
		}
	}
	key = h.Get(webhook.HeaderIdempotencyKey)
	if key == "" {
		return "", "", http.StatusBadRequest, errors.New("no Idempotency-Key")
	}
	if w.opts.Accept != nil {
		k, kind, err := w.opts.Accept(h, body)
		if err != nil {
			return "", "", http.StatusBadRequest, err
		}
		if k != key {
			return "", "", http.StatusBadRequest, errors.New("Idempotency-Key is not the document's record id")
		}
		return key, kind, 0, nil
	}
	doc, err := webhook.ParseDocument(body)
	if err != nil {
		return "", "", http.StatusBadRequest, err
	}
	if doc.ID.String() != key {
		return "", "", http.StatusBadRequest, errors.New("Idempotency-Key is not the document's record id")
	}
	return key, doc.Kind, 0, nil
}
