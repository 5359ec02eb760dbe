package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/google/uuid"

	"github.com/kogge-fleet/kogge/protocol"
)

// Command tables (migration 0031): one durable queue per device, ordered by
// (issued_at, id). fleet-server/commands writes the queue; the ingest stores
// results through IngestTx.PutCommandResult.

// Command states, derived from a Command's fields (see Command.State).
const (
	// CommandQueued: not sent yet, because the device has been offline.
	CommandQueued = "queued"
	// CommandSent: sent at least once; no result yet.
	CommandSent = "sent"
	// CommandDone: the device reported a result (see Result.Outcome).
	CommandDone = "done"
	// CommandExpired: its time to live ran out before it was ever sent.
	CommandExpired = "expired"
)

// Command is a command for one device.
type Command struct {
	ID     uuid.UUID
	Device string
	// Fanout names the group send this command belongs to, uuid.Nil for a
	// command to one device.
	Fanout      uuid.UUID
	Name        string
	Args        map[string]string
	IssuedAt    int64
	ExpiresAt   int64
	SentCount   int
	FirstSentAt int64
	LastSentAt  int64
	ExpiredAt   int64
	// Result is nil until the device reports one; the first one is kept.
	Result *CommandResult
}

// CommandResult is how a command ended, as the device reported it.
type CommandResult struct {
	Outcome    protocol.Outcome
	Message    string
	Output     []byte
	At         int64 // the device's clock
	ReceivedAt int64 // the server's clock
}

// State returns the command's state: CommandQueued, CommandSent, CommandDone
// or CommandExpired.
func (c Command) State() string {
	switch {
	case c.Result != nil:
		return CommandDone
	case c.ExpiredAt != 0:
		return CommandExpired
	case c.SentCount > 0:
		return CommandSent
	}
	return CommandQueued
}

// Wire returns the command as the device receives it.
func (c Command) Wire() *protocol.Command {
	return &protocol.Command{
		ID: c.ID, Name: c.Name, Args: c.Args,
		IssuedAt: protocol.Timestamp(c.IssuedAt), ExpiresAt: protocol.Timestamp(c.ExpiresAt),
	}
}

// InsertCommands queues commands, all or none.
func (db *DB) InsertCommands(ctx context.Context, cmds []Command) error {
	return db.Tx(ctx, func(tx *sql.Tx) error {
		stmt, err := tx.PrepareContext(ctx, `INSERT INTO commands (id, device_id, fanout_id, name, args, issued_at, expires_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7)`)
		if err != nil {
			return fmt.Errorf("queue commands: %w", err)
		}
		defer stmt.Close()
		for _, c := range cmds {
			args, err := json.Marshal(c.Args)
			if err != nil {
				return fmt.Errorf("queue command %v: %w", c.ID, err)
			}
			if c.Args == nil {
				args = []byte("{}")
			}
			fanout := ""
			if c.Fanout != uuid.Nil {
				fanout = c.Fanout.String()
			}
			if _, err := stmt.ExecContext(ctx, c.ID, c.Device, fanout, c.Name, string(args), c.IssuedAt, c.ExpiresAt); err != nil {
				return fmt.Errorf("queue command %v for %s: %w", c.ID, c.Device, err)
			}
		}
		return nil
	})
}

const commandSelect = `SELECT id, device_id, fanout_id, name, args, issued_at, expires_at, sent_count,
	COALESCE(first_sent_at, 0), COALESCE(last_sent_at, 0), COALESCE(expired_at, 0),
	outcome, COALESCE(message, ''), output, COALESCE(result_at, 0), COALESCE(received_at, 0) FROM commands`

func commandScan(rows interface{ Scan(...any) error }) (Command, error) {
	var c Command
	var fanout, args string
	var outcome sql.NullInt64
	var msg string
	var output []byte
	var at, received int64
	if err := rows.Scan(&c.ID, &c.Device, &fanout, &c.Name, &args, &c.IssuedAt, &c.ExpiresAt, &c.SentCount,
		&c.FirstSentAt, &c.LastSentAt, &c.ExpiredAt, &outcome, &msg, &output, &at, &received); err != nil {
		return Command{}, err
	}
	if fanout != "" {
		id, err := uuid.Parse(fanout)
		if err != nil {
			return Command{}, fmt.Errorf("command %v: fan-out id: %w", c.ID, err)
		}
		c.Fanout = id
	}
	if args != "{}" {
		if err := json.Unmarshal([]byte(args), &c.Args); err != nil {
			return Command{}, fmt.Errorf("command %v: arguments: %w", c.ID, err)
		}
	}
	if outcome.Valid {
		c.Result = &CommandResult{Outcome: protocol.Outcome(outcome.Int64), Message: msg, Output: output, At: at, ReceivedAt: received}
	}
	return c, nil
}

func (db *DB) commands(ctx context.Context, q string, args ...any) ([]Command, error) {
	var out []Command
	err := queryEach(ctx, db.read, commandSelect+" "+q, args, func(rows *sql.Rows) error {
		c, err := commandScan(rows)
		if err != nil {
			return err
		}
		out = append(out, c)
		return nil
	})
	return out, err
}

// Command returns a command, or ErrNotFound.
func (db *DB) Command(ctx context.Context, id uuid.UUID) (Command, error) {
	c, err := commandScan(db.read.QueryRowContext(ctx, commandSelect+` WHERE id = $1`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return Command{}, ErrNotFound
	}
	if err != nil {
		return Command{}, fmt.Errorf("read command %v: %w", id, err)
	}
	return c, nil
}

// CommandFilter selects a device's commands, newest first: issued before
// Before (0 for any time), at most Limit (default 100, at most 1000).
type CommandFilter struct {
	Device string
	Before int64
	Limit  int
}

// DeviceCommands returns a device's command history, newest first.
func (db *DB) DeviceCommands(ctx context.Context, f CommandFilter) ([]Command, error) {
	if f.Limit <= 0 {
		f.Limit = 100
	}
	f.Limit = min(f.Limit, 1000)
	before := f.Before
	if before <= 0 {
		before = 1<<63 - 1
	}
	cs, err := db.commands(ctx, `WHERE device_id = $1 AND issued_at < $2 ORDER BY issued_at DESC, id DESC LIMIT $3`,
		f.Device, before, f.Limit)
	if err != nil {
		return nil, fmt.Errorf("list commands of %s: %w", f.Device, err)
	}
	return cs, nil
}

// FanoutCommands returns the commands of one group send, by device.
func (db *DB) FanoutCommands(ctx context.Context, fanout uuid.UUID) ([]Command, error) {
	cs, err := db.commands(ctx, `WHERE fanout_id = $1 ORDER BY device_id`, fanout.String())
	if err != nil {
		return nil, fmt.Errorf("list commands of fan-out %v: %w", fanout, err)
	}
	return cs, nil
}

// OpenCommands returns a device's commands that still wait for a result and
// have not expired at now, in queue order.
func (db *DB) OpenCommands(ctx context.Context, device string, now int64) ([]Command, error) {
	cs, err := db.commands(ctx, `WHERE device_id = $1 AND outcome IS NULL AND expired_at IS NULL AND expires_at > $2
		ORDER BY issued_at, id`, device, now)
	if err != nil {
		return nil, fmt.Errorf("list open commands of %s: %w", device, err)
	}
	return cs, nil
}

// StaleCommands returns up to limit open commands of online devices that
// were never sent or last sent before sentBefore, in queue order per device.
func (db *DB) StaleCommands(ctx context.Context, sentBefore, now int64, limit int) ([]Command, error) {
	cs, err := db.commands(ctx, `WHERE outcome IS NULL AND expired_at IS NULL AND expires_at > $1
		AND COALESCE(last_sent_at, 0) < $2
		AND device_id IN (SELECT device_id FROM device_presence WHERE online)
		ORDER BY device_id, issued_at, id LIMIT $3`, now, sentBefore, limit)
	if err != nil {
		return nil, fmt.Errorf("list commands to send again: %w", err)
	}
	return cs, nil
}

// MarkCommandsSent records that the commands were handed to the broker at.
func (db *DB) MarkCommandsSent(ctx context.Context, ids []uuid.UUID, at int64) error {
	if len(ids) == 0 {
		return nil
	}
	return db.Tx(ctx, func(tx *sql.Tx) error {
		stmt, err := tx.PrepareContext(ctx, `UPDATE commands SET sent_count = sent_count + 1,
			first_sent_at = COALESCE(first_sent_at, $1), last_sent_at = $1 WHERE id = $2`)
		if err != nil {
			return fmt.Errorf("mark commands sent: %w", err)
		}
		defer stmt.Close()
		for _, id := range ids {
			if _, err := stmt.ExecContext(ctx, at, id); err != nil {
				return fmt.Errorf("mark command %v sent: %w", id, err)
			}
		}
		return nil
	})
}

// ExpireCommands marks the commands whose time to live ran out at now
// before they were ever sent, and returns their ids. Commands that were sent
// stay open for their result: the device may have run them while offline.
func (db *DB) ExpireCommands(ctx context.Context, now int64) ([]uuid.UUID, error) {
	var ids []uuid.UUID
	err := db.Tx(ctx, func(tx *sql.Tx) error {
		ids = ids[:0]
		return queryEach(ctx, tx, `UPDATE commands SET expired_at = $1
			WHERE outcome IS NULL AND expired_at IS NULL AND sent_count = 0 AND expires_at <= $1 RETURNING id`,
			[]any{now}, func(rows *sql.Rows) error {
				var id uuid.UUID
				if err := rows.Scan(&id); err != nil {
					return err
				}
				ids = append(ids, id)
				return nil
			})
	})
	if err != nil {
		return nil, fmt.Errorf("expire commands: %w", err)
	}
	return ids, nil
}

// ResultVerdict is what PutCommandResult did with a result.
type ResultVerdict int

const (
	// ResultStored: the first result of the command, stored now.
	ResultStored ResultVerdict = iota + 1
	// ResultDuplicate: the command has a result already; it is kept.
	ResultDuplicate
	// ResultUnknown: the device has no command with this id.
	ResultUnknown
)

// PutCommandResult stores the first result of one of the device's commands.
func (t *IngestTx) PutCommandResult(ctx context.Context, device string, r *protocol.CommandResult, at int64) (ResultVerdict, error) {
	res, err := t.exec(ctx, `UPDATE commands SET outcome = $1, message = $2, output = $3, result_at = $4, received_at = $5
		WHERE id = $6 AND device_id = $7 AND outcome IS NULL`,
		int(r.Outcome), r.Message, r.Output, int64(r.At), at, r.ID, device)
	if err != nil {
		return 0, fmt.Errorf("store result of command %v: %w", r.ID, err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return 0, fmt.Errorf("store result of command %v: %w", r.ID, err)
	} else if n == 1 {
		return ResultStored, nil
	}
	row, err := t.queryRow(ctx, `SELECT 1 FROM commands WHERE id = $1 AND device_id = $2`, r.ID, device)
	if err != nil {
		return 0, fmt.Errorf("look up command %v: %w", r.ID, err)
	}
	var one int
	switch err := row.Scan(&one); {
	case errors.Is(err, sql.ErrNoRows):
		return ResultUnknown, nil
	case err != nil:
		return 0, fmt.Errorf("look up command %v: %w", r.ID, err)
	}
	return ResultDuplicate, nil
}
