package testserver

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"time"
)

// MosquittoPath is where Debian installs the broker.
const MosquittoPath = "/usr/sbin/mosquitto"

// Mosquitto is a mosquitto process on a free loopback port, with a
// generated configuration that lets every client do everything.
type Mosquitto struct {
	URL    string
	cmd    *exec.Cmd
	stderr *bytes.Buffer
	done   chan error
}

// HaveMosquitto reports whether the mosquitto binary is installed.
func HaveMosquitto() bool {
	_, err := os.Stat(MosquittoPath)
	return err == nil
}

// StartMosquitto starts mosquitto with its configuration in dir and waits
// until it accepts connections. Call Stop when done.
func StartMosquitto(ctx context.Context, dir string) (*Mosquitto, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("mosquitto: find a free port: %w", err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	conf := filepath.Join(dir, "mosquitto.conf")
	body := "listener " + strconv.Itoa(port) + " 127.0.0.1\n" +
		"allow_anonymous true\n" +
		"persistence false\n" +
		"max_queued_messages 100000\n" +
		"max_inflight_messages 0\n" +
		"log_dest stderr\n" +
		"log_type error\n" +
		"log_type warning\n"
	if err := os.WriteFile(conf, []byte(body), 0o600); err != nil {
		return nil, fmt.Errorf("mosquitto: write config: %w", err)
	}
	m := &Mosquitto{
		URL:    "tcp://127.0.0.1:" + strconv.Itoa(port),
		cmd:    exec.Command(MosquittoPath, "-c", conf),
		stderr: new(bytes.Buffer),
		done:   make(chan error, 1),
	}
	m.cmd.Stderr = m.stderr
	if err := m.cmd.Start(); err != nil {
		return nil, fmt.Errorf("mosquitto: start: %w", err)
	}
	go func() { m.done <- m.cmd.Wait() }()

	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", "127.0.0.1:"+strconv.Itoa(port), time.Second)
		if err == nil {
			c.Close()
			return m, nil
		}
		select {
		case err := <-m.done:
			m.done <- err
			return nil, fmt.Errorf("mosquitto exited at start (%v): %s", err, m.stderr.String())
		case <-ctx.Done():
			m.Stop()
			return nil, ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			m.Stop()
			return nil, errors.New("mosquitto: does not accept connections after 10 s")
		}
	}
}

// Stop ends the process and waits for it.
func (m *Mosquitto) Stop() {
	_ = m.cmd.Process.Kill()
	<-m.done
}
