-- Alerts: rules, the alerts they raise (one open alert per rule and
-- subject), and the notifications about them, kept until sent so that none
-- is lost across a restart. Timestamps are Unix milliseconds.
CREATE TABLE alert_rules (
	id         TEXT PRIMARY KEY,
	name       TEXT NOT NULL,
	kind       TEXT NOT NULL,           -- offline, oldest-unsent, peripheral-fault, delivery-failures, cert-expiring, disk-low
	group_id   TEXT NOT NULL DEFAULT '', -- '' for every group
	params     TEXT NOT NULL DEFAULT '{}', -- JSON: thresholds, opening hours
	notify     TEXT NOT NULL DEFAULT '{}', -- JSON: webhooks, e-mail addresses
	enabled    BOOLEAN NOT NULL DEFAULT TRUE,
	created_at BIGINT NOT NULL,
	updated_at BIGINT NOT NULL
);

CREATE TABLE alerts (
	id          TEXT PRIMARY KEY,
	rule_id     TEXT NOT NULL REFERENCES alert_rules(id) ON DELETE CASCADE,
	subject     TEXT NOT NULL, -- a device id, a destination
	message     TEXT NOT NULL,
	fired_at    BIGINT NOT NULL,
	resolved_at BIGINT
);
CREATE UNIQUE INDEX alerts_open ON alerts (rule_id, subject) WHERE resolved_at IS NULL;
CREATE INDEX alerts_fired ON alerts (fired_at);

-- event is 'firing' or 'resolved'; channel 'webhook' or 'email'. A
-- notification is due while sent_at and given_up_at are NULL and next_at
-- has passed.
CREATE TABLE alert_notifications (
	id          TEXT PRIMARY KEY,
	alert_id    TEXT NOT NULL REFERENCES alerts(id) ON DELETE CASCADE,
	event       TEXT NOT NULL,
	channel     TEXT NOT NULL,
	target      TEXT NOT NULL,
	created_at  BIGINT NOT NULL,
	next_at     BIGINT NOT NULL,
	attempts    INTEGER NOT NULL DEFAULT 0,
	last_error  TEXT NOT NULL DEFAULT '',
	sent_at     BIGINT,
	given_up_at BIGINT
);
CREATE INDEX alert_notifications_due ON alert_notifications (next_at) WHERE sent_at IS NULL AND given_up_at IS NULL;
