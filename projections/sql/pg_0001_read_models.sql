-- The read models and their checkpoints (component "projections").

CREATE TABLE IF NOT EXISTS rm_checkpoints (
	projection TEXT NOT NULL,
	position BIGINT NOT NULL,
	updated_at TEXT NOT NULL,
	PRIMARY KEY (projection)
);

CREATE TABLE IF NOT EXISTS rm_account_summary (
	account_id TEXT NOT NULL,
	owner TEXT NOT NULL,
	balance BIGINT NOT NULL,
	status TEXT NOT NULL,
	version INTEGER NOT NULL,
	position BIGINT NOT NULL,
	opened_at TEXT NOT NULL,
	updated_at TEXT NOT NULL,
	PRIMARY KEY (account_id)
);

CREATE TABLE IF NOT EXISTS rm_account_transactions (
	account_id TEXT NOT NULL,
	version INTEGER NOT NULL,
	position BIGINT NOT NULL,
	kind TEXT NOT NULL,
	amount BIGINT NOT NULL,
	balance_after BIGINT NOT NULL,
	transfer_id TEXT,
	recorded_at TEXT NOT NULL,
	PRIMARY KEY (account_id, version)
);

CREATE TABLE IF NOT EXISTS rm_transfers (
	transfer_id TEXT NOT NULL,
	from_account TEXT NOT NULL,
	to_account TEXT NOT NULL,
	amount BIGINT NOT NULL,
	status TEXT NOT NULL,
	reason TEXT,
	compensated BOOLEAN NOT NULL,
	steps TEXT NOT NULL,
	version INTEGER NOT NULL,
	position BIGINT NOT NULL,
	requested_at TEXT NOT NULL,
	updated_at TEXT NOT NULL,
	PRIMARY KEY (transfer_id)
);

CREATE TABLE IF NOT EXISTS rm_dashboard_totals (
	id TEXT NOT NULL,
	accounts_opened BIGINT NOT NULL,
	accounts_closed BIGINT NOT NULL,
	total_balance BIGINT NOT NULL,
	deposits BIGINT NOT NULL,
	withdrawals BIGINT NOT NULL,
	transfers_requested BIGINT NOT NULL,
	transfers_completed BIGINT NOT NULL,
	transfers_failed BIGINT NOT NULL,
	PRIMARY KEY (id)
);

CREATE TABLE IF NOT EXISTS rm_dashboard_minutes (
	minute TEXT NOT NULL,
	movements BIGINT NOT NULL,
	PRIMARY KEY (minute)
);
