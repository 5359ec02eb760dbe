package bench

import (
	"context"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/kogge-fleet/kogge/simulators/fleet"
)

// envServerArgs makes the test binary a fleet server process (as
// `kogge-sim server` is) for the connections scenario.
const envServerArgs = "KOGGE_BENCH_TEST_SERVER_ARGS"

func TestMain(m *testing.M) {
	if args := os.Getenv(envServerArgs); args != "" {
		ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
		err := RunServer(ctx, strings.Split(args, "\x1f"), os.Stderr)
		stop()
		if err != nil {
			os.Stderr.WriteString(err.Error() + "\n")
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func testServerCommand(args ...string) *exec.Cmd {
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), envServerArgs+"="+strings.Join(args, "\x1f"))
	return cmd
}

// TestQuickRun runs every scenario scaled down and checks the table and
// the results file: one valid object per scenario, appended to what the
// file held.
func TestQuickRun(t *testing.T) {
	if testing.Short() {
		t.Skip("starts fleet servers")
	}
	out := filepath.Join(t.TempDir(), "bench-results.json")
	earlier := Result{Scenario: CatchUp, Value: 1, Unit: "records/s", Target: "x", Params: map[string]any{}}
	earlier.StartedAt = earlier.StartedAt.AddDate(2026, 0, 0)
	if err := AppendResults(out, earlier); err != nil {
		t.Fatal(err)
	}
	var table, progress strings.Builder
	results, err := Run(context.Background(), Config{
		Quick: true, Out: out, Dir: t.TempDir(), ServerCommand: testServerCommand, Delivery: fleet.ProcedureDelivery(fleet.DefaultBridgeTuning()),
		RequireMosquitto: os.Getenv("CI") == "true", Table: &table, Progress: &progress,
		Postgres: os.Getenv("KOGGE_TEST_POSTGRES_URL"),
	})
	t.Logf("table:\n%s", table.String())
	t.Logf("progress:\n%s", progress.String())
	if err != nil {
		t.Fatalf("%v\nprogress:\n%s", err, progress.String())
	}
	if len(results) != len(Scenarios()) {
		t.Fatalf("%d results for %d scenarios", len(results), len(Scenarios()))
	}
	file, err := ReadResults(out)
	if err != nil {
		t.Fatal(err)
	}
	if len(file) != len(Scenarios())+1 || file[0].Scenario != CatchUp || file[0].Value != 1 {
		t.Fatalf("the file holds %d results (the earlier one first?): %+v", len(file), file)
	}
	for i, r := range file[1:] {
		if r.Scenario != Scenarios()[i] {
			t.Errorf("result %d is %q, want %q", i, r.Scenario, Scenarios()[i])
		}
		if err := r.Validate(); err != nil {
			t.Errorf("result %s: %v", r.Scenario, err)
		}
		if !r.Skipped && r.Baseline > 0 && r.Ratio <= 0 {
			t.Errorf("result %s: a baseline without a ratio: %+v", r.Scenario, r)
		}
		if !strings.Contains(table.String(), r.Scenario) {
			t.Errorf("the table has no row for %s", r.Scenario)
		}
	}
	// Everything but broker without Mosquitto, and replicas without
	// Mosquitto or PostgreSQL, is measured here.
	for _, r := range file[1:] {
		if r.Skipped && r.Scenario != BrokerCmp && r.Scenario != Replicas {
			t.Errorf("%s was skipped: %s", r.Scenario, r.Note)
		}
	}
}

func TestResultsFile(t *testing.T) {
	tests := []struct {
		name string
		data string
		n    int
		ok   bool
	}{
		{"empty", "", 0, true},
		{"array", `[{"scenario":"ingest","value":1}]`, 1, true},
		{"object", `{"scenario":"ingest"}`, 0, false},
		{"garbage", `[{`, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rs, err := DecodeResults([]byte(tt.data))
			if (err == nil) != tt.ok || len(rs) != tt.n {
				t.Fatalf("DecodeResults: %d results, %v", len(rs), err)
			}
		})
	}
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		ok   bool
	}{
		{"defaults", Config{}, true},
		{"unknown scenario", Config{Scenarios: []string{"speed"}}, false},
		{"scale too big", Config{Scale: 100}, false},
		{"too many replicas", Config{Replicas: 9}, false},
		{"another broker", Config{Broker: "emqx"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.cfg.setDefaults()
			if err := tt.cfg.Validate(); (err == nil) != tt.ok {
				t.Fatalf("Validate: %v", err)
			}
		})
	}
}

func FuzzDecodeResults(f *testing.F) {
	f.Add([]byte(`[{"scenario":"ingest","value":1,"params":{"a":1}}]`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, b []byte) {
		rs, err := DecodeResults(b)
		if err != nil && rs != nil {
			t.Fatal("results and an error")
		}
	})
}
