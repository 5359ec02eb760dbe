package bridge

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/google/uuid"

	"github.com/kogge-fleet/kogge/protocol"
	"github.com/kogge-fleet/kogge/protocol/casefile"
)

// Connector delivers opened cases into one procedure.
//
// Deliver must be idempotent on Case.ID: delivering a case a second time
// (after a crash, a lost ack, an expired lease) must not create a second
// case in the procedure, and should return the first delivery's receipt.
// An error that wraps ErrPermanent (see Permanent) makes the delivery a
// dead letter; any other error is retried later. Deliver must return when
// ctx ends.
type Connector interface {
	Deliver(ctx context.Context, c *Case) (Receipt, error)
}

// StatusPoller is implemented by connectors whose procedure reports later
// status (Open311: in progress, closed). PollStatus checks the procedure
// once and calls report for every change since the last reported state;
// when report fails, the change must be offered again on a later poll.
type StatusPoller interface {
	PollStatus(ctx context.Context, report func(StatusChange) error) error
}

// StatusChange is a later status of a delivered case.
type StatusChange struct {
	ID        uuid.UUID
	State     protocol.DeliveryState
	Reference string
	Note      string
}

// ErrPermanent marks a failure that retrying cannot fix: the procedure
// refused the case, or the case cannot be put into its format.
var ErrPermanent = errors.New("permanent failure")

// Permanent marks err as permanent: errors.Is(Permanent(err), ErrPermanent)
// holds, and the message stays err's.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return permanentError{err}
}

type permanentError struct{ err error }

func (p permanentError) Error() string        { return p.err.Error() }
func (p permanentError) Unwrap() error        { return p.err }
func (p permanentError) Is(target error) bool { return target == ErrPermanent }

// Case is one opened record, ready for a connector. It holds personal data:
// a connector must not log it and must not keep it after Deliver returns.
type Case struct {
	ID        uuid.UUID
	Attempt   int
	Device    string
	Seq       uint64
	Kind      string
	Office    string
	KeyID     string
	CreatedAt time.Time
	Meta      map[string]string
	// Doc is the decoded document; nil when this build does not know the
	// kind (Body then holds the opened plaintext for a connector that
	// forwards it as is).
	Doc casefile.Document
	// Body is the opened plaintext of the document (CBOR).
	Body []byte
	// Blobs are the opened blobs, in the record's order.
	Blobs []Blob
}

// Blob is one opened blob of a case.
type Blob struct {
	// Ref is the record's reference: size and SHA-256 are those of the
	// sealed bytes.
	Ref protocol.BlobRef
	// Data is the opened content.
	Data []byte
}

// ContentType guesses the blob's media type from its content (image/jpeg,
// image/png, …), application/octet-stream when unsure.
func (b Blob) ContentType() string { return http.DetectContentType(b.Data) }

// Blob returns the blob with id.
func (c *Case) Blob(id uuid.UUID) (Blob, bool) {
	for _, b := range c.Blobs {
		if b.Ref.ID == id {
			return b, true
		}
	}
	return Blob{}, false
}

// wipe zeroes the plaintext of the case.
func (c *Case) wipe() {
	clear(c.Body)
	for _, b := range c.Blobs {
		clear(b.Data)
	}
}
