// Package store is a device's durable outbox: one SQLite file per device
// that holds the captures until the fleet server has stored them, their
// blobs until the server has them complete, what became of each record
// afterwards, the commands the device has executed and a few small values.
//
// # What "saved" means
//
// [Store.Save] returns only after the record and all its blobs are
// committed in one SQLite transaction in WAL mode with synchronous=FULL:
// the commit has fsynced the write-ahead log, so the capture survives a
// crash or a power cut from that moment on. A Save that returns an error
// wrote nothing. Every record gets a UUIDv7 and the device's next sequence
// number. Sequence numbers come from a counter row, not from the rows
// present, so they are never reused: not after WipeUnsent deleted records,
// not after a restart. A refused or failed Save uses no number, so the
// numbers have no gaps except where WipeUnsent deleted records.
//
// After the server's acknowledgement ([Store.MarkStored]) the sealed body
// is deleted at once; the non-personal metadata stays for the user
// interface and for later status updates ([Store.SetState]). Blob data is
// deleted when the server confirms the blob complete
// ([Store.MarkBlobComplete]).
//
// # Group commit
//
// One writer goroutine owns the database's only writing connection. Every
// write (captures, acknowledgements, states, command results, values) is
// queued to it. It takes what is waiting, up to Options.MaxBatch, and runs
// it in one transaction with one fsync; every write runs in its own
// savepoint, so one failing write does not undo the others. Concurrent
// captures thus share an fsync, which is where the throughput comes from;
// durability is not weakened.
//
// The server's confirmations (MarkStored, MarkBlobComplete) are the one
// exception: a batch made only of them commits with synchronous=NORMAL and
// costs no fsync, and the next durable commit fsyncs them with it. A power
// cut may undo such a confirmation; the device then sends the record or the
// blob again and the server answers that it has it, so nothing is lost or
// doubled. While a device drains its outbox, confirmations are most of its
// writes, and their fsyncs were what held the drain back. Options.NoGroupCommit gives every capture
// its own transaction; it exists as the benchmark's baseline. Reads use a
// separate pool of read-only connections, which WAL lets run beside the
// writer, each read in one snapshot.
//
// # Budget
//
// The budget (Options.Budget, default 512 MiB) is measured as the
// database's pages in use: page_count minus freelist_count, times
// page_size. The write-ahead log is not counted; it is truncated to 16 MiB
// after checkpoints. Before the writer inserts a capture it books the
// capture's estimated size (payload plus a small overhead) against the
// budget and against the free space of the file system, which must keep
// Options.DiskReserve (default 64 MiB) free. If either would be exceeded,
// the capture is refused with an error wrapping [ErrFull] that says how
// full the store is, before anything is written. Everything else
// (acknowledgements, states, command results, values) is still written
// when the store is full, so that the device can drain. Deleted data
// frees pages at once for the budget; the writer gives free pages back to
// the file system with an incremental vacuum once more than 4 MiB are
// free, at most 8 MiB per step and in further steps while the writer is
// idle, never on every call.
//
// # Corruption
//
// Open runs PRAGMA quick_check on an existing file. A file that is not a
// SQLite database or fails the check is never overwritten or deleted: it is
// renamed to <path>.corrupt-<UTC timestamp> together with its -wal and
// -shm files, an ERROR is logged, and a fresh store is created.
// [Store.MovedAside] returns where the old file went. quick_check reads the
// whole file, so Open takes longer for a large store.
package store
