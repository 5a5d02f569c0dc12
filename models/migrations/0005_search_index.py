"""The search index: ``property_search`` (generation 1), its state, and the dirty-listing queue.

The statements are a frozen copy of ``models/search/index.py`` as of this
migration; a later change of the index's shape is a new migration or simply a
full rebuild (``POST /v1/admin/search/reindex``), which creates the table from
the code of its day. ``tests/models/test_search_index.py`` checks that a
rebuilt table and this one have the same columns and indexes.
"""

PUBLIC = "'ComingSoon', 'Active', 'ActiveUnderContract', 'Pending', 'Closed'"


def up(migrator, db):
    db.execute_sql("""
    CREATE SEQUENCE search_change_seq;

    -- One row per listing ever changed. Dirty while seq > indexed_seq (models/search/queue.py).
    CREATE TABLE search_dirty (
        property_id uuid PRIMARY KEY,
        seq bigint NOT NULL DEFAULT 0,
        indexed_seq bigint NOT NULL DEFAULT 0,
        done_seq bigint NOT NULL DEFAULT 0,
        dirty_since timestamptz,
        marked_at timestamptz NOT NULL DEFAULT now()
    );
    CREATE INDEX search_dirty_pending_idx ON search_dirty (dirty_since) WHERE seq > indexed_seq;
    CREATE INDEX search_dirty_done_idx ON search_dirty (done_seq);

    CREATE TABLE search_state (
        id boolean PRIMARY KEY DEFAULT true CHECK (id),
        generation integer NOT NULL DEFAULT 1 CHECK (generation >= 1),
        building_table text,
        rebuild_job_id uuid,
        rebuild_started_at timestamptz,
        rebuild_start_seq bigint,
        last_rebuild_at timestamptz,
        last_rebuild_job_id uuid,
        last_rebuild_seconds double precision,
        last_rebuild_rows bigint,
        updated_at timestamptz NOT NULL DEFAULT now()
    );
    INSERT INTO search_state DEFAULT VALUES;

    CREATE TABLE property_search (
        id uuid NOT NULL,
        version integer NOT NULL,
        standard_status text NOT NULL,
        property_type text NOT NULL,
        property_sub_type text,
        currency text NOT NULL,
        list_price bigint NOT NULL,
        bedrooms_total smallint,
        bathrooms_total smallint,
        bathrooms_full smallint,
        bathrooms_half smallint,
        living_area integer,
        living_area_units text NOT NULL,
        year_built smallint,
        address text,
        city text NOT NULL,
        city_key text NOT NULL,
        state_or_province text,
        postal_code text,
        country text NOT NULL,
        location point,
        features text[] NOT NULL,
        feature_keys text[] NOT NULL,
        listed_at timestamptz NOT NULL,
        modified_at timestamptz NOT NULL,
        tsv tsvector NOT NULL,
        indexed_at timestamptz NOT NULL DEFAULT now(),
        CONSTRAINT property_search_g1_pkey PRIMARY KEY (id)
    ) WITH (toast_tuple_target = 128);
    ALTER TABLE property_search ALTER COLUMN tsv SET STORAGE EXTERNAL;
    """)
    db.execute_sql(f"""
    INSERT INTO property_search (id, version, standard_status, property_type, property_sub_type, currency,
        list_price, bedrooms_total, bathrooms_total, bathrooms_full, bathrooms_half, living_area, living_area_units,
        year_built, address, city, city_key, state_or_province, postal_code, country, location, features,
        feature_keys, listed_at, modified_at, tsv)
    SELECT p.id, p.version, p.standard_status, p.property_type, p.property_sub_type, p.currency, p.list_price,
        p.bedrooms_total,
        CASE WHEN p.bathrooms_full IS NULL AND p.bathrooms_half IS NULL THEN NULL
             ELSE COALESCE(p.bathrooms_full, 0) + COALESCE(p.bathrooms_half, 0) END,
        p.bathrooms_full, p.bathrooms_half, p.living_area, p.living_area_units, p.year_built,
        p.unparsed_address, p.city, lower(btrim(p.city)), p.state_or_province, upper(btrim(p.postal_code)),
        p.country,
        CASE WHEN p.latitude IS NOT NULL AND p.longitude IS NOT NULL THEN point(p.longitude, p.latitude) END,
        p.features, lower(p.features::text)::text[],
        COALESCE(p.on_market_timestamp, p.created_at), p.modification_timestamp,
        setweight(to_tsvector('english', concat_ws(' ', p.unparsed_address, p.street_name, p.city,
                                                   p.state_or_province, p.postal_code)), 'A')
        || setweight(to_tsvector('english', array_to_string(p.features, ' ')), 'B')
        || setweight(to_tsvector('english', COALESCE(p.public_remarks, '')), 'C')
    FROM properties p WHERE p.standard_status IN ({PUBLIC});

    CREATE INDEX property_search_g1_newest ON property_search USING btree (listed_at, id)
        INCLUDE (standard_status, property_type, list_price, bedrooms_total, bathrooms_total, living_area,
                 year_built, location);
    CREATE INDEX property_search_g1_city_newest ON property_search USING btree (city_key, listed_at, id)
        INCLUDE (standard_status, property_type, list_price, bedrooms_total, bathrooms_total, living_area,
                 year_built, location);
    CREATE INDEX property_search_g1_price ON property_search USING btree (list_price, id)
        INCLUDE (standard_status, property_type, bedrooms_total, bathrooms_total, living_area, year_built,
                 listed_at, location);
    CREATE INDEX property_search_g1_city_price ON property_search USING btree (city_key, list_price, id)
        INCLUDE (standard_status, property_type, bedrooms_total, bathrooms_total, living_area, year_built,
                 listed_at, location);
    CREATE INDEX property_search_g1_postal ON property_search USING btree (postal_code, listed_at, id);
    CREATE INDEX property_search_g1_location ON property_search USING gist (location)
        INCLUDE (standard_status, property_type, list_price, bedrooms_total, bathrooms_total, living_area,
                 year_built, listed_at, id);
    CREATE INDEX property_search_g1_tsv ON property_search USING gin (tsv);
    CREATE INDEX property_search_g1_tsv_a ON property_search USING gin (ts_filter(tsv, '{{a}}'));
    CREATE INDEX property_search_g1_tsv_ab ON property_search USING gin (ts_filter(tsv, '{{a,b}}'));
    CREATE INDEX property_search_g1_features ON property_search USING gin (feature_keys);
    """)


def down(migrator, db):
    # A rebuild that died half way may have left its generation table behind.
    leftovers = db.execute_sql(
        "SELECT tablename FROM pg_tables WHERE schemaname = current_schema() "
        "AND tablename ~ '^property_search_g[0-9]+_[0-9a-f]+$'"
    ).fetchall()
    for (name,) in leftovers:
        db.execute_sql(f'DROP TABLE "{name}"')
    db.execute_sql("""
    DROP TABLE property_search;
    DROP TABLE search_state;
    DROP TABLE search_dirty;
    DROP SEQUENCE search_change_seq;
    """)
