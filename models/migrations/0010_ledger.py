"""The double-entry ledger: accounts with their running balances, and immutable transfers between them.

Amounts are integer minor units (cents). The flags of an account are enforced
here too, as CHECK constraints over its balance columns, so no code path can
take a flagged account below zero. A transfer names its accounts with its own
currency (a composite foreign key), and a trigger refuses UPDATE and DELETE on
transfers: a mistake is corrected by a new transfer.
"""


def up(migrator, db):
    db.execute_sql("""
    CREATE TABLE ledger_accounts (
        id bigserial PRIMARY KEY,
        code text NOT NULL UNIQUE CHECK (length(code) BETWEEN 1 AND 200),
        kind text NOT NULL CHECK (length(kind) BETWEEN 1 AND 64),
        currency char(3) NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
        flags text[] NOT NULL DEFAULT '{}' CHECK (
            flags <@ ARRAY['debits_must_not_exceed_credits', 'credits_must_not_exceed_debits']::text[]
            AND NOT flags @> ARRAY['debits_must_not_exceed_credits', 'credits_must_not_exceed_debits']::text[]),
        debits_posted bigint NOT NULL DEFAULT 0 CHECK (debits_posted >= 0),
        credits_posted bigint NOT NULL DEFAULT 0 CHECK (credits_posted >= 0),
        debits_pending bigint NOT NULL DEFAULT 0 CHECK (debits_pending >= 0),
        credits_pending bigint NOT NULL DEFAULT 0 CHECK (credits_pending >= 0),
        created_at timestamptz NOT NULL DEFAULT now(),
        -- What a transfer's composite foreign keys point at: an account in the transfer's currency.
        UNIQUE (id, currency),
        CONSTRAINT ledger_accounts_debits_within_credits CHECK (
            NOT flags @> ARRAY['debits_must_not_exceed_credits']::text[]
            OR debits_posted + debits_pending <= credits_posted),
        CONSTRAINT ledger_accounts_credits_within_debits CHECK (
            NOT flags @> ARRAY['credits_must_not_exceed_debits']::text[]
            OR credits_posted + credits_pending <= debits_posted)
    );

    CREATE TABLE ledger_transfers (
        -- Chosen by the caller: the idempotency key of the transfer.
        id uuid PRIMARY KEY,
        -- Insertion order, for listing a transfer history oldest first.
        seq bigserial NOT NULL,
        debit_account_id bigint NOT NULL,
        credit_account_id bigint NOT NULL,
        amount bigint NOT NULL CHECK (amount > 0),
        currency char(3) NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
        kind text NOT NULL CHECK (length(kind) BETWEEN 1 AND 64),
        -- posted: moves money now; pending: reserves it until a post_pending or void_pending transfer
        -- (a row of its own naming it in pending_id) resolves it, or its timeout voids it.
        state text NOT NULL CHECK (state IN ('posted', 'pending', 'post_pending', 'void_pending')),
        pending_id uuid REFERENCES ledger_transfers (id),
        timeout_at timestamptz,
        escrow_id uuid,
        memo text CHECK (length(memo) <= 2000),
        user_data jsonb,
        linked_group uuid,
        created_at timestamptz NOT NULL DEFAULT now(),
        CHECK (debit_account_id <> credit_account_id),
        CHECK ((pending_id IS NOT NULL) = (state IN ('post_pending', 'void_pending'))),
        CHECK (timeout_at IS NULL OR state = 'pending'),
        FOREIGN KEY (debit_account_id, currency) REFERENCES ledger_accounts (id, currency),
        FOREIGN KEY (credit_account_id, currency) REFERENCES ledger_accounts (id, currency)
    );
    -- A pending transfer is posted or voided at most once.
    CREATE UNIQUE INDEX ledger_transfers_pending_id_key ON ledger_transfers (pending_id);
    CREATE INDEX ledger_transfers_escrow_idx ON ledger_transfers (escrow_id, seq) WHERE escrow_id IS NOT NULL;
    CREATE INDEX ledger_transfers_timeout_idx ON ledger_transfers (timeout_at)
        WHERE state = 'pending' AND timeout_at IS NOT NULL;

    -- (Doubled percent signs: the statement goes through psycopg2's parameter formatting.)
    CREATE FUNCTION ledger_transfers_immutable() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        RAISE EXCEPTION 'ledger transfers are immutable: %% refused on %%', TG_OP, OLD.id
            USING ERRCODE = 'integrity_constraint_violation';
    END
    $$;
    CREATE TRIGGER ledger_transfers_immutable BEFORE UPDATE OR DELETE ON ledger_transfers
        FOR EACH ROW EXECUTE FUNCTION ledger_transfers_immutable();
    """)


def down(migrator, db):
    db.execute_sql("""
    DROP TABLE ledger_transfers;
    DROP FUNCTION ledger_transfers_immutable();
    DROP TABLE ledger_accounts;
    """)
