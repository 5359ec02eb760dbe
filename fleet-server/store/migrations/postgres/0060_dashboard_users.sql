-- Dashboard (0060–0079): users and their sessions. Timestamps are Unix
-- milliseconds.
--
-- A user signs in with a password (argon2id, PHC string in password_hash)
-- and, if enabled, a TOTP code; or through OIDC (oidc_subject is the
-- issuer and subject, space-separated). totp_last is the last time step a
-- code was accepted for, so that a code is never accepted twice.
-- failed_logins counts failed sign-ins since the last success; after too
-- many the account is locked until locked_until.
CREATE TABLE dashboard_users (
	id            TEXT PRIMARY KEY,
	name          TEXT NOT NULL UNIQUE, -- login name, lower case
	display_name  TEXT NOT NULL DEFAULT '',
	email         TEXT NOT NULL DEFAULT '',
	role          TEXT NOT NULL,        -- admin, operator, auditor, viewer
	password_hash TEXT NOT NULL DEFAULT '', -- '' for users who sign in only through OIDC
	totp_secret   TEXT NOT NULL DEFAULT '', -- base32; '' when none
	totp_enabled  BOOLEAN NOT NULL DEFAULT FALSE,
	totp_last     BIGINT NOT NULL DEFAULT 0,
	oidc_subject  TEXT UNIQUE,
	lang          TEXT NOT NULL DEFAULT '',
	disabled_at   BIGINT,
	failed_logins INTEGER NOT NULL DEFAULT 0,
	locked_until  BIGINT NOT NULL DEFAULT 0,
	created_at    BIGINT NOT NULL,
	updated_at    BIGINT NOT NULL,
	last_login_at BIGINT
);

-- Only the SHA-256 of a session token is stored. stage is 'full' for a
-- signed-in session, 'totp' while the second factor is due.
CREATE TABLE dashboard_sessions (
	id_hash    TEXT PRIMARY KEY,
	user_id    TEXT NOT NULL REFERENCES dashboard_users(id) ON DELETE CASCADE,
	stage      TEXT NOT NULL,
	created_at BIGINT NOT NULL,
	last_seen  BIGINT NOT NULL,
	expires_at BIGINT NOT NULL,
	remote     TEXT NOT NULL DEFAULT '',
	user_agent TEXT NOT NULL DEFAULT ''
);
CREATE INDEX dashboard_sessions_user ON dashboard_sessions (user_id);
CREATE INDEX dashboard_sessions_expiry ON dashboard_sessions (expires_at);
