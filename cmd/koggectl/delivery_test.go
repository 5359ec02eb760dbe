package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"database/sql"
	"encoding/json"
	"encoding/pem"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/kogge-fleet/kogge/fleet-server/registry"
	"github.com/kogge-fleet/kogge/fleet-server/store"
	"github.com/kogge-fleet/kogge/protocol"
)

// withRecords enrolls device hh-1 and stores n complete records for office
// amt-a, queued for delivery as the ingest does.
func (f *fleet) withRecords(t *testing.T, n int) []uuid.UUID {
	t.Helper()
	ctx := context.Background()
	if _, err := f.Registry.CreateGroup(ctx, "wardens", "Wardens"); err != nil {
		t.Fatal(err)
	}
	f.EnrollInto(t, "wardens", "hh-1", registry.Inventory{})
	var ids []uuid.UUID
	err := f.DB.Ingest(ctx, func(tx *store.IngestTx) error {
		ids = ids[:0]
		for i := range n {
			r := &protocol.Record{ID: uuid.Must(uuid.NewV7()), Seq: uint64(i + 1), Kind: "enforcement.notice", Office: "amt-a",
				KeyID: "amt-a-2019", CreatedAt: protocol.At(time.Now()), Sealed: []byte("SEALED-PLATE-B-AB-1234")}
			if _, err := tx.InsertRecord(ctx, "hh-1", r, time.Now().UnixMilli()); err != nil {
				return err
			}
			if _, err := tx.EnqueueDelivery(ctx, "hh-1", r.ID, time.Now().UnixMilli()); err != nil {
				return err
			}
			ids = append(ids, r.ID)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return ids
}

// fail leases every record of amt-a and fails them for good, as a bridge
// that lacks the key they are sealed for.
func (f *fleet) fail(t *testing.T) {
	t.Helper()
	ctx := context.Background()
	ds, err := f.Queue.Lease(ctx, "amt-a", 100, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range ds {
		if err := f.Queue.Fail(ctx, d.ID, d.Attempt, `unknown key "amt-a-2019"`, true); err != nil {
			t.Fatal(err)
		}
	}
}

func TestDeadLetterCommands(t *testing.T) {
	f := newFleet(t)
	ids := f.withRecords(t, 3)
	f.fail(t)

	out := f.mustCtl(t, "dead-letter", "list", "--office", "amt-a")
	if strings.Count(out, "dead") != 3 || !strings.Contains(out, `unknown key "amt-a-2019"`) || !strings.Contains(out, "3 deliveries") {
		t.Errorf("dead-letter list:\n%s", out)
	}
	out = f.mustCtl(t, "dead-letter", "show", ids[0].String())
	for _, want := range []string{"amt-a-2019", "enforcement.notice", "State:", "dead", "22 bytes"} {
		if !strings.Contains(out, want) {
			t.Errorf("dead-letter show lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "SEALED-PLATE") {
		t.Errorf("dead-letter show printed the sealed body:\n%s", out)
	}
	out = f.mustCtl(t, "dead-letter", "replay", ids[0].String())
	if !strings.Contains(out, "queued again") {
		t.Errorf("replay: %s", out)
	}
	out = f.mustCtl(t, "dead-letter", "discard", ids[1].String(), "--reason", "case closed by phone")
	if !strings.Contains(out, "deleted") {
		t.Errorf("discard: %s", out)
	}
	if _, err := f.DB.RecordSealed(context.Background(), "hh-1", ids[1]); err == nil {
		t.Error("the discarded body is still stored")
	}
	code, _, errOut := f.ctl(t, "", "dead-letter", "replay", ids[1].String())
	if code != 1 || !strings.Contains(errOut, "409") || !strings.Contains(errOut, "discarded") {
		t.Errorf("replay of a discarded record: exit %d, %s", code, errOut)
	}
	code, _, errOut = f.ctl(t, "", "dead-letter", "show", "nope")
	if code != 2 || !strings.Contains(errOut, "not a record id") {
		t.Errorf("bad id: exit %d, %s", code, errOut)
	}

	out = f.mustCtl(t, "delivery", "queues")
	if !regexp.MustCompile(`amt-a\s+1\s+0\s+0\s+1\s`).MatchString(out) {
		t.Errorf("delivery queues:\n%s", out)
	}
	out = f.mustCtl(t, "delivery", "list", "--state", "discarded", "--json")
	var list struct {
		Deliveries []struct {
			Record uuid.UUID `json:"record"`
			State  string    `json:"state"`
		} `json:"deliveries"`
	}
	if err := json.Unmarshal([]byte(out), &list); err != nil || len(list.Deliveries) != 1 || list.Deliveries[0].Record != ids[1] {
		t.Errorf("delivery list --json: %v\n%s", err, out)
	}

	out = f.mustCtl(t, "erase", "--record", ids[0].String())
	if !strings.Contains(out, "body and blobs deleted now") || !strings.Contains(out, "1 of 1 record(s) erased") {
		t.Errorf("erase --record:\n%s", out)
	}
	out = f.mustCtl(t, "erase", "--reference", "OWI-unknown")
	if !strings.Contains(out, "nothing to erase") {
		t.Errorf("erase --reference:\n%s", out)
	}
	code, _, errOut = f.ctl(t, "", "erase", "--record", ids[0].String(), "--reference", "x")
	if code != 2 || !strings.Contains(errOut, "either") {
		t.Errorf("erase with both: exit %d, %s", code, errOut)
	}

	// Every action is in the audit log.
	out = f.mustCtl(t, "audit", "list", "--target", "record:"+ids[0].String())
	for _, want := range []string{"dead_letter.replay", "erasure.record", "erasure.request", "api-token:"} {
		if !strings.Contains(out, want) {
			t.Errorf("audit list lacks %q:\n%s", want, out)
		}
	}
	out = f.mustCtl(t, "audit", "list", "--action", "dead_letter.discard", "--json")
	if !strings.Contains(out, "case closed by phone") || strings.Contains(out, "SEALED") {
		t.Errorf("discard entry:\n%s", out)
	}
	if out := f.mustCtl(t, "audit", "verify"); !strings.Contains(out, "intact") {
		t.Errorf("audit verify: %s", out)
	}
}

// tamper changes the stored audit log behind the server's back, as
// someone with the database file would: the triggers that refuse changes
// are dropped first.
func (f *fleet) tamper(t *testing.T, q string, args ...any) {
	t.Helper()
	db, err := sql.Open("sqlite3", "file:"+f.DBFile+"?_busy_timeout=10000")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, s := range []string{"DROP TRIGGER IF EXISTS audit_log_no_update", "DROP TRIGGER IF EXISTS audit_log_no_delete"} {
		if _, err := db.Exec(s); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := db.Exec(q, args...); err != nil {
		t.Fatal(err)
	}
}

func TestAuditVerifyCatchesAFlippedByte(t *testing.T) {
	f := newFleet(t)
	for _, name := range []string{"Kiosks Mitte", "Kiosks Nord", "Wardens", "Road crew", "Parks"} {
		f.mustCtl(t, "group", "create", name)
	}
	if out := f.mustCtl(t, "audit", "verify"); !strings.Contains(out, "5 entries") {
		t.Fatalf("audit verify before: %s", out)
	}
	// Flip one bit of one byte of entry 3's details.
	var details []byte
	if err := f.DB.Reader().QueryRow(`SELECT details FROM audit_log WHERE seq = 3`).Scan(&details); err != nil {
		t.Fatal(err)
	}
	i := strings.Index(string(details), "Wardens")
	details[i] ^= 0x01 // W → V
	f.tamper(t, `UPDATE audit_log SET details = $1 WHERE seq = 3`, string(details))

	code, out, errOut := f.ctl(t, "", "audit", "verify")
	if code != 1 || !strings.Contains(errOut, "audit log broken at entry 3") || !strings.Contains(errOut, "changed after it was written") {
		t.Errorf("audit verify after a flipped byte: exit %d\n%s%s", code, out, errOut)
	}
	code, out, _ = f.ctl(t, "", "audit", "verify", "--json")
	if code != 1 || !strings.Contains(out, `"broken_at": 3`) {
		t.Errorf("audit verify --json: exit %d\n%s", code, out)
	}
}

func TestAuditVerifyCatchesADeletedEntry(t *testing.T) {
	f := newFleet(t)
	for _, name := range []string{"Kiosks Mitte", "Kiosks Nord", "Wardens", "Road crew", "Parks"} {
		f.mustCtl(t, "group", "create", name)
	}
	f.tamper(t, `DELETE FROM audit_log WHERE seq = 3`)
	code, out, errOut := f.ctl(t, "", "audit", "verify")
	if code != 1 || !strings.Contains(errOut, "audit log broken at entry 3") || !strings.Contains(errOut, "entry 3 is missing") {
		t.Errorf("audit verify after a deleted entry: exit %d\n%s%s", code, out, errOut)
	}
}

func TestBridgeCertCommands(t *testing.T) {
	f := newFleet(t)
	dir := t.TempDir()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, key)
	if err != nil {
		t.Fatal(err)
	}
	csr := filepath.Join(dir, "bridge.csr")
	if err := os.WriteFile(csr, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	crt := filepath.Join(dir, "bridge.crt")
	out := f.mustCtl(t, "bridge-cert", "--office", "amt-a", "--csr", csr, "--out", crt)
	serial := regexp.MustCompile(`Serial:\s+([0-9a-f]+)`).FindStringSubmatch(out)
	if serial == nil || !strings.Contains(out, "bridge.amt-a") {
		t.Fatalf("bridge-cert:\n%s", out)
	}
	b, err := os.ReadFile(crt)
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(b)
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	if office, err := f.Registry.BridgeOffice(context.Background(), cert); err != nil || office != "amt-a" {
		t.Errorf("the written certificate: office %q, %v", office, err)
	}
	ca, err := os.ReadFile(crt + ".ca")
	if err != nil || !strings.Contains(string(ca), "BEGIN CERTIFICATE") {
		t.Errorf("CA file: %v", err)
	}
	if code, _, errOut := f.ctl(t, "", "bridge-cert", "--office", "amt-a", "--csr", csr, "--out", crt); code != 1 || !strings.Contains(errOut, "exists already") {
		t.Errorf("second issue into the same file: exit %d %s", code, errOut)
	}
	out = f.mustCtl(t, "bridge-cert", "list")
	if !strings.Contains(out, serial[1]) || !strings.Contains(out, "amt-a") {
		t.Errorf("bridge-cert list:\n%s", out)
	}
	f.mustCtl(t, "bridge-cert", "revoke", serial[1])
	if _, err := f.Registry.BridgeOffice(context.Background(), cert); err == nil {
		t.Error("revoked certificate still accepted")
	}
	if code, _, errOut := f.ctl(t, "", "bridge-cert", "--office", "amt-a"); code != 2 || !strings.Contains(errOut, "required") {
		t.Errorf("bridge-cert without --csr: exit %d %s", code, errOut)
	}
}
