package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kogge-fleet/kogge/fleet-server/brokerconfig"
	"github.com/kogge-fleet/kogge/fleet-server/brokerconfig/mosquittotest"
	"github.com/kogge-fleet/kogge/fleet-server/registry"
	"github.com/kogge-fleet/kogge/fleet-server/store"
)

// runBrokerConfig runs "koggectl broker-config ARGS" and returns the exit
// code as runWith would, and the output.
func runBrokerConfig(t *testing.T, args ...string) (int, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := runWith(append([]string{"broker-config"}, args...), func(string) string { return "" }, strings.NewReader(""), &out, &errb)
	return code, out.String() + errb.String()
}

// enrollFile enrolls a device and writes its certificate and key to dir.
func enrollFile(t *testing.T, reg *registry.Registry, dir, id string) {
	t.Helper()
	ctx := context.Background()
	code, err := reg.CreateCode(ctx, "kiosks", registry.CodeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: id}}, key)
	if err != nil {
		t.Fatal(err)
	}
	en, err := reg.Enroll(ctx, registry.EnrollRequest{Code: code.Secret, DeviceID: id,
		CSR: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})})
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, id+".pem"), en.Certificate, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, id+".key"), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestBrokerConfigMosquitto writes a Mosquitto configuration with
// koggectl, runs Mosquitto with it, and keeps it current on a revocation.
func TestBrokerConfigMosquitto(t *testing.T) {
	pub := mosquittotest.Tool(t, "mosquitto_pub")
	ctx := context.Background()
	dir := t.TempDir()
	dbFile := filepath.Join(dir, "kogge.db")
	db, err := store.Open(ctx, dbFile, store.Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()

	out := filepath.Join(dir, "broker")
	port := strconv.Itoa(mosquittotest.FreePort(t))
	args := []string{"mosquitto", "--database", dbFile, "--out", out, "--name", "127.0.0.1",
		"--replicas", "fleet-a,fleet-b", "--listen", "127.0.0.1:" + port, "--user", mosquittotest.User()}
	// Before a server has made the fleet CA there is nothing to sign with.
	if code, msg := runBrokerConfig(t, args...); code != 1 || !strings.Contains(msg, "start kogge-server") {
		t.Errorf("without a fleet CA: exit %d, %q", code, msg)
	}
	reg, err := registry.New(ctx, db, registry.Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := reg.CreateGroup(ctx, "kiosks", "Kiosks"); err != nil {
		t.Fatal(err)
	}
	files := t.TempDir()
	enrollFile(t, reg, files, "kiosk-1")
	enrollFile(t, reg, files, "kiosk-2")

	code, msg := runBrokerConfig(t, args...)
	if code != 0 {
		t.Fatalf("broker-config mosquitto: exit %d: %s", code, msg)
	}
	conf := readText(t, filepath.Join(out, brokerconfig.FileConf))
	acl := readText(t, filepath.Join(out, brokerconfig.FileACL))
	for _, want := range []string{"listener " + port + " 127.0.0.1\n", "require_certificate true", "use_identity_as_username true",
		"use_username_as_clientid true", "crlfile " + filepath.Join(out, brokerconfig.FileCRL)} {
		if !strings.Contains(conf, want) {
			t.Errorf("mosquitto.conf lacks %q:\n%s", want, conf)
		}
	}
	for _, want := range []string{"user kogge-server:fleet-a\n", "user kogge-server:fleet-b\n", "pattern write kogge/v1/d/%u/up/#\n",
		"pattern read kogge/v1/d/%u/down/#\n", "topic read kogge/v1/d/+/up/#\n"} {
		if !strings.Contains(acl, want) {
			t.Errorf("acl lacks %q:\n%s", want, acl)
		}
	}
	if fi, err := os.Stat(filepath.Join(out, brokerconfig.FileKey)); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("server.key: %v %v", fi.Mode(), err)
	}

	// Mosquitto runs with it: a device publishes, a revoked one cannot
	// connect after the update.
	broker := mosquittotest.Start(t, filepath.Join(out, brokerconfig.FileConf), "127.0.0.1:"+port)
	publish := func(id string) error {
		ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
		defer cancel()
		o, err := exec.CommandContext(ctx, pub, "-h", "127.0.0.1", "-p", port, "--cafile", filepath.Join(out, brokerconfig.FileCA),
			"--cert", filepath.Join(files, id+".pem"), "--key", filepath.Join(files, id+".key"), "-q", "1",
			"-t", "kogge/v1/d/"+id+"/up/record", "-m", "x").CombinedOutput()
		if err != nil {
			return errors.New(string(o))
		}
		return nil
	}
	if err := publish("kiosk-2"); err != nil {
		t.Fatalf("a device cannot publish through the generated configuration: %v", err)
	}
	if code, msg := runBrokerConfig(t, "mosquitto", "--update", "--database", dbFile, "--out", out); code != 0 || !strings.Contains(msg, "current") {
		t.Errorf("update without revocations: exit %d %q", code, msg)
	}
	if err := reg.RevokeDevice(ctx, "kiosk-2", "stolen"); err != nil {
		t.Fatal(err)
	}
	reloads := broker.LogCount("Reloading config")
	if code, msg := runBrokerConfig(t, "mosquitto", "--update", "--reload", "--database", dbFile, "--out", out); code != 0 ||
		!strings.Contains(msg, "broker reloaded") {
		t.Fatalf("update after a revocation: exit %d %q", code, msg)
	}
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := broker.WaitLog(wctx, "Reloading config", reloads); err != nil {
		t.Fatal(err)
	}
	if err := publish("kiosk-2"); err == nil {
		t.Error("the revoked device still connects")
	}
	if err := publish("kiosk-1"); err != nil {
		t.Errorf("another device cannot connect after the reload: %v", err)
	}
	if !strings.Contains(readText(t, filepath.Join(out, brokerconfig.FileACL)), "user kiosk-2\ntopic deny #\n") {
		t.Error("the ACL does not deny the revoked device")
	}

	for _, bad := range [][]string{
		{"mosquitto", "--database", dbFile},
		{"mosquitto", "--database", dbFile, "--out", out},
		{"mosquitto", "--database", dbFile, "--out", out, "--watch", "5s", "--name", "x", "--replicas", "r"},
		{"nats"},
	} {
		if code, msg := runBrokerConfig(t, bad...); code != 2 {
			t.Errorf("%v: exit %d %q, want 2", bad, code, msg)
		}
	}
	if code, msg := runBrokerConfig(t, "mosquitto", "--database", dbFile, "--out", out, "--name", "x", "--replicas", "Fleet A"); code != 1 ||
		!strings.Contains(msg, "replica id") {
		t.Errorf("a bad replica id: exit %d %q", code, msg)
	}
}

func TestBrokerConfigEMQX(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	dbFile := filepath.Join(dir, "kogge.db")
	db, err := store.Open(ctx, dbFile, store.Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := registry.New(ctx, db, registry.Options{Logger: slog.New(slog.DiscardHandler)}); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "emqx")
	code, msg := runBrokerConfig(t, "emqx", "--database", dbFile, "--out", out, "--name", "broker.example.org,10.0.0.7",
		"--server-url", "https://fleet.internal:8443")
	if code != 0 {
		t.Fatalf("broker-config emqx: exit %d %s", code, msg)
	}
	h := readText(t, filepath.Join(out, brokerconfig.FileEMQX))
	for _, want := range []string{
		"shared_subscription_strategy = hash_clientid", "peer_cert_as_username = cn", "peer_cert_as_clientid = cn",
		`url = "https://fleet.internal:8443/broker/v1/emqx/authn"`, `url = "https://fleet.internal:8443/broker/v1/emqx/authz"`,
		"fail_if_no_peer_cert = true", "no_match = deny", `cert_common_name = "${cert_common_name}"`,
	} {
		if !strings.Contains(h, want) {
			t.Errorf("emqx-kogge.hocon lacks %q", want)
		}
	}
	cert, err := os.ReadFile(filepath.Join(out, brokerconfig.FileCert))
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(cert)
	c, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	if c.Subject.OrganizationalUnit[0] != brokerconfig.BrokerUnit || c.DNSNames[0] != "broker.example.org" || len(c.IPAddresses) != 1 {
		t.Errorf("broker certificate %v %v %v", c.Subject, c.DNSNames, c.IPAddresses)
	}
	if code, _ := runBrokerConfig(t, "emqx", "--database", dbFile, "--out", out, "--name", "b", "--server-url", "http://x:1"); code != 1 {
		t.Errorf("plain-HTTP server URL: exit %d", code)
	}
}

func readText(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
