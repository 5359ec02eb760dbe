package bridgetest

import (
	"encoding/binary"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/kogge-fleet/kogge/fleet-server/bridge"
	"github.com/kogge-fleet/kogge/protocol"
	"github.com/kogge-fleet/kogge/protocol/casefile"
	"github.com/kogge-fleet/kogge/protocol/casefile/casefiletest"
	"github.com/kogge-fleet/kogge/protocol/seal"
)

// Office is an office with one key pair.
type Office struct {
	Name      string
	KeyID     string
	Recipient seal.Recipient
	Secret    string
	// Keyring holds the office's key, as its bridge would.
	Keyring *seal.Keyring
}

// NewOffice makes an office with a fresh key.
func NewOffice(t testing.TB, name, keyID string) *Office {
	t.Helper()
	rcpt, secret, err := seal.GenerateKey(name, keyID)
	if err != nil {
		t.Fatal(err)
	}
	ring := seal.NewKeyring(name)
	if err := ring.Add(keyID, secret); err != nil {
		t.Fatal(err)
	}
	return &Office{Name: name, KeyID: keyID, Recipient: rcpt, Secret: secret, Keyring: ring}
}

// Record is a sealed record as the fleet server holds it.
type Record struct {
	Delivery bridge.Delivery
	// Blobs are the sealed blob bytes by blob id.
	Blobs map[uuid.UUID][]byte
}

// Seal builds the record of doc as a device would: the document and the
// blobs (plain, by id) sealed for the office's key, blob refs hashing the
// sealed bytes. Every blob the document names must be in blobs.
func Seal(t testing.TB, o *Office, doc casefile.Document, blobs map[uuid.UUID][]byte) Record {
	t.Helper()
	body, err := casefile.Encode(doc)
	if err != nil {
		t.Fatal(err)
	}
	return SealBody(t, o, doc.Kind(), body, doc.Blobs(), blobs)
}

// SealBody is Seal for a body that is already encoded (or deliberately not
// a valid document). order names the blobs in the record's order.
func SealBody(t testing.TB, o *Office, kind string, body []byte, order []uuid.UUID, blobs map[uuid.UUID][]byte) Record {
	t.Helper()
	sealed, err := seal.Seal(o.Recipient, body)
	if err != nil {
		t.Fatal(err)
	}
	r := Record{
		Delivery: bridge.Delivery{
			ID: uuid.Must(uuid.NewV7()), Device: "kiosk-test-01", Seq: 1, Kind: kind, Office: o.Name,
			KeyID: o.KeyID, CreatedAt: time.Now().UTC().Truncate(time.Millisecond),
			Meta: map[string]string{"source": "bridgetest"}, Sealed: sealed,
		},
		Blobs: map[uuid.UUID][]byte{},
	}
	for i, id := range order {
		plain, ok := blobs[id]
		if !ok {
			t.Fatalf("no content for blob %v", id)
		}
		sb, err := seal.Seal(o.Recipient, plain)
		if err != nil {
			t.Fatal(err)
		}
		r.Blobs[id] = sb
		r.Delivery.Blobs = append(r.Delivery.Blobs, protocol.BlobRef{
			ID: id, Role: role(i), Size: uint64(len(sb)), SHA256: protocol.SumOf(sb),
		})
	}
	return r
}

func role(i int) string { return "part-" + string(rune('a'+i%26)) }

// SampleBlobs returns stand-in contents for every blob doc names: small
// JPEG-headed images for photos and faces, PNG-headed ones for fingers and
// the signature. size is the length of each; at least 64.
func SampleBlobs(doc casefile.Document, size int) map[uuid.UUID][]byte {
	pngs := map[uuid.UUID]bool{}
	if a, ok := doc.(*casefile.Application); ok {
		for _, f := range a.Finger {
			pngs[f.Image] = true
		}
		if a.Signature != nil {
			pngs[a.Signature.Image] = true
		}
	}
	out := map[uuid.UUID][]byte{}
	for _, id := range doc.Blobs() {
		out[id] = fakeImage(id, size, pngs[id])
	}
	return out
}

// fakeImage returns size bytes that start like a JPEG or PNG file and
// continue with bytes derived from id.
func fakeImage(id uuid.UUID, size int, png bool) []byte {
	size = max(size, 64)
	b := make([]byte, size)
	head := []byte("\xff\xd8\xff\xe0\x00\x10JFIF\x00")
	if png {
		head = []byte("\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")
	}
	copy(b, head)
	r := rand.New(rand.NewPCG(binary.BigEndian.Uint64(id[:8]), binary.BigEndian.Uint64(id[8:])))
	for i := len(head); i < size; i++ {
		b[i] = byte(r.Uint32())
	}
	return b
}

// Case returns an opened case of the sample document of kind (see
// casefiletest) with a fresh record id and blobs of blobSize bytes.
func Case(kind string, blobSize int) *bridge.Case {
	return CaseOf(casefiletest.Sample(kind), blobSize)
}

// CaseOf returns an opened case of doc with a fresh record id and blobs of
// blobSize bytes.
func CaseOf(doc casefile.Document, blobSize int) *bridge.Case {
	body, err := casefile.Encode(doc)
	if err != nil {
		panic(err)
	}
	blobs := SampleBlobs(doc, blobSize)
	c := &bridge.Case{
		ID: uuid.Must(uuid.NewV7()), Attempt: 1, Device: "kiosk-test-01", Seq: 1, Kind: doc.Kind(),
		Office: "office-test", KeyID: "k1", CreatedAt: time.Now().UTC().Truncate(time.Millisecond),
		Meta: map[string]string{"source": "bridgetest"}, Doc: doc, Body: body,
	}
	for i, id := range doc.Blobs() {
		c.Blobs = append(c.Blobs, bridge.Blob{
			Ref:  protocol.BlobRef{ID: id, Role: role(i), Size: uint64(len(blobs[id])) + 200, SHA256: protocol.SumOf(blobs[id])},
			Data: blobs[id],
		})
	}
	return c
}
