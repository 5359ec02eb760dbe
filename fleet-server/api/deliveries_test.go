package api

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"database/sql"
	"encoding/json"
	"encoding/pem"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/kogge-fleet/kogge/fleet-server/audit"
	"github.com/kogge-fleet/kogge/fleet-server/delivery"
	"github.com/kogge-fleet/kogge/fleet-server/registry"
	"github.com/kogge-fleet/kogge/fleet-server/store"
)

// enqueue puts stored records into their offices' queues, as the ingest
// does once they are complete.
func enqueue(t *testing.T, db *store.DB, device string, ids ...uuid.UUID) {
	t.Helper()
	ctx := context.Background()
	err := db.Ingest(ctx, func(tx *store.IngestTx) error {
		for _, id := range ids {
			if _, err := tx.EnqueueDelivery(ctx, device, id, time.Now().UnixMilli()); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// deadLetters leases one record of each office and fails it for good, as
// a bridge would for a record sealed for a key it does not hold.
func deadLetters(t *testing.T, q *delivery.Queue, offices ...string) []uuid.UUID {
	t.Helper()
	ctx := context.Background()
	var out []uuid.UUID
	for _, o := range offices {
		ds, err := q.Lease(ctx, o, 1, time.Minute)
		if err != nil || len(ds) != 1 {
			t.Fatalf("lease %s: %v %v", o, ds, err)
		}
		if err := q.Fail(ctx, ds[0].ID, ds[0].Attempt, "unknown key k-2019", true); err != nil {
			t.Fatal(err)
		}
		out = append(out, ds[0].ID)
	}
	return out
}

func testCSR(t *testing.T) []byte {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})
}

func TestDeadLettersAndErasure(t *testing.T) {
	e := newTestEnv(t, nil)
	ctx := context.Background()
	if _, err := e.reg.CreateGroup(ctx, "wardens", "Wardens"); err != nil {
		t.Fatal(err)
	}
	e.enroll(t, "wardens", "hh-1", registry.Inventory{})
	recs := storeRecords(t, e.db, "hh-1", 3)
	enqueue(t, e.db, "hh-1", recs[1], recs[2])
	dead := deadLetters(t, e.q, "ordnungsamt", "buergeramt")

	var list deliveryList
	rec := do(t, e.h, "GET", "/api/v1/dead-letters", testToken, "")
	if err := json.Unmarshal(rec.Body.Bytes(), &list); err != nil || rec.Code != 200 || len(list.Deliveries) != 2 ||
		list.Deliveries[0].LastError != "unknown key k-2019" {
		t.Fatalf("dead letters: %d %s", rec.Code, rec.Body)
	}
	rec = do(t, e.h, "GET", "/api/v1/dead-letters?limit=1", testToken, "")
	if err := json.Unmarshal(rec.Body.Bytes(), &list); err != nil || len(list.Deliveries) != 1 || list.Next == "" {
		t.Fatalf("first page: %s", rec.Body)
	}
	rec = do(t, e.h, "GET", "/api/v1/dead-letters?limit=1&after="+list.Next, testToken, "")
	list = deliveryList{}
	if err := json.Unmarshal(rec.Body.Bytes(), &list); err != nil || len(list.Deliveries) != 1 || list.Next != "" ||
		list.Deliveries[0].Record != dead[1] {
		t.Fatalf("second page: %s", rec.Body)
	}
	// Inspecting shows metadata, never the sealed body.
	rec = do(t, e.h, "GET", "/api/v1/dead-letters/"+dead[0].String(), testToken, "")
	if rec.Code != 200 || strings.Contains(rec.Body.String(), "sealed-personal-body") ||
		!strings.Contains(rec.Body.String(), `"sealed_size":20`) {
		t.Errorf("inspect: %d %s", rec.Code, rec.Body)
	}

	rec = do(t, e.h, "POST", "/api/v1/dead-letters/"+dead[1].String()+"/discard", testToken, `{"reason":"withdrawn"}`)
	if rec.Code != 200 || !strings.Contains(rec.Body.String(), `"state":"discarded"`) {
		t.Fatalf("discard: %d %s", rec.Code, rec.Body)
	}
	if _, err := e.db.RecordSealed(ctx, "hh-1", dead[1]); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("body after discard: %v", err)
	}
	rec = do(t, e.h, "POST", "/api/v1/dead-letters/"+dead[0].String()+"/replay", testToken, "")
	if rec.Code != 200 || !strings.Contains(rec.Body.String(), `"state":"queued"`) || !strings.Contains(rec.Body.String(), `"attempt":0`) {
		t.Fatalf("replay: %d %s", rec.Code, rec.Body)
	}

	// Erasure by record id erases the replayed (queued) record.
	rec = do(t, e.h, "POST", "/api/v1/erasures", testToken, `{"record":"`+dead[0].String()+`"}`)
	var er erasureJSON
	if err := json.Unmarshal(rec.Body.Bytes(), &er); err != nil || rec.Code != 200 || er.Erased != 1 || len(er.Records) != 1 ||
		er.Records[0].Device != "hh-1" {
		t.Fatalf("erasure: %d %s", rec.Code, rec.Body)
	}
	rec = do(t, e.h, "GET", "/api/v1/deliveries/"+dead[0].String(), testToken, "")
	if !strings.Contains(rec.Body.String(), `"state":"erased"`) || !strings.Contains(rec.Body.String(), `"status":"erased"`) {
		t.Errorf("after erasure: %s", rec.Body)
	}

	// Every action is in the audit log under the API token's actor.
	rec = do(t, e.h, "GET", "/api/v1/audit?target=record:"+dead[0].String(), testToken, "")
	var al auditList
	if err := json.Unmarshal(rec.Body.Bytes(), &al); err != nil {
		t.Fatal(err)
	}
	var actions []string
	for _, x := range al.Entries {
		if x.Actor != audit.APIToken(testToken) {
			t.Errorf("entry %d by %q", x.Seq, x.Actor)
		}
		actions = append(actions, x.Action)
	}
	if strings.Join(actions, " ") != "dead_letter.replay erasure.record erasure.request" {
		t.Errorf("audit of the record: %q", actions)
	}
}

func TestAuditEndpoints(t *testing.T) {
	e := newTestEnv(t, nil)
	for _, name := range []string{"One", "Two", "Three"} {
		if rec := do(t, e.h, "POST", "/api/v1/groups", testToken, `{"name":"`+name+`"}`); rec.Code != 201 {
			t.Fatal(rec.Body)
		}
	}
	var al auditList
	rec := do(t, e.h, "GET", "/api/v1/audit?order=desc&limit=2", testToken, "")
	if err := json.Unmarshal(rec.Body.Bytes(), &al); err != nil || len(al.Entries) != 2 || al.Entries[0].Seq != 3 || al.Next != "2" {
		t.Fatalf("newest first: %s", rec.Body)
	}
	rec = do(t, e.h, "GET", "/api/v1/audit?order=desc&before=2", testToken, "")
	if err := json.Unmarshal(rec.Body.Bytes(), &al); err != nil || len(al.Entries) != 1 || al.Entries[0].Target != "group:one" {
		t.Fatalf("older page: %s", rec.Body)
	}
	var details map[string]any
	if err := json.Unmarshal(al.Entries[0].Details, &details); err != nil || details["name"] != "One" {
		t.Errorf("details %s", al.Entries[0].Details)
	}
	for _, bad := range []string{"order=up", "before=1", "order=desc&after=1", "since=yesterday", "limit=0", "secret=1"} {
		if rec := do(t, e.h, "GET", "/api/v1/audit?"+bad, testToken, ""); rec.Code != 400 {
			t.Errorf("%s: %d", bad, rec.Code)
		}
	}
	var v verifyJSON
	rec = do(t, e.h, "POST", "/api/v1/audit/verify", testToken, "")
	if err := json.Unmarshal(rec.Body.Bytes(), &v); err != nil || !v.OK || v.Entries != 3 {
		t.Fatalf("verify: %s", rec.Body)
	}
	// Tampering (behind the server's back) shows.
	err := e.db.Tx(context.Background(), func(tx *sql.Tx) error {
		if _, err := tx.Exec(`DROP TRIGGER audit_log_no_update`); err != nil {
			return err
		}
		_, err := tx.Exec(`UPDATE audit_log SET target = 'group:ONE' WHERE seq = 1`)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	rec = do(t, e.h, "POST", "/api/v1/audit/verify", testToken, "")
	if err := json.Unmarshal(rec.Body.Bytes(), &v); err != nil || v.OK || v.BrokenAt != 1 || v.Entries != 0 || v.Reason == "" {
		t.Errorf("verify after tampering: %s", rec.Body)
	}
}

func TestBridgeCertificateEndpoints(t *testing.T) {
	e := newTestEnv(t, nil)
	body, _ := json.Marshal(map[string]string{"office": "amt-a", "csr": string(testCSR(t))})
	rec := do(t, e.h, "POST", "/api/v1/bridge-certificates", testToken, string(body))
	var c registry.BridgeCertificate
	if err := json.Unmarshal(rec.Body.Bytes(), &c); err != nil || rec.Code != http.StatusCreated {
		t.Fatalf("issue: %d %s", rec.Code, rec.Body)
	}
	block, _ := pem.Decode([]byte(c.Certificate))
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil || cert.Subject.CommonName != "bridge.amt-a" || c.CA == "" {
		t.Fatalf("certificate %+v %v", c, err)
	}
	if office, err := e.reg.BridgeOffice(context.Background(), cert); err != nil || office != "amt-a" {
		t.Errorf("BridgeOffice = %q %v", office, err)
	}
	for _, bad := range []string{`{"office":"amt/a","csr":"` + strings.ReplaceAll(string(testCSR(t)), "\n", `\n`) + `"}`,
		`{"office":"amt-a"}`, `{"office":"amt-a","csr":"-----BEGIN CERTIFICATE REQUEST-----\nxx"}`} {
		if rec := do(t, e.h, "POST", "/api/v1/bridge-certificates", testToken, bad); rec.Code != 400 {
			t.Errorf("%s: %d %s", bad, rec.Code, rec.Body)
		}
	}
	if rec := do(t, e.h, "POST", "/api/v1/bridge-certificates/"+c.Serial+"/revoke", testToken, ""); rec.Code != 200 ||
		!strings.Contains(rec.Body.String(), "revoked_at") {
		t.Fatalf("revoke: %d %s", rec.Code, rec.Body)
	}
	if _, err := e.reg.BridgeOffice(context.Background(), cert); !errors.Is(err, registry.ErrRevoked) {
		t.Errorf("revoked certificate: %v", err)
	}
	es, err := e.db.AuditEntries(context.Background(), store.AuditFilter{Target: "bridge_certificate:" + c.Serial})
	if err != nil || len(es) != 2 || es[0].Action != "bridge_certificate.issue" || es[1].Action != "bridge_certificate.revoke" {
		t.Errorf("audit: %+v %v", es, err)
	}
}
