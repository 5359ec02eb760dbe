package leader

import (
	"context"
	"fmt"
	"hash/fnv"
	"math/bits"
)

// Ingest partitions.
//
// With a broker whose shared subscriptions deal messages out one by one
// (Mosquitto), one device's records would reach several replicas at once,
// out of order, and the ingest, which stores a device's records in sequence
// order, would set most of them aside until the device sends them again.
// So with Options.Partitions every replica receives every device message
// and keeps only those of the devices in the partitions it holds: device d
// belongs to partition Partition(d), and each partition is an advisory lock
// held by exactly one replica.
//
// Each replica aims at its share, ceil(64 / replicas), counting the replicas
// by their member locks: one that holds more releases the surplus (it stops
// taking their messages first), one that holds fewer takes free partitions.
// When a replica joins, a share moves to it within two polls; when one dies,
// the survivors take its partitions at their next poll. Messages of a
// partition that nobody holds for that moment are dropped; the devices send
// what stays unacknowledged again (the ingest is idempotent), and the
// store's compare-and-set on each device's watermark keeps two replicas that
// briefly both take a device from storing anything twice.

// Partitions is the number of ingest partitions.
const Partitions = 64

const allPartitions = ^uint64(0)

// Partition returns the ingest partition of a device: FNV-1a of its id
// modulo Partitions.
func Partition(device string) int {
	h := fnv.New32a()
	h.Write([]byte(device))
	return int(h.Sum32() % Partitions)
}

// Owns reports whether this replica holds the ingest partition of device
// (always with SQLite).
func (e *Elector) Owns(device string) bool {
	return e.owned.Load()&(1<<uint(Partition(device))) != 0
}

// Owned returns how many ingest partitions this replica holds.
func (e *Elector) Owned() int { return popcount(e.owned.Load()) }

func popcount(x uint64) int { return bits.OnesCount64(x) }

// balance moves this replica's partitions towards its share.
func (e *Elector) balance(ctx context.Context, s *session, members int) error {
	target := (Partitions + members - 1) / members
	have := popcount(s.parts)
	before := have
	switch {
	case have > target:
		release := uint64(0)
		for p := Partitions - 1; p >= 0 && have > target; p-- {
			if s.parts&(1<<uint(p)) != 0 {
				release |= 1 << uint(p)
				have--
			}
		}
		// Stop taking their messages before another replica can hold
		// them.
		e.owned.Store(s.parts &^ release)
		for p := range Partitions {
			if release&(1<<uint(p)) == 0 {
				continue
			}
			if _, err := s.conn.ExecContext(ctx, `SELECT pg_advisory_unlock($1, $2)`, s.partClass, int32(p)); err != nil {
				return fmt.Errorf("release partition %d: %w", p, err)
			}
			s.parts &^= 1 << uint(p)
		}
	case have < target:
		held, err := e.heldPartitions(ctx, s)
		if err != nil {
			return err
		}
		for p := 0; p < Partitions && have < target; p++ {
			bit := uint64(1) << uint(p)
			if held&bit != 0 || s.parts&bit != 0 {
				continue
			}
			var got bool
			if err := s.conn.QueryRowContext(ctx, `SELECT pg_try_advisory_lock($1, $2)`, s.partClass, int32(p)).Scan(&got); err != nil {
				return fmt.Errorf("take partition %d: %w", p, err)
			}
			if got {
				s.parts |= bit
				have++
				e.owned.Store(s.parts)
			}
		}
	}
	e.owned.Store(s.parts)
	e.m.partitions.Set(float64(have))
	if have != before {
		e.log.Info("ingest partitions moved", "held", have, "of", Partitions, "replicas", members)
	}
	return nil
}

// heldPartitions returns the bitmap of the partitions some session holds.
func (e *Elector) heldPartitions(ctx context.Context, s *session) (uint64, error) {
	rows, err := s.conn.QueryContext(ctx, `SELECT objid::bigint FROM pg_locks
		WHERE locktype = 'advisory' AND granted AND objsubid = 2 AND classid::bigint = $1
		AND database = (SELECT oid FROM pg_database WHERE datname = current_database())`, int64(s.partClass))
	if err != nil {
		return 0, fmt.Errorf("read held partitions: %w", err)
	}
	defer rows.Close()
	var held uint64
	for rows.Next() {
		var p int64
		if err := rows.Scan(&p); err != nil {
			return 0, fmt.Errorf("read held partitions: %w", err)
		}
		if p >= 0 && p < Partitions {
			held |= 1 << uint(p)
		}
	}
	if err := rows.Err(); err != nil {
		return 0, fmt.Errorf("read held partitions: %w", err)
	}
	return held, nil
}
