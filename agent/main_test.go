package agent_test

import (
	"os"
	"testing"
)

// TestMain lets the test binary stand in for a device process: the crash
// test and the memory benchmark re-execute it with an environment variable
// that says which.
func TestMain(m *testing.M) {
	switch {
	case os.Getenv(envChild) == "1":
		os.Exit(crashChild())
	case os.Getenv(envMemChild) == "1":
		os.Exit(memChild())
	}
	os.Exit(m.Run())
}
