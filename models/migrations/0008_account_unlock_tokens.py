"""Account tokens of a third purpose: the emailed link that lifts an account-wide login lock."""


def up(migrator, db):
    db.execute_sql("""
    ALTER TABLE account_tokens DROP CONSTRAINT account_tokens_purpose_check;
    ALTER TABLE account_tokens ADD CONSTRAINT account_tokens_purpose_check
        CHECK (purpose IN ('verify_email', 'password_reset', 'account_unlock'));
    """)


def down(migrator, db):
    db.execute_sql("""
    DELETE FROM account_tokens WHERE purpose = 'account_unlock';
    ALTER TABLE account_tokens DROP CONSTRAINT account_tokens_purpose_check;
    ALTER TABLE account_tokens ADD CONSTRAINT account_tokens_purpose_check
        CHECK (purpose IN ('verify_email', 'password_reset'));
    """)
