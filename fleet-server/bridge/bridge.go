// Package bridge runs one office's bridge: it leases the office's sealed
// deliveries from the fleet server, opens them with the office's keys,
// hands each case to a Connector that delivers it into the office's
// procedure, and reports the procedure's receipt (or the failure) back.
//
// # One delivery
//
// For every leased delivery the runner
//
//  1. opens the sealed body with the keyring under the record's key id; a
//     key the bridge does not hold, a retired key, or a body that does not
//     open is a permanent failure with a reason that says which;
//  2. fetches every blob, checks its size and SHA-256 against the record's
//     BlobRef (the device hashes the bytes it stored, which are the sealed
//     bytes), and opens it; a blob that does not match is a permanent
//     failure ("damaged on the server"), a blob that cannot be fetched a
//     transient one;
//  3. decodes the body as the casefile document of the record's kind
//     (protocol/casefile) and checks that every blob the document names came
//     with the record;
//  4. calls the connector, which uses the record id as its idempotency key,
//     so that a redelivery never makes a second case;
//  5. acks with the connector's receipt, or fails the delivery: permanent
//     when the connector's error wraps ErrPermanent, else transient (the
//     queue redelivers it later).
//
// Plaintext lives only in memory for the duration of one delivery and is
// zeroed afterwards; nothing personal is logged. Failure reasons name
// records, fields and keys, never personal values.
//
// # Concurrency and shutdown
//
// At most Options.Concurrency deliveries are in flight. When the context
// given to Run ends, the runner stops leasing, lets the deliveries in flight
// finish (deliver and ack) for up to Options.DrainTimeout, and returns. What
// it cannot finish keeps its lease until the lease expires and the queue
// hands it out again.
//
// # Status
//
// A connector that also implements StatusPoller (Open311) is polled every
// Options.PollInterval for later status changes of delivered cases, which
// the runner reports with Source.Update.
package bridge

import (
	"context"
	"io"
	"time"

	"github.com/google/uuid"

	"github.com/kogge-fleet/kogge/fleet-server/delivery"
	"github.com/kogge-fleet/kogge/protocol"
)

// Delivery is one record leased to a bridge, as the fleet server's delivery
// queue hands it out.
type Delivery = delivery.Delivery

// Receipt is the procedure's confirmation of a case.
type Receipt = delivery.Receipt

// Errors of the Source that the runner acts on (the delivery queue's).
var (
	// ErrLeaseLost: the lease expired and another lease holds the record.
	ErrLeaseLost = delivery.ErrLeaseLost
	// ErrNotFound: the record is unknown (or erased).
	ErrNotFound = delivery.ErrNotFound
)

// Source is the fleet server's delivery queue for the bridge: the
// in-process *delivery.Queue or its HTTPS client
// *delivery/bridgeclient.Client, which both satisfy it.
type Source interface {
	// Lease hands out up to max deliveries of office, each invisible to
	// other leases for visibility.
	Lease(ctx context.Context, office string, max int, visibility time.Duration) ([]Delivery, error)
	// Blob writes the sealed bytes of one blob of a record to w.
	Blob(ctx context.Context, id, blob uuid.UUID, w io.Writer) error
	// Ack reports the procedure's receipt; ErrLeaseLost when the lease
	// expired and another holds the record.
	Ack(ctx context.Context, id uuid.UUID, attempt int, r Receipt) error
	// Fail reports a failed delivery; a permanent one becomes a dead
	// letter at once.
	Fail(ctx context.Context, id uuid.UUID, attempt int, reason string, permanent bool) error
	// Update reports a later status from the procedure.
	Update(ctx context.Context, id uuid.UUID, state protocol.DeliveryState, reference, note string) error
}
