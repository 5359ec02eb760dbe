// Package rollouttest runs the real REST API with the software-update
// endpoints for tests of its clients (the API client, koggectl): the
// services of apitest plus the rollout service, with a signing key the
// server trusts.
package rollouttest

import (
	"crypto/ed25519"
	"log/slog"
	"net/http/httptest"
	"testing"

	"github.com/kogge-fleet/kogge/fleet-server/api"
	"github.com/kogge-fleet/kogge/fleet-server/api/apitest"
	"github.com/kogge-fleet/kogge/fleet-server/rollout"
	"github.com/kogge-fleet/kogge/protocol/artifact"
)

// Token is the API token of every test server.
const Token = apitest.Token

// Server is a running API with rollouts.
type Server struct {
	*apitest.Server
	// URL replaces the apitest server's: this one serves the rollouts.
	URL      string
	Rollouts *rollout.Service
	// Key is a signing key the server trusts.
	Key ed25519.PrivateKey
}

// New starts a server; it stops when the test ends. edit may change the
// rollout options (Keys is set already).
func New(t testing.TB, edit func(*rollout.Options)) *Server {
	t.Helper()
	base := apitest.New(t)
	quiet := slog.New(slog.DiscardHandler)
	key, err := artifact.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	opts := rollout.Options{Keys: artifact.NewKeyring(key.Public().(ed25519.PublicKey)), Logger: quiet}
	if edit != nil {
		edit(&opts)
	}
	ro, err := rollout.New(base.DB, base.Commands, base.Audit, opts)
	if err != nil {
		t.Fatal(err)
	}
	h, err := api.New(Token, api.Services{Registry: base.Registry, Records: base.DB, Presence: base.DB, Commands: base.Commands,
		Twin: base.Twin, Audit: base.Audit, Deliveries: base.Queue, Erasure: base.Retention, BridgeCerts: base.Registry,
		Rollouts: ro}, api.Options{Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return &Server{Server: base, URL: srv.URL, Rollouts: ro, Key: key}
}
