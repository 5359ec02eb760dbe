-- Delivery: one durable queue per destination office (store/delivery.go,
-- fleet-server/delivery). A record gets its row once it and all its blobs
-- are stored; bridges lease rows of their office. Timestamps are Unix
-- milliseconds.
--
-- state: queued (waiting, leasable from available_at), leased and delivered
-- (held by a bridge until leased_until; an expired lease is leased again),
-- accepted (the procedure's receipt in reference; body and blobs deleted),
-- dead (a dead letter: last_error says why), discarded (a dead letter an
-- admin dropped; body and blobs deleted), erased (body and blobs deleted by
-- retention or an erasure request).
--
-- status is the protocol.DeliveryState last set for the device (0: none),
-- with status_note and status_at; status_sent_at is NULL until it has been
-- published while the device was online.
CREATE TABLE deliveries (
	n              BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	record_id      TEXT NOT NULL UNIQUE,
	device_id      TEXT NOT NULL,
	office         TEXT NOT NULL,
	kind           TEXT NOT NULL,
	state          TEXT NOT NULL,
	attempt        INTEGER NOT NULL DEFAULT 0,
	leased_until   BIGINT NOT NULL DEFAULT 0,
	available_at   BIGINT NOT NULL,
	last_error     TEXT NOT NULL DEFAULT '',
	reference      TEXT NOT NULL DEFAULT '',
	note           TEXT NOT NULL DEFAULT '',
	enqueued_at    BIGINT NOT NULL,
	updated_at     BIGINT NOT NULL,
	accepted_at    BIGINT,
	dead_at        BIGINT,
	status         INTEGER NOT NULL DEFAULT 0,
	status_note    TEXT NOT NULL DEFAULT '',
	status_at      BIGINT NOT NULL DEFAULT 0,
	status_sent_at BIGINT,
	FOREIGN KEY (device_id, record_id) REFERENCES records (device_id, id)
);
CREATE INDEX deliveries_state ON deliveries (state, office, n);
CREATE INDEX deliveries_leases ON deliveries (office, leased_until) WHERE state IN ('leased', 'delivered');
CREATE INDEX deliveries_reference ON deliveries (reference) WHERE reference <> '';
CREATE INDEX deliveries_device ON deliveries (device_id, status_at) WHERE status <> 0;
CREATE INDEX deliveries_unsent ON deliveries (device_id) WHERE status <> 0 AND status_sent_at IS NULL;

-- Client certificates the fleet CA issued to bridges (CN bridge.<office>).
-- A bridge is let in only with a certificate listed here and not revoked.
CREATE TABLE bridge_certs (
	serial     TEXT PRIMARY KEY, -- lower-case hex
	office     TEXT NOT NULL,
	not_before BIGINT NOT NULL,
	not_after  BIGINT NOT NULL,
	created_at BIGINT NOT NULL,
	revoked_at BIGINT
);
CREATE INDEX bridge_certs_office ON bridge_certs (office);
