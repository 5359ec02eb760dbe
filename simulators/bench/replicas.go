package bench

import (
	"bufio"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/google/uuid"
	_ "github.com/jackc/pgx/v5/stdlib" // database/sql driver "pgx"

	"github.com/kogge-fleet/kogge/fleet-server/brokerconfig"
	"github.com/kogge-fleet/kogge/fleet-server/registry"
	"github.com/kogge-fleet/kogge/fleet-server/store"
	"github.com/kogge-fleet/kogge/simulators/fleet"
)

// replicas: kogge-server replicas (processes) on one PostgreSQL behind
// Mosquitto, with the configuration koggectl broker-config generates and
// the partitioned ingest; many devices drain their queued small records.
// Durable acknowledged records per second through Config.Replicas replicas,
// against the same run through one replica.
func (r *runner) replicas(ctx context.Context, dir string) (Result, error) {
	n, per := r.n(100, 10), r.n(200, 20)
	reps := r.cfg.Replicas
	res := Result{Unit: fmt.Sprintf("records/s ×%d", reps), BaselineUnit: "records/s ×1", Target: "measured (no target)",
		StartedAt: time.Now().UTC(),
		Params: map[string]any{"devices": n, "records_per_device": per, "replicas": reps, "broker": "mosquitto",
			"split": "partitions", "store": "PostgreSQL", "transport": "mTLS"}}
	skip := func(note string) (Result, error) {
		if r.cfg.RequireMosquitto {
			return res, errors.New(note)
		}
		res.Skipped, res.Note = true, note
		return res, nil
	}
	bin, err := exec.LookPath(r.cfg.Mosquitto)
	if err != nil {
		return skip("mosquitto is not installed; make deps installs it")
	}
	r.cfg.Mosquitto = bin
	if r.cfg.Postgres == "" {
		return skip("no PostgreSQL: give --postgres URL (or KOGGE_TEST_POSTGRES_URL)")
	}
	if r.cfg.ServerCommand == nil {
		return res, errors.New("no server command to start the replicas with")
	}
	if _, err := raiseFileLimit(); err != nil {
		r.progressf("cannot raise the open-file limit: %v", err)
	}
	one, err := r.replicaRun(ctx, filepath.Join(dir, "one"), 1, n, per)
	if err != nil {
		return res, fmt.Errorf("1 replica: %w", err)
	}
	many, err := r.replicaRun(ctx, filepath.Join(dir, "many"), reps, n, per)
	if err != nil {
		return res, fmt.Errorf("%d replicas: %w", reps, err)
	}
	res.Value, res.Baseline, res.Ratio = many, one, many/one
	return res, nil
}

// replicaRun sets up a fresh schema, Mosquitto and reps replicas, drains
// n×per records and returns records per second.
func (r *runner) replicaRun(ctx context.Context, dir string, reps, n, per int) (float64, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return 0, err
	}
	dsn, dropSchema, err := freshSchema(ctx, r.cfg.Postgres)
	if err != nil {
		return 0, err
	}
	defer dropSchema()

	// The fleet CA exists once a server has opened the store; the broker's
	// configuration comes from it, as koggectl broker-config makes it.
	db, err := store.Open(ctx, dsn, store.Options{Logger: slog.New(slog.DiscardHandler), MaxOpenConns: 2})
	if err != nil {
		return 0, err
	}
	defer db.Close()
	if _, err := registry.New(ctx, db, registry.Options{Logger: slog.New(slog.DiscardHandler)}); err != nil {
		return 0, err
	}
	addr, err := fleet.FreeAddr("")
	if err != nil {
		return 0, err
	}
	ids := make([]string, reps)
	for i := range ids {
		ids[i] = "bench-r" + strconv.Itoa(i+1)
	}
	brokerDir := filepath.Join(dir, "mosquitto")
	if err := brokerconfig.WriteMosquitto(ctx, db, brokerDir, brokerconfig.Mosquitto{
		Listen: addr, Names: []string{"127.0.0.1"}, Replicas: ids, User: currentUser(),
	}, time.Now()); err != nil {
		return 0, err
	}
	stopBroker, err := runMosquitto(ctx, r.cfg.Mosquitto, filepath.Join(brokerDir, brokerconfig.FileConf), addr, dir)
	if err != nil {
		return 0, err
	}
	defer stopBroker()

	var servers []*childServer
	defer func() {
		for _, s := range servers {
			if err := s.stop(); err != nil {
				r.progressf("stopping a replica: %v", err)
			}
		}
	}()
	for _, id := range ids {
		r.progressf("starting replica %s", id)
		if err := os.MkdirAll(filepath.Join(dir, id), 0o700); err != nil {
			return 0, err
		}
		s, err := r.startChildServer(ctx, filepath.Join(dir, id), "--database="+dsn, "--replica="+id,
			"--broker.mode=external", "--broker.external.url=mqtts://"+addr)
		if err != nil {
			return 0, err
		}
		servers = append(servers, s)
	}
	share := (64 + reps - 1) / reps
	if err := r.waitUntil(ctx, "partitions shared", time.Minute, func() (bool, string) {
		total, counts := 0, []int{}
		for _, s := range servers {
			c := int(s.metric("kogge_cluster_partitions_owned"))
			if c < 0 || c > share {
				return false, fmt.Sprint("partitions ", counts)
			}
			total += c
			counts = append(counts, c)
		}
		return total == 64, fmt.Sprint("partitions ", counts)
	}); err != nil {
		return 0, err
	}

	api := servers[0].api
	idents, err := r.enrollAll(ctx, api, servers[0].enrollURL, filepath.Join(dir, "devices"), "r", "bench", n, 8)
	if err != nil {
		return 0, err
	}
	offices, err := fleet.GenerateOffices(benchOffice)
	if err != nil {
		return 0, err
	}
	if _, err := api.SetGroupTwin(ctx, "bench", offices.Twin()); err != nil {
		return 0, err
	}
	office, _ := offices.Get(benchOffice)
	stores := make([]string, len(idents))
	r.progressf("filling %d device stores with %d records each", n, per)
	for i, id := range idents {
		stores[i] = filepath.Join(dir, "devices", id.DeviceID, "agent.db")
		if err := fillStore(ctx, stores[i], office.Recipient, per, nil, r.log); err != nil {
			return 0, err
		}
	}

	want := uint64(n * per)
	r.progressf("%d replica(s): %d devices drain %d records", reps, n, want)
	agents := make([]*benchAgent, len(idents))
	start := time.Now()
	for i, id := range idents {
		a, err := startAgent(id, stores[i], "ssl://"+addr, r.log)
		if err != nil {
			stopAll(agents)
			return 0, err
		}
		agents[i] = a
	}
	err = r.waitUntil(ctx, "drain", max(2*time.Minute, time.Duration(want)*4*time.Millisecond), func() (bool, string) {
		var acked uint64
		for _, a := range agents {
			acked += a.acked()
		}
		return acked >= want, fmt.Sprintf("%d of %d records acknowledged", acked, want)
	})
	took := time.Since(start)
	if err := errors.Join(err, stopAll(agents)); err != nil {
		return 0, err
	}
	var stored int
	if err := db.Reader().QueryRowContext(ctx, `SELECT count(*) FROM records`).Scan(&stored); err != nil {
		return 0, err
	}
	if stored != int(want) {
		return 0, fmt.Errorf("the store holds %d records, want %d", stored, want)
	}
	return float64(want) / took.Seconds(), nil
}

// metric reads a sample without labels from the server's /metrics; -1
// when it cannot.
func (s *childServer) metric(name string) float64 {
	c := &http.Client{Timeout: 10 * time.Second}
	resp, err := c.Get(s.apiURL + "/metrics")
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			if f, err := strconv.ParseFloat(v, 64); err == nil {
				return f
			}
		}
	}
	return -1
}

// freshSchema creates a schema in the database at base and returns a URL
// whose search_path is that schema, and a function that drops it.
func freshSchema(ctx context.Context, base string) (string, func(), error) {
	admin, err := sql.Open("pgx", base)
	if err != nil {
		return "", nil, err
	}
	schema := "bench_" + strings.ReplaceAll(uuid.NewString(), "-", "")
	if _, err := admin.ExecContext(ctx, "CREATE SCHEMA "+schema); err != nil {
		admin.Close()
		return "", nil, fmt.Errorf("create a schema for the benchmark: %w", err)
	}
	drop := func() {
		dctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		admin.ExecContext(dctx, "DROP SCHEMA "+schema+" CASCADE")
		admin.Close()
	}
	u, err := url.Parse(base)
	if err != nil {
		drop()
		return "", nil, err
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String(), drop, nil
}

// currentUser is the system user for the generated broker configuration:
// Mosquitto keeps root only when told so.
func currentUser() string {
	if os.Geteuid() == 0 {
		return "root"
	}
	if u, err := user.Current(); err == nil {
		return u.Username
	}
	return "mosquitto"
}

// runMosquitto starts mosquitto -c conf, waits until addr accepts
// connections, and returns a function that stops it.
func runMosquitto(ctx context.Context, bin, conf, addr, dir string) (func(), error) {
	logf, err := os.Create(filepath.Join(dir, "mosquitto.log"))
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, "-c", conf)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("start mosquitto: %w", err)
	}
	done := make(chan struct{})
	go func() { // waited for in stop
		cmd.Wait()
		logf.Close()
		close(done)
	}()
	stop := func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-done
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return stop, nil
		}
		select {
		case <-done:
			return nil, fmt.Errorf("mosquitto exited at start; see %s", logf.Name())
		case <-ctx.Done():
			stop()
			return nil, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			stop()
			return nil, fmt.Errorf("mosquitto does not listen on %s after 10s; see %s", addr, logf.Name())
		}
	}
}
