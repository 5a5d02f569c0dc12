"""Offers and counter-offers on listings, the escrow that holds an accepted offer's earnest money,
its contingencies, instructions and history, and the provider payments that move the money.

Amounts are integer cents. The ledger (migration 0010) says where every cent is; ``escrows.held``
is what the escrow believes it holds and must equal its ledger account's balance.
"""


def up(migrator, db):
    db.execute_sql("""
    -- The seller's account at the payment provider (a Stripe Connect account id), for payouts.
    ALTER TABLE users ADD COLUMN payout_account text CHECK (length(payout_account) BETWEEN 1 AND 255);

    CREATE TABLE offers (
        id uuid PRIMARY KEY,
        property_id uuid NOT NULL REFERENCES properties (id) ON DELETE CASCADE,
        buyer_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
        buyer_agent_id uuid REFERENCES users (id) ON DELETE SET NULL,
        -- Who wrote this offer or counter, and for which side of the deal.
        author_id uuid REFERENCES users (id) ON DELETE SET NULL,
        side text NOT NULL CHECK (side IN ('buyer', 'listing')),
        -- A counter-offer answers its parent; every offer of a chain shares the first one's id as root.
        parent_id uuid UNIQUE REFERENCES offers (id) ON DELETE CASCADE,
        root_id uuid NOT NULL,
        status text NOT NULL DEFAULT 'submitted' CHECK (status IN
            ('submitted', 'backup', 'countered', 'accepted', 'rejected', 'withdrawn', 'expired', 'closed')),
        currency char(3) NOT NULL DEFAULT 'USD',
        price bigint NOT NULL CHECK (price > 0),
        earnest_money bigint NOT NULL CHECK (earnest_money > 0 AND earnest_money <= price),
        financing text NOT NULL CHECK (financing IN ('cash', 'conventional', 'fha', 'va')),
        contingencies jsonb NOT NULL DEFAULT '[]',
        closing_date date NOT NULL,
        expires_at timestamptz NOT NULL,
        message text CHECK (length(message) <= 4000),
        documents uuid[] NOT NULL DEFAULT '{}' CHECK (cardinality(documents) <= 10),
        decided_by uuid REFERENCES users (id) ON DELETE SET NULL,
        decided_at timestamptz,
        decision_reason text CHECK (length(decision_reason) <= 2000),
        created_at timestamptz NOT NULL DEFAULT now(),
        updated_at timestamptz NOT NULL DEFAULT now()
    );
    CREATE INDEX offers_property_idx ON offers (property_id, created_at DESC, id DESC);
    CREATE INDEX offers_buyer_idx ON offers (buyer_id, created_at DESC, id DESC);
    CREATE INDEX offers_buyer_agent_idx ON offers (buyer_agent_id, created_at DESC, id DESC)
        WHERE buyer_agent_id IS NOT NULL;
    CREATE INDEX offers_root_idx ON offers (root_id);
    CREATE INDEX offers_live_expiry_idx ON offers (expires_at) WHERE status IN ('submitted', 'backup');
    -- One live offer per chain: the latest.
    CREATE UNIQUE INDEX offers_one_live_per_chain ON offers (root_id) WHERE status IN ('submitted', 'backup');

    CREATE TABLE escrows (
        id uuid PRIMARY KEY,
        offer_id uuid NOT NULL UNIQUE REFERENCES offers (id) ON DELETE CASCADE,
        property_id uuid NOT NULL REFERENCES properties (id) ON DELETE CASCADE,
        buyer_id uuid REFERENCES users (id) ON DELETE SET NULL,
        buyer_agent_id uuid REFERENCES users (id) ON DELETE SET NULL,
        seller_id uuid REFERENCES users (id) ON DELETE SET NULL,
        list_agent_id uuid REFERENCES users (id) ON DELETE SET NULL,
        status text NOT NULL DEFAULT 'awaiting_deposit' CHECK (status IN
            ('awaiting_deposit', 'funded', 'released', 'refunded', 'disputed', 'resolved', 'cancelled')),
        currency char(3) NOT NULL DEFAULT 'USD',
        amount bigint NOT NULL CHECK (amount > 0),
        held bigint NOT NULL DEFAULT 0 CHECK (held >= 0 AND held <= amount),
        price bigint NOT NULL CHECK (price > 0),
        deposit_due_at timestamptz NOT NULL,
        closing_date date NOT NULL,
        hard_at timestamptz,
        -- What the money is doing once both sides (or an admin) decided: release, refund or split.
        settlement text CHECK (settlement IN ('release', 'refund', 'split')),
        split_buyer bigint CHECK (split_buyer >= 0),
        split_seller bigint CHECK (split_seller >= 0),
        settled_at timestamptz,
        version integer NOT NULL DEFAULT 1,
        created_at timestamptz NOT NULL DEFAULT now(),
        updated_at timestamptz NOT NULL DEFAULT now(),
        CHECK ((settlement = 'split') = (split_buyer IS NOT NULL AND split_seller IS NOT NULL))
    );
    CREATE INDEX escrows_buyer_idx ON escrows (buyer_id);
    CREATE INDEX escrows_seller_idx ON escrows (seller_id);
    CREATE INDEX escrows_deposit_due_idx ON escrows (deposit_due_at) WHERE status = 'awaiting_deposit';
    -- A listing is under contract with one escrow at a time.
    CREATE UNIQUE INDEX escrows_one_open_per_property ON escrows (property_id)
        WHERE status IN ('awaiting_deposit', 'funded', 'disputed');

    CREATE TABLE escrow_contingencies (
        escrow_id uuid NOT NULL REFERENCES escrows (id) ON DELETE CASCADE,
        kind text NOT NULL CHECK (kind IN ('inspection', 'financing', 'appraisal', 'home_sale')),
        days smallint NOT NULL CHECK (days BETWEEN 1 AND 90),
        ends_at timestamptz NOT NULL,
        status text NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'removed', 'lapsed')),
        closed_at timestamptz,
        closed_by uuid REFERENCES users (id) ON DELETE SET NULL,
        PRIMARY KEY (escrow_id, kind)
    );
    CREATE INDEX escrow_contingencies_open_idx ON escrow_contingencies (ends_at) WHERE status = 'open';

    -- Each side's instruction to release or refund; the money moves once both sides gave the same one.
    CREATE TABLE escrow_instructions (
        escrow_id uuid NOT NULL REFERENCES escrows (id) ON DELETE CASCADE,
        action text NOT NULL CHECK (action IN ('release', 'refund')),
        side text NOT NULL CHECK (side IN ('buyer', 'listing')),
        user_id uuid REFERENCES users (id) ON DELETE SET NULL,
        created_at timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (escrow_id, action, side)
    );

    -- Every change of an escrow: who (NULL: the platform itself), when, why.
    CREATE TABLE escrow_events (
        id bigserial PRIMARY KEY,
        escrow_id uuid NOT NULL REFERENCES escrows (id) ON DELETE CASCADE,
        action text NOT NULL,
        from_status text,
        to_status text NOT NULL,
        actor_id uuid REFERENCES users (id) ON DELETE SET NULL,
        reason text CHECK (length(reason) <= 2000),
        data jsonb NOT NULL DEFAULT '{}',
        created_at timestamptz NOT NULL DEFAULT now()
    );
    CREATE INDEX escrow_events_escrow_idx ON escrow_events (escrow_id, id);

    -- Money moved by the provider for an escrow: the deposit collected, refunds and payouts.
    CREATE TABLE payments (
        id uuid PRIMARY KEY,
        escrow_id uuid NOT NULL REFERENCES escrows (id) ON DELETE CASCADE,
        kind text NOT NULL CHECK (kind IN ('deposit', 'refund', 'payout')),
        recipient_id uuid REFERENCES users (id) ON DELETE SET NULL,
        currency char(3) NOT NULL DEFAULT 'USD',
        amount bigint NOT NULL CHECK (amount > 0),
        status text NOT NULL DEFAULT 'pending' CHECK (status IN
            ('pending', 'requires_action', 'processing', 'succeeded', 'failed', 'canceled')),
        provider text NOT NULL,
        provider_ref text UNIQUE,
        -- Sent with every provider call for this payment: a retried job never pays twice.
        idempotency_key text NOT NULL UNIQUE,
        client_secret text,
        failure_code text,
        failure_message text,
        created_at timestamptz NOT NULL DEFAULT now(),
        updated_at timestamptz NOT NULL DEFAULT now()
    );
    CREATE INDEX payments_escrow_idx ON payments (escrow_id, created_at);
    CREATE INDEX payments_failed_idx ON payments (updated_at DESC) WHERE status = 'failed';
    """)


def down(migrator, db):
    db.execute_sql("""
    DROP TABLE payments;
    DROP TABLE escrow_events;
    DROP TABLE escrow_instructions;
    DROP TABLE escrow_contingencies;
    DROP TABLE escrows;
    DROP TABLE offers;
    ALTER TABLE users DROP COLUMN payout_account;
    """)
