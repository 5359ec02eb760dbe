package procedures

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"
)

// Server is an HTTPS server on a free loopback port.
type Server struct {
	ln      net.Listener
	srv     *http.Server
	ca      *CA
	closing chan struct{}
	done    chan struct{}
	once    sync.Once
}

// ServeHTTPS starts h on a free loopback port with a server certificate
// from ca, for tests that script their own procedure.
func ServeHTTPS(h http.Handler, ca *CA) (*Server, error) { return serveHTTPS(h, ca, false) }

// ServeMutualTLS is ServeHTTPS that requires client certificates from ca.
func ServeMutualTLS(h http.Handler, ca *CA) (*Server, error) { return serveHTTPS(h, ca, true) }

// serveHTTPS starts h on 127.0.0.1 with a certificate from ca (a new CA
// when nil); clientCAs, when set, requires client certificates from it.
func serveHTTPS(h http.Handler, ca *CA, requireClientCert bool) (*Server, error) {
	if ca == nil {
		var err error
		if ca, err = NewCA(); err != nil {
			return nil, err
		}
	}
	cert, err := ca.Server("127.0.0.1", "localhost", "::1")
	if err != nil {
		return nil, err
	}
	tc := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	if requireClientCert {
		tc.ClientAuth = tls.RequireAndVerifyClientCert
		tc.ClientCAs = ca.Pool
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("simulator listen: %w", err)
	}
	s := &Server{
		ln: ln, ca: ca, closing: make(chan struct{}), done: make(chan struct{}),
		srv: &http.Server{
			Handler: h, TLSConfig: tc, ReadHeaderTimeout: 10 * time.Second,
			ErrorLog: slog.NewLogLogger(slog.DiscardHandler, slog.LevelError),
		},
	}
	go func() {
		defer close(s.done)
		s.srv.ServeTLS(ln, "", "")
	}()
	return s, nil
}

// URL returns https://127.0.0.1:port.
func (s *Server) URL() string { return "https://" + s.ln.Addr().String() }

// Close stops the server, ends held requests and waits for it.
func (s *Server) Close() error {
	var err error
	s.once.Do(func() {
		close(s.closing)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		err = s.srv.Shutdown(ctx)
		if errors.Is(err, context.DeadlineExceeded) {
			err = s.srv.Close()
		}
		<-s.done
	})
	return err
}

// hold blocks a request until the client gives up or the server closes:
// FaultTimeout.
func (s *Server) hold(r *http.Request) {
	select {
	case <-r.Context().Done():
	case <-s.closing:
	}
}

// drop closes the connection without an answer: FaultDrop.
func drop(w http.ResponseWriter) {
	hj, ok := w.(http.Hijacker)
	if !ok {
		panic(http.ErrAbortHandler)
	}
	conn, _, err := hj.Hijack()
	if err != nil {
		panic(http.ErrAbortHandler)
	}
	conn.Close()
}
