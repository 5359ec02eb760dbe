package rollout

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/google/uuid"

	"github.com/kogge-fleet/kogge/fleet-server/store"
	"github.com/kogge-fleet/kogge/protocol/artifact"
)

// ChunkSize is the size of the pieces an artifact's binary is stored in.
const ChunkSize = 1 << 20

// Artifact is an uploaded artifact, without its binary.
type Artifact struct {
	ID         uuid.UUID `json:"id"`
	Name       string    `json:"name"`
	Version    string    `json:"version"`
	Platform   string    `json:"platform"`
	Apps       []string  `json:"apps"`
	Size       int64     `json:"size"`
	SHA256     string    `json:"sha256"`
	MinVersion string    `json:"min_version,omitempty"`
	KeyIDs     []string  `json:"key_ids"`
	Notes      string    `json:"notes,omitempty"`
	Created    time.Time `json:"created"`
	UploadedAt time.Time `json:"uploaded_at"`
	UploadedBy string    `json:"uploaded_by"`
}

const artifactCols = `id, name, version, platform, apps, size, sha256, min_version, key_ids, notes, created_at, uploaded_at, uploaded_by`

func scanArtifact(row interface{ Scan(...any) error }) (Artifact, error) {
	var a Artifact
	var id, apps, keys string
	var created, uploaded int64
	if err := row.Scan(&id, &a.Name, &a.Version, &a.Platform, &apps, &a.Size, &a.SHA256, &a.MinVersion, &keys, &a.Notes,
		&created, &uploaded, &a.UploadedBy); err != nil {
		return Artifact{}, err
	}
	var err error
	if a.ID, err = uuid.Parse(id); err != nil {
		return Artifact{}, fmt.Errorf("artifact id %q: %w", id, err)
	}
	if err := errors.Join(json.Unmarshal([]byte(apps), &a.Apps), json.Unmarshal([]byte(keys), &a.KeyIDs)); err != nil {
		return Artifact{}, fmt.Errorf("artifact %s: %w", id, err)
	}
	a.Created, a.UploadedAt = time.UnixMilli(created).UTC(), time.UnixMilli(uploaded).UTC()
	return a, nil
}

// Upload checks and stores an artifact: signed is its signed manifest,
// binary its binary. It is refused (ErrRefused) unless a trusted key signed
// the manifest and the binary is the one the manifest describes. The
// binary goes into the store in chunks, one transaction each, so that a
// large upload does not hold the writer; the artifact shows only once it
// is complete. actor is who uploads, for the audit log.
func (s *Service) Upload(ctx context.Context, signed []byte, binary io.Reader, actor string) (Artifact, error) {
	if len(s.opts.Keys) == 0 {
		return Artifact{}, fmt.Errorf("%w: the server trusts no signing key; configure rollout.keys with the public keys of koggectl artifact keygen", ErrRefused)
	}
	sm, err := artifact.Verify(signed, s.opts.Keys)
	if err != nil {
		return Artifact{}, fmt.Errorf("%w: %v", ErrRefused, err)
	}
	m := sm.Manifest
	if m.Size > s.opts.MaxArtifactSize {
		return Artifact{}, fmt.Errorf("%w: %s %s has %d bytes; this server takes at most %d (rollout.max-artifact-size)",
			ErrInvalid, m.Name, m.Version, m.Size, s.opts.MaxArtifactSize)
	}
	var keyIDs []string
	for _, sig := range sm.Signatures {
		if _, ok := s.opts.Keys[sig.Key]; ok {
			keyIDs = append(keyIDs, sig.Key)
		}
	}
	apps, _ := json.Marshal(m.Apps)
	keys, _ := json.Marshal(keyIDs)
	now := s.now()
	a := Artifact{ID: uuid.Must(uuid.NewV7()), Name: m.Name, Version: m.Version, Platform: m.Platform, Apps: m.Apps, Size: m.Size,
		SHA256: m.SHA256, MinVersion: m.MinVersion, KeyIDs: keyIDs, Notes: m.Notes, Created: m.Created.UTC(),
		UploadedAt: time.UnixMilli(now.UnixMilli()).UTC(), UploadedBy: actor}
	err = s.db.Tx(ctx, func(tx *sql.Tx) error {
		// An upload that never completed makes way.
		if _, err := tx.ExecContext(ctx, `DELETE FROM artifacts WHERE name = $1 AND version = $2 AND platform = $3 AND complete = 0`,
			m.Name, m.Version, m.Platform); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO artifacts (`+artifactCols+`, manifest, complete)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, 0)`,
			a.ID.String(), a.Name, a.Version, a.Platform, string(apps), a.Size, a.SHA256, a.MinVersion, string(keys), a.Notes,
			a.Created.UnixMilli(), a.UploadedAt.UnixMilli(), a.UploadedBy, signed)
		return err
	})
	if store.IsUniqueViolation(err) {
		return Artifact{}, fmt.Errorf("%w: %s %s for %s was uploaded before", ErrExists, m.Name, m.Version, m.Platform)
	}
	if err != nil {
		return Artifact{}, fmt.Errorf("store artifact: %w", err)
	}
	if err := s.storeChunks(ctx, a.ID, m, binary); err != nil {
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		if derr := s.db.Tx(dctx, func(tx *sql.Tx) error {
			_, err := tx.ExecContext(dctx, `DELETE FROM artifacts WHERE id = $1`, a.ID.String())
			return err
		}); derr != nil {
			s.log.Warn("an incomplete upload was not removed; the next upload of it replaces it", "artifact", a.ID, "err", derr)
		}
		return Artifact{}, err
	}
	if err := s.record(ctx, actor, "artifact.upload", "artifact:"+a.ID.String(), map[string]any{
		"name": a.Name, "version": a.Version, "platform": a.Platform, "size": a.Size, "sha256": a.SHA256, "keys": keyIDs,
	}); err != nil {
		return Artifact{}, err
	}
	s.log.Info("artifact uploaded", "artifact", a.ID, "name", a.Name, "version", a.Version, "platform", a.Platform, "bytes", a.Size)
	return a, nil
}

// storeChunks reads the binary into chunks while checking it against the
// manifest, then marks the artifact complete.
func (s *Service) storeChunks(ctx context.Context, id uuid.UUID, m artifact.Manifest, binary io.Reader) error {
	d := m.NewDigest()
	r := io.TeeReader(io.LimitReader(binary, m.Size+1), d)
	buf := make([]byte, ChunkSize)
	for n := 0; ; n++ {
		k, err := io.ReadFull(r, buf)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) {
			return fmt.Errorf("read the binary: %w", err)
		}
		if int64(n)*ChunkSize+int64(k) > m.Size {
			break // longer than the manifest says; the digest says so
		}
		data := buf[:k]
		if err := s.db.Tx(ctx, func(tx *sql.Tx) error {
			_, err := tx.ExecContext(ctx, `INSERT INTO artifact_chunks (artifact_id, n, data) VALUES ($1, $2, $3)`, id.String(), n, data)
			return err
		}); err != nil {
			return fmt.Errorf("store the binary: %w", err)
		}
		if k < ChunkSize {
			break
		}
	}
	// Read what is left, so that a longer binary is seen as one.
	if _, err := io.Copy(io.Discard, r); err != nil {
		return fmt.Errorf("read the binary: %w", err)
	}
	if err := d.Check(); err != nil {
		return fmt.Errorf("%w: %v", ErrRefused, err)
	}
	return s.db.Tx(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `UPDATE artifacts SET complete = 1 WHERE id = $1`, id.String())
		return err
	})
}

// MaxArtifactSize is the largest binary Upload takes.
func (s *Service) MaxArtifactSize() int64 { return s.opts.MaxArtifactSize }

// Artifacts lists the complete artifacts, newest first.
func (s *Service) Artifacts(ctx context.Context) ([]Artifact, error) {
	rows, err := s.db.Reader().QueryContext(ctx, `SELECT `+artifactCols+` FROM artifacts WHERE complete = 1
		ORDER BY uploaded_at DESC, id DESC LIMIT 1000`)
	if err != nil {
		return nil, fmt.Errorf("list artifacts: %w", err)
	}
	defer rows.Close()
	var out []Artifact
	for rows.Next() {
		a, err := scanArtifact(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, a)
	}
	return out, rows.Err()
}

// Artifact returns a complete artifact.
func (s *Service) Artifact(ctx context.Context, id uuid.UUID) (Artifact, error) {
	a, err := scanArtifact(s.db.Reader().QueryRowContext(ctx, `SELECT `+artifactCols+` FROM artifacts WHERE id = $1 AND complete = 1`, id.String()))
	if errors.Is(err, sql.ErrNoRows) {
		return Artifact{}, fmt.Errorf("%w: no artifact %s", ErrNotFound, id)
	}
	if err != nil {
		return Artifact{}, fmt.Errorf("read artifact %s: %w", id, err)
	}
	return a, nil
}

// Manifest returns an artifact's signed manifest as it was uploaded.
func (s *Service) Manifest(ctx context.Context, id uuid.UUID) ([]byte, error) {
	var b []byte
	err := s.db.Reader().QueryRowContext(ctx, `SELECT manifest FROM artifacts WHERE id = $1 AND complete = 1`, id.String()).Scan(&b)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("%w: no artifact %s", ErrNotFound, id)
	}
	if err != nil {
		return nil, fmt.Errorf("read the manifest of %s: %w", id, err)
	}
	return b, nil
}

// DeleteArtifact deletes an artifact that no rollout uses.
func (s *Service) DeleteArtifact(ctx context.Context, id uuid.UUID, actor string) error {
	a, err := s.Artifact(ctx, id)
	if err != nil {
		return err
	}
	err = s.db.Tx(ctx, func(tx *sql.Tx) error {
		var n int
		if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM rollouts WHERE artifact_id = $1`, id.String()).Scan(&n); err != nil {
			return err
		}
		if n > 0 {
			return fmt.Errorf("%w: artifact %s %s is used by %d rollouts; it stays as their record", ErrConflict, a.Name, a.Version, n)
		}
		_, err := tx.ExecContext(ctx, `DELETE FROM artifacts WHERE id = $1`, id.String())
		return err
	})
	if err != nil {
		return err
	}
	return s.record(ctx, actor, "artifact.delete", "artifact:"+id.String(), map[string]any{"name": a.Name, "version": a.Version})
}

// chunkReader reads an artifact's binary from its chunks; it is an
// io.ReadSeeker for http.ServeContent.
type chunkReader struct {
	ctx  context.Context
	db   *store.DB
	id   string
	size int64
	off  int64
	// the chunk read last
	n    int64
	data []byte
}

func (s *Service) openBinary(ctx context.Context, a Artifact) *chunkReader {
	return &chunkReader{ctx: ctx, db: s.db, id: a.ID.String(), size: a.Size, n: -1}
}

func (b *chunkReader) Read(p []byte) (int, error) {
	if b.off >= b.size {
		return 0, io.EOF
	}
	n := b.off / ChunkSize
	if n != b.n {
		var data []byte
		err := b.db.Reader().QueryRowContext(b.ctx, `SELECT data FROM artifact_chunks WHERE artifact_id = $1 AND n = $2`, b.id, n).Scan(&data)
		if err != nil {
			return 0, fmt.Errorf("read chunk %d of artifact %s: %w", n, b.id, err)
		}
		b.n, b.data = n, data
	}
	k := copy(p, b.data[b.off-n*ChunkSize:])
	if k == 0 {
		return 0, fmt.Errorf("artifact %s: chunk %d is shorter than the artifact", b.id, n)
	}
	b.off += int64(k)
	return k, nil
}

func (b *chunkReader) Seek(offset int64, whence int) (int64, error) {
	switch whence {
	case io.SeekStart:
	case io.SeekCurrent:
		offset += b.off
	case io.SeekEnd:
		offset += b.size
	default:
		return 0, errors.New("seek: bad whence")
	}
	if offset < 0 {
		return 0, errors.New("seek: before the start")
	}
	b.off = offset
	return offset, nil
}
