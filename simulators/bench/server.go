package bench

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	fleetserver "github.com/kogge-fleet/kogge/fleet-server"
	"github.com/kogge-fleet/kogge/fleet-server/api/client"
	"github.com/kogge-fleet/kogge/internal/config"
	"github.com/kogge-fleet/kogge/simulators/fleet"
)

// RunServer runs a fleet server with kogge-server's settings (flags only)
// until ctx ends, logging to stderr. It is what `kogge-sim server` runs when
// no kogge-server binary is at hand, so that a benchmark can measure a
// server process of its own.
func RunServer(ctx context.Context, args []string, stderr io.Writer) error {
	cfg := fleetserver.DefaultConfig()
	res, err := config.Load(&cfg, "kogge-sim server", config.Source{Args: args})
	if err != nil {
		return err
	}
	if len(res.Args) > 0 {
		return fmt.Errorf("unexpected arguments %q", res.Args)
	}
	logger, err := fleetserver.NewLogger(cfg.Log, stderr)
	if err != nil {
		return err
	}
	app, err := fleetserver.New(cfg, logger)
	if err != nil {
		return err
	}
	return app.Run(ctx)
}

// childServer is a fleet server in a process of its own.
type childServer struct {
	cmd       *exec.Cmd
	done      chan error
	api       *client.Client
	token     string
	apiURL    string
	enrollURL string
	broker    string
}

// startChildServer starts a fleet server process on free loopback ports
// with its data in dir and waits until its API answers.
func (r *runner) startChildServer(ctx context.Context, dir string, extra ...string) (*childServer, error) {
	if r.cfg.ServerCommand == nil {
		return nil, errors.New("no server command to start a fleet server process with")
	}
	var addrs [3]string
	for i := range addrs {
		a, err := fleet.FreeAddr("")
		if err != nil {
			return nil, err
		}
		addrs[i] = a
	}
	tok := make([]byte, 24)
	rand.Read(tok)
	s := &childServer{token: hex.EncodeToString(tok), apiURL: "http://" + addrs[0], enrollURL: "https://" + addrs[1], broker: addrs[2]}
	args := append([]string{
		"--data-dir=" + filepath.Join(dir, "server"), "--api.listen=" + addrs[0], "--enroll.listen=" + addrs[1],
		"--broker.listen=" + addrs[2], "--tls.names=127.0.0.1", "--api.token=" + s.token,
		"--log.level=warn", "--log.format=text",
	}, extra...)
	s.cmd = r.cfg.ServerCommand(args...)
	logf, err := os.Create(filepath.Join(dir, "server.log"))
	if err != nil {
		return nil, err
	}
	s.cmd.Stdout, s.cmd.Stderr = logf, logf
	if err := s.cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("start the fleet server process: %w", err)
	}
	s.done = make(chan error, 1)
	go func() { // waited for in stop
		s.done <- s.cmd.Wait()
		logf.Close()
	}()
	if s.api, err = client.New(s.apiURL, s.token, client.Options{Timeout: time.Minute}); err != nil {
		s.stop()
		return nil, err
	}
	deadline := time.Now().Add(time.Minute)
	for {
		rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		_, err := s.api.Groups(rctx)
		cancel()
		if err == nil {
			return s, nil
		}
		select {
		case err := <-s.done:
			s.done <- err
			return nil, fmt.Errorf("the fleet server process ended while starting (%v); see %s", err, logf.Name())
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			s.stop()
			return nil, fmt.Errorf("the fleet server process did not answer within 1m: %v", err)
		}
	}
}

// rssKiB is the server process's resident memory.
func (s *childServer) rssKiB() (int64, error) {
	return processRSS(s.cmd.Process.Pid)
}

// processRSS reads VmRSS of a process from /proc.
func processRSS(pid int) (int64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, fmt.Errorf("read the memory of process %d: %w", pid, err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			return strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
		}
	}
	return 0, fmt.Errorf("process %d: no VmRSS in /proc/%d/status", pid, pid)
}

// goMetrics reads the Go runtime's gauges from the server's /metrics
// (empty when it cannot).
func (s *childServer) goMetrics(ctx context.Context) map[string]float64 {
	out := map[string]float64{}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.apiURL+"/metrics", nil)
	if err != nil {
		return out
	}
	req.Header.Set("Authorization", "Bearer "+s.token)
	c := &http.Client{Timeout: 10 * time.Second}
	resp, err := c.Do(req)
	if err != nil {
		return out
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(io.LimitReader(resp.Body, 8<<20))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		name, value, ok := strings.Cut(sc.Text(), " ")
		if !ok || !strings.HasPrefix(name, "go_") {
			continue
		}
		if v, err := strconv.ParseFloat(strings.TrimSpace(value), 64); err == nil {
			out[name] = v
		}
	}
	return out
}

// stop ends the server with SIGTERM (it drains), and SIGKILL after 60 s.
func (s *childServer) stop() error {
	s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-s.done:
		return err
	case <-time.After(time.Minute):
		s.cmd.Process.Kill()
		<-s.done
		return errors.New("the fleet server process did not stop within 1m; killed")
	}
}

// raiseFileLimit raises the soft limit of open files to the hard limit,
// for this process and the processes it starts; it returns the new limit.
func raiseFileLimit() (uint64, error) {
	var l syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l); err != nil {
		return 0, err
	}
	if l.Cur < l.Max {
		l.Cur = l.Max
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &l); err != nil {
			return 0, err
		}
	}
	return l.Cur, nil
}
