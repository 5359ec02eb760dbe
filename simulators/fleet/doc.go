// Package fleet simulates a city's fleet of Kogge devices against the real
// fleet server, to watch the main job work (kogge-sim demo), to measure it
// (simulators/bench) and to prove that faults lose and double nothing
// (kogge-sim chaos).
//
// # Devices
//
// Every virtual device is a real agent (agent.New with its own agent/store
// SQLite file and its own certificate), enrolled through the real path: a
// one-time code from the admin API, then agent/enroll against the server's
// HTTPS endpoint. A device connects to the broker through a fault proxy of
// its own (faultproxy), which cuts, slows, resets or blackholes its link.
// Devices marked Process run as child processes (kogge-sim device), each
// with its store and identity in its directory, so that they can be killed
// with SIGKILL and started again.
//
// Workloads are what the city's devices capture, as valid casefile
// documents sealed for the office (agent.Capture seals): kiosk applications
// (a photo of about 300 KiB, two fingerprints of about 100 KiB, a signature
// of about 20 KiB), warden notices (three photos and the case data) and road
// reports (one to three photos and the position). Each role follows a daily
// curve (opening hours and their peaks) on a simulated clock whose hour
// lasts as long as the run wants (Clock).
//
// # Faults
//
// RunChaos mixes link faults on random devices (latency, bandwidth limit,
// reset, blackhole, cut), SIGKILLs of device processes, restarts of the
// fleet server with its embedded broker (in-process, on the same ports and
// data), a whole district offline for a simulated hour, and a device whose
// tiny store budget fills up (captures refused) until its link heals and
// it drains.
//
// # Ledger
//
// Every capture that returned a receipt is written to the Ledger (JSON
// lines). Reconcile compares it with the server's records (admin API), the
// devices' stores and the procedure simulators' logs: created, delivered
// once, lost, duplicated, and still pending with the reason (device queue,
// blobs arriving, delivery queue, dead letter).
//
// # Runs
//
// Demo and Chaos wire it all together: a fleet server on embedded defaults
// in a data directory of its own, the delivery side (ProcedureDelivery:
// in-process bridges into the procedure simulators) and a fleet of kiosks
// and handhelds spread over districts.
package fleet
