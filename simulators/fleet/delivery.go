package fleet

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"

	fleetserver "github.com/kogge-fleet/kogge/fleet-server"
	"github.com/kogge-fleet/kogge/fleet-server/bridge"
	"github.com/kogge-fleet/kogge/fleet-server/connectors/dropdir"
	"github.com/kogge-fleet/kogge/fleet-server/connectors/idpass"
	"github.com/kogge-fleet/kogge/fleet-server/connectors/open311"
	"github.com/kogge-fleet/kogge/fleet-server/connectors/owi"
	"github.com/kogge-fleet/kogge/fleet-server/connectors/webhook"
	"github.com/kogge-fleet/kogge/simulators/procedures"
)

// BridgeTuning are the in-process bridges' timings: short leases, so that
// a delivery cut off by a server restart is handed out again within
// seconds, not minutes.
type BridgeTuning struct {
	// Concurrency is the deliveries each bridge has in flight.
	Concurrency    int
	Visibility     time.Duration
	DeliverTimeout time.Duration
	IdleWait       time.Duration
	PollInterval   time.Duration
}

// DefaultBridgeTuning is the simulator's bridge timing.
func DefaultBridgeTuning() BridgeTuning {
	return BridgeTuning{Concurrency: 16, Visibility: 20 * time.Second, DeliverTimeout: 15 * time.Second, IdleWait: 200 * time.Millisecond, PollInterval: 5 * time.Second}
}

// ProcedureDelivery returns a DeliveryStarter that runs the offices'
// procedure simulators and, in every start of the fleet server, an
// in-process bridge per office (App.AddBridge) with the office's key and
// the connector its procedure speaks:
//
//	buergeramt-<first two districts>  idpass (gid-log XML) into a drop directory
//	buergeramt-<other districts>      webhook (JSON over HTTPS, HMAC-signed)
//	ordnungsamt                       owi (case record XML) into a drop directory
//	strassenbau                       open311 (GeoReport v2 over HTTPS)
func ProcedureDelivery(tuning BridgeTuning) DeliveryStarter {
	return func(ctx context.Context, dir string, offices *Offices, logger *slog.Logger) (Delivery, error) {
		return startProcedures(ctx, dir, offices, tuning, logger)
	}
}

// procedure is one office's procedure simulator and how to build a
// connector for it.
type procedure struct {
	office string
	what   string
	ledger *procedures.Ledger
	// connector builds a fresh connector (and its cleanup) for a bridge.
	connector func() (bridge.Connector, func(), error)
	close     func() error
}

// procDelivery is the running delivery side.
type procDelivery struct {
	offices *Offices
	tuning  BridgeTuning
	log     *slog.Logger
	procs   []*procedure
	cancel  context.CancelFunc
	wg      sync.WaitGroup
}

func startProcedures(_ context.Context, dir string, offices *Offices, tuning BridgeTuning, logger *slog.Logger) (_ *procDelivery, err error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	runCtx, cancel := context.WithCancel(context.Background())
	d := &procDelivery{offices: offices, tuning: tuning, log: logger, cancel: cancel}
	defer func() {
		if err != nil {
			d.Close()
		}
	}()
	kioskOffices := 0
	for _, office := range offices.Names() {
		var p *procedure
		switch {
		case office == Warden.Office(""):
			p, err = d.dropProcedure(runCtx, dir, office, "owi")
		case office == Crew.Office(""):
			p, err = d.open311Procedure(dir, office)
		case strings.HasPrefix(office, "buergeramt-") && kioskOffices < 2:
			kioskOffices++
			p, err = d.dropProcedure(runCtx, dir, office, "idpass")
		default:
			p, err = d.webhookProcedure(dir, office)
		}
		if err != nil {
			return d, fmt.Errorf("procedure of %s: %w", office, err)
		}
		d.procs = append(d.procs, p)
	}
	return d, nil
}

// dropProcedure is a drop-directory procedure (idpass or owi) whose
// consumer runs until Close.
func (d *procDelivery) dropProcedure(ctx context.Context, dir, office, kind string) (*procedure, error) {
	drop := filepath.Join(dir, office)
	if err := os.MkdirAll(drop, 0o700); err != nil {
		return nil, err
	}
	opts := procedures.DropDirOptions{Dir: drop, LogFile: filepath.Join(dir, office+".jsonl")}
	var (
		sim *procedures.DropDir
		err error
	)
	if kind == "idpass" {
		sim, err = procedures.NewIDPassDrop(opts)
	} else {
		sim, err = procedures.NewOWIDrop(opts)
	}
	if err != nil {
		return nil, err
	}
	d.wg.Go(func() {
		if err := sim.Run(ctx); err != nil && ctx.Err() == nil {
			d.log.Error("drop directory simulator failed", "office", office, "err", err)
		}
	})
	dcfg := dropdir.Config{Dir: drop, PollInterval: 50 * time.Millisecond, ReceiptTimeout: d.tuning.DeliverTimeout / 2}
	p := &procedure{office: office, ledger: sim.Ledger(), close: sim.Close}
	if kind == "idpass" {
		p.what = "idpass gid-log into the drop directory " + drop
		p.connector = func() (bridge.Connector, func(), error) {
			c, err := idpass.New(idpass.Config{Drop: dcfg})
			if err != nil {
				return nil, nil, err
			}
			return c, c.Close, nil
		}
	} else {
		p.what = "owi case records into the drop directory " + drop
		p.connector = func() (bridge.Connector, func(), error) {
			c, err := owi.New(owi.Config{Drop: dcfg})
			if err != nil {
				return nil, nil, err
			}
			return c, c.Close, nil
		}
	}
	return p, nil
}

// webhookProcedure is an HTTPS webhook receiver.
func (d *procDelivery) webhookProcedure(dir, office string) (*procedure, error) {
	secret := []byte("kogge-sim " + office + " webhook secret")
	sim, err := procedures.NewWebhook(procedures.WebhookOptions{Secret: secret, LogFile: filepath.Join(dir, office+".jsonl")})
	if err != nil {
		return nil, err
	}
	return &procedure{
		office: office, what: "webhook " + sim.URL(), ledger: sim.Ledger(), close: sim.Close,
		connector: func() (bridge.Connector, func(), error) {
			c, err := webhook.New(webhook.Config{ClientConfig: webhook.ClientConfig{
				URL: sim.URL(), Secret: secret, TLS: sim.CA().ClientTLS(nil), Timeout: 10 * time.Second, RequireReference: true,
			}})
			return c, func() {}, err
		},
	}, nil
}

// open311Procedure is a GeoReport v2 server.
func (d *procDelivery) open311Procedure(dir, office string) (*procedure, error) {
	const key = "kogge-sim-api-key"
	sim, err := procedures.NewOpen311(procedures.Open311Options{APIKey: key, LogFile: filepath.Join(dir, office+".jsonl")})
	if err != nil {
		return nil, err
	}
	state := filepath.Join(dir, office+"-state")
	if err := os.MkdirAll(state, 0o700); err != nil {
		sim.Close()
		return nil, err
	}
	return &procedure{
		office: office, what: "Open311 " + sim.URL(), ledger: sim.Ledger(), close: sim.Close,
		connector: func() (bridge.Connector, func(), error) {
			c, err := open311.New(open311.Config{
				Endpoint: sim.URL(), APIKey: key, StateDir: state, TLS: sim.CA().ClientTLS(nil),
				ServiceCodes: map[string]string{"pothole": "001", "damaged-sign": "002", "streetlight": "003",
					"crack": "004", "subsidence": "005", "traffic-light": "006", "obstacle": "007", "*": "099"},
				AllPhotos: true, Timeout: 10 * time.Second, Logger: d.log.With("office", office),
			})
			if err != nil {
				return nil, nil, err
			}
			return c, func() { c.Close() }, nil
		},
	}, nil
}

// Hook adds a bridge per office to every start of the server.
func (d *procDelivery) Hook() ServerHook {
	return func(app *fleetserver.App) (func() error, error) {
		var cleanups []func()
		cleanup := func() error {
			for _, c := range cleanups {
				c()
			}
			return nil
		}
		for _, p := range d.procs {
			keys, err := d.offices.Keyring(p.office)
			if err != nil {
				return cleanup, err
			}
			conn, closeConn, err := p.connector()
			if err != nil {
				return cleanup, fmt.Errorf("connector for %s: %w", p.office, err)
			}
			cleanups = append(cleanups, closeConn)
			r, err := bridge.New(app.Queue(), keys, conn, bridge.Options{
				Office: p.office, Logger: d.log.With("bridge", p.office), Concurrency: d.tuning.Concurrency,
				Visibility: d.tuning.Visibility, DeliverTimeout: d.tuning.DeliverTimeout,
				IdleWait: d.tuning.IdleWait, PollInterval: d.tuning.PollInterval, DrainTimeout: 10 * time.Second,
			})
			if err != nil {
				return cleanup, fmt.Errorf("bridge for %s: %w", p.office, err)
			}
			if err := app.AddBridge(p.office, r); err != nil {
				return cleanup, err
			}
		}
		return cleanup, nil
	}
}

// Deliveries are the cases the procedure simulators received.
func (d *procDelivery) Deliveries() []Delivered {
	var out []Delivered
	for _, p := range d.procs {
		for _, e := range p.ledger.Entries() {
			id, err := uuid.Parse(e.Key)
			if err != nil {
				continue // not a record of ours
			}
			out = append(out, Delivered{Record: id, Procedure: p.office, Duplicate: e.Duplicate, At: e.At})
		}
	}
	return out
}

// Describe names the procedures.
func (d *procDelivery) Describe() string {
	var parts []string
	for _, p := range d.procs {
		parts = append(parts, p.office+": "+p.what)
	}
	slices.Sort(parts)
	return "in-process bridges (the offices' keys in the server process) into the procedure simulators\n    " +
		strings.Join(parts, "\n    ")
}

// Close stops the simulators.
func (d *procDelivery) Close() error {
	d.cancel()
	d.wg.Wait()
	var errs []error
	for _, p := range d.procs {
		errs = append(errs, p.close())
	}
	return errors.Join(errs...)
}
