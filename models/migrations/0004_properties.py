"""Properties (listings) with RESO Data Dictionary fields, their price/status history, favorites."""


def up(migrator, db):
    db.execute_sql("""
    CREATE TABLE properties (
        id uuid PRIMARY KEY,
        owner_id uuid NOT NULL REFERENCES users (id),
        list_agent_id uuid REFERENCES users (id),
        version integer NOT NULL DEFAULT 1,
        standard_status text NOT NULL DEFAULT 'Incomplete' CHECK (standard_status IN (
            'Incomplete', 'ComingSoon', 'Active', 'ActiveUnderContract', 'Pending', 'Closed',
            'Withdrawn', 'Expired', 'Canceled')),
        property_type text NOT NULL CHECK (property_type IN (
            'Residential', 'ResidentialLease', 'ResidentialIncome', 'Land', 'CommercialSale',
            'CommercialLease', 'Farm', 'ManufacturedInPark', 'BusinessOpportunity')),
        property_sub_type text,
        currency char(3) NOT NULL DEFAULT 'USD' CHECK (currency ~ '^[A-Z]{3}$'),
        list_price bigint NOT NULL CHECK (list_price >= 0),
        original_list_price bigint NOT NULL CHECK (original_list_price >= 0),
        previous_list_price bigint CHECK (previous_list_price >= 0),
        close_price bigint CHECK (close_price >= 0),
        bedrooms_total smallint CHECK (bedrooms_total BETWEEN 0 AND 100),
        bathrooms_full smallint CHECK (bathrooms_full BETWEEN 0 AND 100),
        bathrooms_half smallint CHECK (bathrooms_half BETWEEN 0 AND 100),
        living_area integer CHECK (living_area BETWEEN 0 AND 10000000),
        living_area_units text NOT NULL DEFAULT 'SquareFeet' CHECK (living_area_units IN ('SquareFeet', 'SquareMeters')),
        lot_size_square_feet bigint CHECK (lot_size_square_feet >= 0),
        year_built smallint CHECK (year_built BETWEEN 1600 AND 2100),
        street_number text,
        street_name text,
        unit_number text,
        unparsed_address text,
        city text NOT NULL,
        state_or_province text,
        postal_code text,
        country char(2) NOT NULL DEFAULT 'US',
        latitude double precision CHECK (latitude BETWEEN -90 AND 90),
        longitude double precision CHECK (longitude BETWEEN -180 AND 180),
        features text[] NOT NULL DEFAULT '{}',
        association_fee bigint CHECK (association_fee >= 0),
        association_fee_frequency text CHECK (association_fee_frequency IN (
            'Monthly', 'Quarterly', 'SemiAnnually', 'Annually')),
        tax_annual_amount bigint CHECK (tax_annual_amount >= 0),
        tax_year smallint,
        public_remarks text,
        virtual_tour_url_unbranded text,
        listing_contract_date date,
        on_market_timestamp timestamptz,
        close_date date,
        created_at timestamptz NOT NULL DEFAULT now(),
        modification_timestamp timestamptz NOT NULL DEFAULT now()
    );
    CREATE INDEX properties_owner_idx ON properties (owner_id, created_at DESC);
    CREATE INDEX properties_agent_idx ON properties (list_agent_id) WHERE list_agent_id IS NOT NULL;
    CREATE INDEX properties_modified_idx ON properties (modification_timestamp, id);

    CREATE TABLE property_history (
        id bigserial PRIMARY KEY,
        property_id uuid NOT NULL REFERENCES properties (id) ON DELETE CASCADE,
        at timestamptz NOT NULL DEFAULT now(),
        actor_id uuid REFERENCES users (id) ON DELETE SET NULL,
        field text NOT NULL CHECK (field IN ('list_price', 'standard_status')),
        old_value text,
        new_value text NOT NULL
    );
    CREATE INDEX property_history_property_idx ON property_history (property_id, id);

    CREATE TABLE favorites (
        user_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
        property_id uuid NOT NULL REFERENCES properties (id) ON DELETE CASCADE,
        created_at timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (user_id, property_id)
    );
    CREATE INDEX favorites_property_idx ON favorites (property_id);
    """)


def down(migrator, db):
    db.execute_sql("DROP TABLE favorites; DROP TABLE property_history; DROP TABLE properties;")
