package fleet

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// ChildSpec is what a device process (kogge-sim device) runs: one device
// with its identity and store in Dir, its workload and its tuning. The
// parent passes it as JSON.
type ChildSpec struct {
	Device      string   `json:"device"`
	Role        Role     `json:"role"`
	District    string   `json:"district"`
	Dir         string   `json:"dir"`
	Broker      string   `json:"broker"`
	Budget      int64    `json:"budget,omitempty"`
	Seed        uint64   `json:"seed"`
	Incarnation int      `json:"incarnation"`
	Workload    Workload `json:"workload"`
	LoadScale   float64  `json:"load_scale"`
	BlobScale   float64  `json:"blob_scale"`
	// Origin, StartOfDay and Hour are the simulated clock (see Clock).
	Origin     time.Time     `json:"origin"`
	StartOfDay time.Duration `json:"start_of_day"`
	Hour       time.Duration `json:"hour"`
	Capturing  bool          `json:"capturing"`
	Tuning     AgentTuning   `json:"tuning"`
	Software   string        `json:"software"`
}

// Validate checks the spec.
func (s ChildSpec) Validate() error {
	var errs []error
	if s.Device == "" || s.Dir == "" || s.Broker == "" {
		errs = append(errs, errors.New("device, dir and broker are required"))
	}
	if !s.Role.Valid() {
		errs = append(errs, fmt.Errorf("role %q: want kiosk, warden or crew", s.Role))
	}
	if err := (Clock{Origin: s.Origin, StartOfDay: s.StartOfDay, Hour: s.Hour}).Validate(); err != nil {
		errs = append(errs, err)
	}
	if s.LoadScale < 0 || s.BlobScale <= 0 {
		errs = append(errs, errors.New("load scale must not be negative and blob scale must be positive"))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("device spec: %w", err)
	}
	return nil
}

// ParseChildSpec reads and checks a device process's spec.
func ParseChildSpec(b []byte) (ChildSpec, error) {
	var spec ChildSpec
	if len(b) > 64<<10 {
		return spec, errors.New("device spec: larger than 64 KiB")
	}
	if err := json.Unmarshal(b, &spec); err != nil {
		return spec, fmt.Errorf("device spec: %w", err)
	}
	return spec, spec.Validate()
}

// parseChildLine reads one line of a device process's output; false for a
// line that is not a message (cut short by SIGKILL, or garbage).
func parseChildLine(b []byte) (childMsg, bool) {
	var m childMsg
	if err := json.Unmarshal(b, &m); err != nil {
		return m, false
	}
	if m.Entry != nil && m.Entry.Validate() != nil {
		return m, false
	}
	return m, m.Entry != nil || m.Stats != nil || m.Ready
}

// childMsg is one line a device process writes to its standard output.
type childMsg struct {
	Entry *Entry       `json:"entry,omitempty"`
	Stats *DeviceStats `json:"stats,omitempty"`
	Ready bool         `json:"ready,omitempty"`
	// Off acknowledges "capture off": no capture is in progress any more,
	// and every receipt was written before it.
	Off bool `json:"off,omitempty"`
}

// Commands a device process reads on its standard input, one per line.
const (
	cmdCaptureOn  = "capture on"
	cmdCaptureOff = "capture off"
)

// RunChild runs a device process: the device's agent and workload as spec
// says, until ctx ends or its standard input closes (the parent is gone).
// It writes receipts and its counters to out as JSON lines and reads
// commands from in. It is what `kogge-sim device` runs.
func RunChild(ctx context.Context, specJSON string, in io.Reader, out io.Writer, logger *slog.Logger) error {
	spec, err := ParseChildSpec([]byte(specJSON))
	if err != nil {
		return err
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	run, err := startAgent(agentParams{
		device: spec.Device, dir: spec.Dir, broker: spec.Broker, budget: spec.Budget,
		tuning: spec.Tuning, logger: logger, software: spec.Software,
	})
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	var outMu sync.Mutex
	enc := json.NewEncoder(out)
	write := func(m childMsg) {
		outMu.Lock()
		defer outMu.Unlock()
		if err := enc.Encode(m); err != nil {
			cancel() // the parent is gone
		}
	}
	var on atomic.Bool
	on.Store(spec.Capturing)
	counters := &captureCounters{}
	seed := seedFor(spec.Seed, spec.Device, spec.Incarnation)
	clock := Clock{Origin: spec.Origin, StartOfDay: spec.StartOfDay, Hour: spec.Hour}
	c := &capturer{
		gen:  newGenerator(spec.Role, spec.Device, spec.District, seed, spec.BlobScale, nil),
		work: spec.Workload, clock: clock, scale: spec.LoadScale, on: &on,
		rng: rand.New(rand.NewPCG(seed, 7)), ag: run.ag, device: spec.Device,
		receipt:  func(e Entry) { write(childMsg{Entry: &e}) },
		counters: counters, log: logger.With("device", spec.Device),
	}
	var wg sync.WaitGroup
	wg.Go(func() { c.run(ctx) })
	wg.Go(func() {
		t := time.NewTicker(250 * time.Millisecond)
		defer t.Stop()
		for {
			s := run.stats(ctx)
			counters.fill(&s)
			write(childMsg{Stats: &s})
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	})
	// Commands from the parent; the end of stdin ends the process. The
	// reader is not stopped by ctx (a read cannot be interrupted): it ends
	// with the process, which is why it is not waited for.
	cmds := make(chan string)
	go func() {
		defer close(cmds)
		sc := bufio.NewScanner(in)
		for sc.Scan() {
			select {
			case cmds <- strings.TrimSpace(sc.Text()):
			case <-ctx.Done():
				return
			}
		}
	}()
	write(childMsg{Ready: true})
loop:
	for {
		select {
		case <-ctx.Done():
			break loop
		case cmd, ok := <-cmds:
			if !ok {
				break loop
			}
			switch cmd {
			case cmdCaptureOn:
				on.Store(true)
			case cmdCaptureOff:
				on.Store(false)
				c.idle()
				s := run.stats(ctx)
				counters.fill(&s)
				write(childMsg{Stats: &s, Off: true})
			default:
				logger.Warn("unknown command from the parent", "command", cmd)
			}
		}
	}
	cancel()
	wg.Wait()
	return run.stop()
}
