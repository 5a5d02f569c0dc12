"""Accounts: users, sessions with rotating refresh tokens, single-use email tokens, audit log."""


def up(migrator, db):
    db.execute_sql("""
    CREATE TABLE users (
        id uuid PRIMARY KEY,
        email text NOT NULL CHECK (email = lower(email) AND length(email) BETWEEN 3 AND 254),
        password_hash text,
        full_name text NOT NULL CHECK (length(full_name) BETWEEN 1 AND 200),
        role text NOT NULL CHECK (role IN ('buyer', 'seller', 'agent', 'admin')),
        phone text,
        email_verified_at timestamptz,
        banned_at timestamptz,
        ban_reason text,
        last_login_at timestamptz,
        created_at timestamptz NOT NULL DEFAULT now(),
        updated_at timestamptz NOT NULL DEFAULT now()
    );
    CREATE UNIQUE INDEX users_email_key ON users (email);
    CREATE INDEX users_role_idx ON users (role, created_at);

    CREATE TABLE auth_sessions (
        id uuid PRIMARY KEY,
        user_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
        created_at timestamptz NOT NULL DEFAULT now(),
        last_used_at timestamptz NOT NULL DEFAULT now(),
        expires_at timestamptz NOT NULL,
        revoked_at timestamptz,
        revoked_reason text,
        user_agent text,
        ip text
    );
    CREATE INDEX auth_sessions_user_idx ON auth_sessions (user_id) WHERE revoked_at IS NULL;
    CREATE INDEX auth_sessions_expires_idx ON auth_sessions (expires_at);

    CREATE TABLE refresh_tokens (
        token_hash bytea PRIMARY KEY,
        session_id uuid NOT NULL REFERENCES auth_sessions (id) ON DELETE CASCADE,
        created_at timestamptz NOT NULL DEFAULT now(),
        used_at timestamptz
    );
    CREATE INDEX refresh_tokens_session_idx ON refresh_tokens (session_id);

    CREATE TABLE account_tokens (
        token_hash bytea PRIMARY KEY,
        user_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
        purpose text NOT NULL CHECK (purpose IN ('verify_email', 'password_reset')),
        created_at timestamptz NOT NULL DEFAULT now(),
        expires_at timestamptz NOT NULL,
        used_at timestamptz
    );
    CREATE INDEX account_tokens_user_idx ON account_tokens (user_id, purpose);
    CREATE INDEX account_tokens_expires_idx ON account_tokens (expires_at);

    CREATE TABLE audit_log (
        id bigserial PRIMARY KEY,
        at timestamptz NOT NULL DEFAULT now(),
        actor_id uuid REFERENCES users (id) ON DELETE SET NULL,
        action text NOT NULL,
        target_type text NOT NULL,
        target_id text NOT NULL,
        before jsonb,
        after jsonb,
        request_id text,
        ip text
    );
    CREATE INDEX audit_log_target_idx ON audit_log (target_type, target_id, at);
    CREATE INDEX audit_log_actor_idx ON audit_log (actor_id, at);
    """)


def down(migrator, db):
    db.execute_sql("""
    DROP TABLE audit_log;
    DROP TABLE account_tokens;
    DROP TABLE refresh_tokens;
    DROP TABLE auth_sessions;
    DROP TABLE users;
    """)
