"""Uploads (scan lifecycle, previews) and the media attached to listings."""


def up(migrator, db):
    db.execute_sql("""
    CREATE TABLE uploads (
        id uuid PRIMARY KEY,
        owner_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
        purpose text NOT NULL CHECK (purpose IN ('listing_photo', 'document', 'avatar')),
        status text NOT NULL DEFAULT 'pending_scan' CHECK (status IN (
            'awaiting_upload', 'pending_scan', 'scanning', 'clean', 'infected', 'rejected')),
        filename text NOT NULL CHECK (length(filename) BETWEEN 1 AND 200),
        content_type text CHECK (content_type IN (
            'image/jpeg', 'image/png', 'image/webp', 'image/heic', 'application/pdf')),
        declared_type text,
        declared_size bigint CHECK (declared_size > 0),
        size bigint CHECK (size >= 0),
        sha256 text CHECK (sha256 ~ '^[0-9a-f]{64}$'),
        storage_key text,
        previews jsonb NOT NULL DEFAULT '{}',
        width integer,
        height integer,
        signature text,
        reject_reason text,
        scan_job_id uuid REFERENCES jobs (id) ON DELETE SET NULL,
        scanned_at timestamptz,
        expires_at timestamptz,
        created_at timestamptz NOT NULL DEFAULT now(),
        updated_at timestamptz NOT NULL DEFAULT now(),
        -- Served files have been scanned, typed and kept; infected ones have no object left.
        CHECK (status <> 'clean' OR (content_type IS NOT NULL AND starts_with(storage_key, 'files/'))),
        CHECK (status <> 'infected' OR (signature IS NOT NULL AND storage_key IS NULL))
    );
    CREATE INDEX uploads_owner_idx ON uploads (owner_id, created_at DESC, id DESC);
    CREATE INDEX uploads_unfinished_idx ON uploads (status, updated_at)
        WHERE status IN ('awaiting_upload', 'pending_scan', 'scanning');

    CREATE TABLE property_media (
        id bigserial PRIMARY KEY,
        property_id uuid NOT NULL REFERENCES properties (id) ON DELETE CASCADE,
        upload_id uuid NOT NULL UNIQUE REFERENCES uploads (id) ON DELETE CASCADE,
        kind text NOT NULL CHECK (kind IN ('photo', 'document')),
        position smallint NOT NULL DEFAULT 0 CHECK (position >= 0),
        is_cover boolean NOT NULL DEFAULT false,
        attached_by uuid REFERENCES users (id) ON DELETE SET NULL,
        created_at timestamptz NOT NULL DEFAULT now(),
        CHECK (kind = 'photo' OR NOT is_cover)
    );
    CREATE INDEX property_media_property_idx ON property_media (property_id, kind, position);
    CREATE UNIQUE INDEX property_media_one_cover ON property_media (property_id) WHERE is_cover;
    """)


def down(migrator, db):
    db.execute_sql("DROP TABLE property_media; DROP TABLE uploads;")
