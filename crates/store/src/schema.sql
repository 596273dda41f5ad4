-- Easy Deploy state, schema version 4 (every statement is idempotent: the file is re-applied on upgrade).
CREATE TABLE IF NOT EXISTS apps (
    name            TEXT PRIMARY KEY,
    tenant          TEXT NOT NULL,
    settings        TEXT NOT NULL,
    live_deployment TEXT,
    webhook_secret  TEXT NOT NULL DEFAULT '',
    created_at      TEXT NOT NULL,
    updated_at      TEXT NOT NULL
);

CREATE TABLE IF NOT EXISTS deployments (
    id             TEXT PRIMARY KEY,
    app            TEXT NOT NULL REFERENCES apps(name) ON DELETE CASCADE,
    number         INTEGER NOT NULL,
    state          TEXT NOT NULL,
    failed_step    TEXT,
    reason         TEXT,
    settings       TEXT NOT NULL,
    commit_sha     TEXT,
    commit_summary TEXT,
    framework      TEXT,
    evidence       TEXT,
    image          TEXT,
    kind           TEXT NOT NULL DEFAULT 'deploy',
    reuse_image    TEXT,
    port           INTEGER,
    release_number INTEGER,
    created_by     TEXT NOT NULL DEFAULT 'admin',
    lease_owner    TEXT,
    lease_until    INTEGER,
    created_at     TEXT NOT NULL,
    updated_at     TEXT NOT NULL,
    UNIQUE (app, number)
);
CREATE INDEX IF NOT EXISTS deployments_by_state ON deployments (state, created_at);

CREATE TABLE IF NOT EXISTS deployment_transitions (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    deployment TEXT NOT NULL REFERENCES deployments(id) ON DELETE CASCADE,
    state      TEXT NOT NULL,
    at         TEXT NOT NULL,
    message    TEXT
);
CREATE INDEX IF NOT EXISTS transitions_by_deployment ON deployment_transitions (deployment, id);

CREATE TABLE IF NOT EXISTS events (
    id      INTEGER PRIMARY KEY AUTOINCREMENT,
    app     TEXT NOT NULL REFERENCES apps(name) ON DELETE CASCADE,
    at      TEXT NOT NULL,
    kind    TEXT NOT NULL,
    message TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS events_by_app ON events (app, id);

CREATE TABLE IF NOT EXISTS webhook_deliveries (
    delivery    TEXT PRIMARY KEY,
    received_at TEXT NOT NULL
);

CREATE TABLE IF NOT EXISTS alert_settings (
    app                 TEXT PRIMARY KEY REFERENCES apps(name) ON DELETE CASCADE,
    webhook_url         TEXT NOT NULL,
    secret              TEXT NOT NULL,
    error_ratio_percent REAL NOT NULL DEFAULT 5,
    window_secs         INTEGER NOT NULL DEFAULT 300,
    latency_p95_ms      INTEGER NOT NULL DEFAULT 1000,
    crash_loop_restarts INTEGER NOT NULL DEFAULT 3,
    no_healthy_replica  INTEGER NOT NULL DEFAULT 1,
    created_at          TEXT NOT NULL,
    updated_at          TEXT NOT NULL
);

CREATE TABLE IF NOT EXISTS alert_states (
    app          TEXT NOT NULL REFERENCES apps(name) ON DELETE CASCADE,
    rule         TEXT NOT NULL,
    firing_since TEXT,
    resolved_at  TEXT,
    message      TEXT NOT NULL,
    PRIMARY KEY (app, rule)
);

-- Schema version 2: accounts.
CREATE TABLE IF NOT EXISTS users (
    id            TEXT PRIMARY KEY,
    email         TEXT NOT NULL UNIQUE COLLATE NOCASE,
    password_hash TEXT,
    admin         INTEGER NOT NULL DEFAULT 0,
    tenant        TEXT NOT NULL UNIQUE,
    github_id     INTEGER UNIQUE,
    github_login  TEXT,
    github_token  TEXT,
    created_at    TEXT NOT NULL
);

CREATE TABLE IF NOT EXISTS api_tokens (
    id           TEXT PRIMARY KEY,
    user_id      TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    digest       TEXT NOT NULL,
    label        TEXT NOT NULL,
    created_at   TEXT NOT NULL,
    last_used_at TEXT
);
CREATE INDEX IF NOT EXISTS tokens_by_user ON api_tokens (user_id);

CREATE TABLE IF NOT EXISTS teams (
    id         TEXT PRIMARY KEY,
    name       TEXT NOT NULL UNIQUE,
    tenant     TEXT NOT NULL UNIQUE,
    created_at TEXT NOT NULL
);

CREATE TABLE IF NOT EXISTS team_members (
    team     TEXT NOT NULL REFERENCES teams(id) ON DELETE CASCADE,
    user_id  TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    role     TEXT NOT NULL,
    added_at TEXT NOT NULL,
    PRIMARY KEY (team, user_id)
);
CREATE INDEX IF NOT EXISTS members_by_user ON team_members (user_id);

CREATE TABLE IF NOT EXISTS oauth_states (
    state      TEXT PRIMARY KEY,
    created_at INTEGER NOT NULL
);

-- Schema version 3: request and resource metrics, raw samples and roll-ups.
CREATE TABLE IF NOT EXISTS metric_samples (
    app              TEXT NOT NULL REFERENCES apps(name) ON DELETE CASCADE,
    resolution       INTEGER NOT NULL, -- 0 raw, 60 one-minute, 3600 one-hour roll-up
    at               INTEGER NOT NULL, -- unix ms: sample time (raw) or period start (roll-ups)
    secs             REAL NOT NULL,
    samples          INTEGER NOT NULL,
    requests         INTEGER NOT NULL,
    responses_2xx    INTEGER NOT NULL,
    responses_3xx    INTEGER NOT NULL,
    responses_4xx    INTEGER NOT NULL,
    responses_5xx    INTEGER NOT NULL,
    bytes_in         INTEGER NOT NULL,
    bytes_out        INTEGER NOT NULL,
    latency_buckets  TEXT NOT NULL,
    latency_sum_ms   REAL NOT NULL,
    in_flight_avg    REAL NOT NULL,
    in_flight_max    REAL NOT NULL,
    cpu_percent_avg  REAL NOT NULL,
    cpu_percent_max  REAL NOT NULL,
    memory_bytes_avg REAL NOT NULL,
    memory_bytes_max REAL NOT NULL,
    net_rx_bytes     INTEGER NOT NULL,
    net_tx_bytes     INTEGER NOT NULL,
    PRIMARY KEY (app, resolution, at)
);
CREATE INDEX IF NOT EXISTS metric_samples_by_age ON metric_samples (resolution, at);

CREATE TABLE IF NOT EXISTS metric_replicas (
    app     TEXT PRIMARY KEY REFERENCES apps(name) ON DELETE CASCADE,
    at      INTEGER NOT NULL,
    figures TEXT NOT NULL
);

-- Schema version 4: apps connected to a GitHub repository (the push hook
-- registered on it and the user whose token reads it and posts statuses).
CREATE TABLE IF NOT EXISTS github_links (
    app        TEXT PRIMARY KEY REFERENCES apps(name) ON DELETE CASCADE,
    owner      TEXT NOT NULL,
    repo       TEXT NOT NULL,
    source     TEXT NOT NULL,
    user_id    TEXT NOT NULL,
    hook_id    INTEGER,
    created_at TEXT NOT NULL
);
