"""Two-factor login: TOTP factors, single-use recovery codes, login and step-up challenges, and the
assurance level a session reached (so a refresh keeps it).
"""


def up(migrator, db):
    db.execute_sql("""
    CREATE TABLE mfa_factors (
        id uuid PRIMARY KEY,
        user_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
        factor_type text NOT NULL DEFAULT 'totp' CHECK (factor_type IN ('totp')),
        friendly_name text CHECK (length(friendly_name) <= 100),
        -- The shared secret, AES-GCM sealed under a key derived from SECRET_KEY: never stored in clear.
        secret_sealed bytea NOT NULL,
        status text NOT NULL DEFAULT 'unverified' CHECK (status IN ('unverified', 'verified')),
        -- The newest TOTP time step a code was accepted for: a code is good once (RFC 6238 section 5.2).
        last_used_step bigint,
        last_used_at timestamptz,
        created_at timestamptz NOT NULL DEFAULT now(),
        updated_at timestamptz NOT NULL DEFAULT now()
    );
    CREATE INDEX mfa_factors_user_idx ON mfa_factors (user_id);
    -- A friendly name tells a user's factors apart, as GoTrue requires.
    CREATE UNIQUE INDEX mfa_factors_user_name_key ON mfa_factors (user_id, friendly_name)
        WHERE friendly_name IS NOT NULL;

    CREATE TABLE mfa_recovery_codes (
        code_hash bytea PRIMARY KEY,
        user_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
        created_at timestamptz NOT NULL DEFAULT now(),
        used_at timestamptz
    );
    CREATE INDEX mfa_recovery_codes_user_idx ON mfa_recovery_codes (user_id);

    CREATE TABLE mfa_challenges (
        id uuid PRIMARY KEY,
        user_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
        factor_id uuid REFERENCES mfa_factors (id) ON DELETE CASCADE,
        -- NULL: the second step of a login; set: a step-up of that signed-in session.
        session_id uuid REFERENCES auth_sessions (id) ON DELETE CASCADE,
        attempts integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
        ip text,
        created_at timestamptz NOT NULL DEFAULT now(),
        expires_at timestamptz NOT NULL,
        verified_at timestamptz
    );
    CREATE INDEX mfa_challenges_user_idx ON mfa_challenges (user_id);
    CREATE INDEX mfa_challenges_expires_idx ON mfa_challenges (expires_at);

    ALTER TABLE auth_sessions ADD COLUMN aal text NOT NULL DEFAULT 'aal1' CHECK (aal IN ('aal1', 'aal2'));
    -- How the session was authenticated: [{"method": "password", "timestamp": <unix seconds>}, ...].
    ALTER TABLE auth_sessions ADD COLUMN amr jsonb NOT NULL DEFAULT '[]' CHECK (jsonb_typeof(amr) = 'array');
    """)


def down(migrator, db):
    db.execute_sql("""
    ALTER TABLE auth_sessions DROP COLUMN amr;
    ALTER TABLE auth_sessions DROP COLUMN aal;
    DROP TABLE mfa_challenges;
    DROP TABLE mfa_recovery_codes;
    DROP TABLE mfa_factors;
    """)
