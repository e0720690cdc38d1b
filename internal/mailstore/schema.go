package mailstore

// migrations are append-only (see database.Migrate). The SQL stays portable
// (no WITHOUT ROWID, no SQLite-only functions) so the same schema can run on
// PostgreSQL.
var migrations = []string{
	`CREATE TABLE mail_accounts (
		account         TEXT PRIMARY KEY,
		modseq          INTEGER NOT NULL,
		uidvalidity_next INTEGER NOT NULL,
		used_bytes      INTEGER NOT NULL DEFAULT 0
	);
	CREATE TABLE mailboxes (
		id            INTEGER PRIMARY KEY,
		account       TEXT NOT NULL,
		name          TEXT NOT NULL,
		uidvalidity   INTEGER NOT NULL,
		uidnext       INTEGER NOT NULL,
		highestmodseq INTEGER NOT NULL,
		messages      INTEGER NOT NULL DEFAULT 0,
		unseen        INTEGER NOT NULL DEFAULT 0,
		size          INTEGER NOT NULL DEFAULT 0,
		subscribed    INTEGER NOT NULL DEFAULT 0,
		special_use   TEXT NOT NULL DEFAULT '',
		UNIQUE (account, name)
	);
	CREATE TABLE messages (
		mailbox_id    INTEGER NOT NULL,
		uid           INTEGER NOT NULL,
		modseq        INTEGER NOT NULL,
		blob          TEXT NOT NULL,
		size          INTEGER NOT NULL,
		internal_date INTEGER NOT NULL,
		date_offset   INTEGER NOT NULL,
		flags         INTEGER NOT NULL,
		keywords      TEXT NOT NULL DEFAULT '',
		structure     BLOB,
		PRIMARY KEY (mailbox_id, uid)
	);
	CREATE INDEX messages_modseq ON messages (mailbox_id, modseq);
	CREATE INDEX messages_blob ON messages (blob);
	CREATE TABLE tombstones (
		mailbox_id INTEGER NOT NULL,
		uid        INTEGER NOT NULL,
		modseq     INTEGER NOT NULL,
		PRIMARY KEY (mailbox_id, uid)
	);
	CREATE INDEX tombstones_modseq ON tombstones (mailbox_id, modseq);`,
	// Small bodies live in the database, written in the same transaction
	// as their metadata: one group-commit fsync covers both (see body.go).
	`CREATE TABLE bodies (
		id   INTEGER PRIMARY KEY,
		data BLOB NOT NULL
	);`,
	// Subscriptions are names, not mailboxes (RFC 3501 6.3.9, RFC 9051
	// 6.3.7): they outlive the mailbox and may name one that never existed.
	`CREATE TABLE subscriptions (
		account TEXT NOT NULL,
		name    TEXT NOT NULL,
		PRIMARY KEY (account, name)
	);
	INSERT INTO subscriptions (account, name) SELECT account, name FROM mailboxes WHERE subscribed <> 0;
	ALTER TABLE mailboxes DROP COLUMN subscribed;`,
	// EXPUNGE without UIDs looks for \Deleted messages (flag 8, Deleted
	// in message.go): a partial index keeps that a lookup instead of a
	// scan of the mailbox inside the single writer's transaction.
	`CREATE INDEX messages_deleted ON messages (mailbox_id, uid) WHERE (flags & 8) <> 0;`,
	// running is 1 while a store has the database open and 0 after a clean
	// Close: found at 1, the last run may have lost deferred flag changes
	// (flagsync.go).
	`CREATE TABLE mailstore_state (
		name  TEXT PRIMARY KEY,
		value INTEGER NOT NULL
	);`,
}
