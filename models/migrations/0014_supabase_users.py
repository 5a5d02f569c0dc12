"""What a user imported from Supabase brings along: a ban that ends, free-form profile data
(``raw_user_meta_data``) and the sign-in identities (``auth.identities``) by which OAuth and SSO
providers know them, kept so those sign-ins can be offered again without losing who is who.
"""


def up(migrator, db):
    db.execute_sql("""
    -- A ban with an end (Supabase's banned_until); NULL with banned_at set means until lifted.
    ALTER TABLE users ADD COLUMN banned_until timestamptz;
    -- Free-form profile data the user (or the previous backend) stored: GoTrue's user_metadata.
    ALTER TABLE users ADD COLUMN user_metadata jsonb NOT NULL DEFAULT '{}'
        CHECK (jsonb_typeof(user_metadata) = 'object' AND pg_column_size(user_metadata) <= 16384);

    CREATE TABLE user_identities (
        id uuid PRIMARY KEY,
        user_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
        -- 'email', 'phone', 'google', 'github', 'sso:<provider id>', ...
        provider text NOT NULL CHECK (length(provider) BETWEEN 1 AND 100),
        -- The provider's own id for the person (the OAuth subject); for 'email', the user id.
        provider_id text NOT NULL CHECK (length(provider_id) BETWEEN 1 AND 255),
        identity_data jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(identity_data) = 'object'),
        email text,
        last_sign_in_at timestamptz,
        created_at timestamptz NOT NULL DEFAULT now(),
        updated_at timestamptz NOT NULL DEFAULT now(),
        UNIQUE (provider, provider_id)
    );
    CREATE INDEX user_identities_user_idx ON user_identities (user_id);
    """)


def down(migrator, db):
    db.execute_sql("""
    DROP TABLE user_identities;
    ALTER TABLE users DROP COLUMN user_metadata;
    ALTER TABLE users DROP COLUMN banned_until;
    """)
