"""Conversations and messages, blocks and reports, notifications and their deliveries, saved searches."""


def up(migrator, db):
    db.execute_sql("""
    -- Message attachments are uploads of their own purpose (scanned like every upload).
    ALTER TABLE uploads DROP CONSTRAINT uploads_purpose_check;
    ALTER TABLE uploads ADD CONSTRAINT uploads_purpose_check
        CHECK (purpose IN ('listing_photo', 'document', 'avatar', 'attachment'));

    ALTER TABLE users ADD COLUMN phone_verified_at timestamptz;

    -- One conversation per (listing, buyer): the buyer and the listing's people.
    CREATE TABLE conversations (
        id uuid PRIMARY KEY,
        property_id uuid NOT NULL REFERENCES properties (id) ON DELETE CASCADE,
        buyer_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
        last_message_id bigint,
        last_message_at timestamptz,
        created_at timestamptz NOT NULL DEFAULT now(),
        UNIQUE (property_id, buyer_id)
    );

    CREATE TABLE conversation_participants (
        conversation_id uuid NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
        user_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
        role text NOT NULL CHECK (role IN ('buyer', 'owner', 'agent')),
        last_read_message_id bigint NOT NULL DEFAULT 0,
        last_read_at timestamptz,
        joined_at timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (conversation_id, user_id)
    );
    CREATE INDEX conversation_participants_user_idx ON conversation_participants (user_id);

    CREATE TABLE messages (
        id bigserial PRIMARY KEY,
        conversation_id uuid NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
        sender_id uuid REFERENCES users (id) ON DELETE SET NULL,
        body text NOT NULL CHECK (length(body) BETWEEN 1 AND 4000),
        attachments uuid[] NOT NULL DEFAULT '{}' CHECK (cardinality(attachments) <= 10),
        -- The sender's own id for the message: a retried send with the same one is not posted twice.
        client_id text CHECK (length(client_id) BETWEEN 1 AND 64),
        created_at timestamptz NOT NULL DEFAULT now(),
        UNIQUE (conversation_id, sender_id, client_id)
    );
    CREATE INDEX messages_conversation_idx ON messages (conversation_id, id);
    CREATE INDEX messages_attachments_idx ON messages USING gin (attachments) WHERE attachments <> '{}';
    ALTER TABLE conversations ADD CONSTRAINT conversations_last_message_fk
        FOREIGN KEY (last_message_id) REFERENCES messages (id) ON DELETE SET NULL DEFERRABLE INITIALLY DEFERRED;
    CREATE INDEX conversations_recent_idx ON conversations (last_message_at DESC NULLS LAST, id DESC);

    CREATE TABLE user_blocks (
        blocker_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
        blocked_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
        created_at timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (blocker_id, blocked_id),
        CHECK (blocker_id <> blocked_id)
    );
    CREATE INDEX user_blocks_blocked_idx ON user_blocks (blocked_id);

    CREATE TABLE user_reports (
        id uuid PRIMARY KEY,
        reporter_id uuid REFERENCES users (id) ON DELETE SET NULL,
        reported_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
        conversation_id uuid REFERENCES conversations (id) ON DELETE SET NULL,
        message_id bigint REFERENCES messages (id) ON DELETE SET NULL,
        reason text NOT NULL CHECK (reason IN ('spam', 'scam', 'harassment', 'inappropriate', 'other')),
        details text CHECK (length(details) <= 2000),
        status text NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'actioned', 'dismissed')),
        resolution text CHECK (length(resolution) <= 2000),
        resolved_by uuid REFERENCES users (id) ON DELETE SET NULL,
        resolved_at timestamptz,
        created_at timestamptz NOT NULL DEFAULT now(),
        CHECK (reporter_id IS NULL OR reporter_id <> reported_id)
    );
    CREATE INDEX user_reports_status_idx ON user_reports (status, created_at DESC, id DESC);

    -- An event for one user. The fan-out job decides its channels; in_app is NULL until it has.
    CREATE TABLE notifications (
        id uuid PRIMARY KEY,
        user_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
        type text NOT NULL,
        title text NOT NULL CHECK (length(title) BETWEEN 1 AND 200),
        body text NOT NULL CHECK (length(body) <= 2000),
        data jsonb NOT NULL DEFAULT '{}',
        -- The same event twice (a redelivered job, a second message in an unread streak) is one row.
        dedupe_key text UNIQUE,
        in_app boolean,
        read_at timestamptz,
        created_at timestamptz NOT NULL DEFAULT now()
    );
    CREATE INDEX notifications_feed_idx ON notifications (user_id, created_at DESC, id DESC) WHERE in_app;
    CREATE INDEX notifications_unread_idx ON notifications (user_id) WHERE in_app AND read_at IS NULL;
    -- Marking a conversation's message notifications read finds them whether or not they are in the app.
    CREATE INDEX notifications_user_unread_idx ON notifications (user_id, type) WHERE read_at IS NULL;

    -- One row per (notification, channel) that was or will be sent outside the app.
    CREATE TABLE notification_deliveries (
        id bigserial PRIMARY KEY,
        notification_id uuid NOT NULL REFERENCES notifications (id) ON DELETE CASCADE,
        user_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
        channel text NOT NULL CHECK (channel IN ('email', 'sms')),
        -- pending: to send now; scheduled: held for quiet hours (not_before); digest: waits for the
        -- daily digest; sending: handed to the provider, answer not yet recorded; unknown: a run died
        -- while sending (never resent; a provider webhook may still settle it).
        status text NOT NULL DEFAULT 'pending' CHECK (status IN (
            'pending', 'scheduled', 'digest', 'sending', 'sent', 'delivered', 'failed', 'bounced',
            'suppressed', 'unknown')),
        recipient text NOT NULL,
        idempotency_key text NOT NULL UNIQUE,
        not_before timestamptz,
        attempts integer NOT NULL DEFAULT 0,
        -- The job whose run moved it to 'sending': only a rerun of that job may settle it as 'unknown'.
        claimed_by uuid,
        provider_message_id text,
        provider_status text,
        error text,
        digest_key text,
        sent_at timestamptz,
        created_at timestamptz NOT NULL DEFAULT now(),
        updated_at timestamptz NOT NULL DEFAULT now(),
        UNIQUE (notification_id, channel)
    );
    CREATE INDEX notification_deliveries_due_idx ON notification_deliveries (not_before)
        WHERE status = 'scheduled';
    CREATE INDEX notification_deliveries_digest_idx ON notification_deliveries (user_id)
        WHERE status = 'digest';
    CREATE INDEX notification_deliveries_provider_idx ON notification_deliveries (provider_message_id)
        WHERE provider_message_id IS NOT NULL;
    CREATE INDEX notification_deliveries_admin_idx ON notification_deliveries (created_at DESC, id DESC);

    CREATE TABLE notification_preferences (
        user_id uuid PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
        -- {event type: {"in_app": bool, "email": bool, "sms": bool, "digest": "instant" | "daily"}};
        -- a type not named here has its defaults (models.notifications.DEFAULTS).
        types jsonb NOT NULL DEFAULT '{}',
        quiet_start time,
        quiet_end time,
        timezone text NOT NULL DEFAULT 'UTC',
        digest_hour smallint NOT NULL DEFAULT 8 CHECK (digest_hour BETWEEN 0 AND 23),
        updated_at timestamptz NOT NULL DEFAULT now(),
        CHECK ((quiet_start IS NULL) = (quiet_end IS NULL))
    );

    CREATE TABLE phone_verifications (
        user_id uuid PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
        phone text NOT NULL,
        code_hash bytea NOT NULL,
        attempts smallint NOT NULL DEFAULT 0,
        expires_at timestamptz NOT NULL,
        created_at timestamptz NOT NULL DEFAULT now()
    );

    -- Addresses no email goes to: bounced, reported as spam, or unsubscribed from everything.
    CREATE TABLE email_suppressions (
        email text PRIMARY KEY CHECK (email = lower(email)),
        reason text NOT NULL CHECK (reason IN ('bounce', 'spamreport', 'dropped', 'unsubscribe', 'manual')),
        detail text,
        created_at timestamptz NOT NULL DEFAULT now()
    );

    -- Every provider webhook event received, once (event_key: the provider's own id for it).
    CREATE TABLE provider_events (
        id bigserial PRIMARY KEY,
        provider text NOT NULL CHECK (provider IN ('sendgrid', 'twilio')),
        event_key text NOT NULL,
        event text NOT NULL,
        delivery_id bigint REFERENCES notification_deliveries (id) ON DELETE SET NULL,
        payload jsonb NOT NULL,
        received_at timestamptz NOT NULL DEFAULT now(),
        UNIQUE (provider, event_key)
    );
    CREATE INDEX provider_events_delivery_idx ON provider_events (delivery_id);

    CREATE TABLE saved_searches (
        id uuid PRIMARY KEY,
        user_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
        name text NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
        -- The query parameters of GET /v1/properties, as the API accepted them.
        query jsonb NOT NULL,
        alerts boolean NOT NULL DEFAULT true,
        created_at timestamptz NOT NULL DEFAULT now(),
        updated_at timestamptz NOT NULL DEFAULT now()
    );
    CREATE INDEX saved_searches_user_idx ON saved_searches (user_id, created_at DESC, id DESC);
    CREATE INDEX saved_searches_alerting_idx ON saved_searches (id) WHERE alerts;

    -- What each saved search was alerted about: a listing never twice for the same reason
    -- ('new', or 'price_drop' to the same price).
    CREATE TABLE saved_search_alerts (
        saved_search_id uuid NOT NULL REFERENCES saved_searches (id) ON DELETE CASCADE,
        property_id uuid NOT NULL REFERENCES properties (id) ON DELETE CASCADE,
        reason text NOT NULL CHECK (reason IN ('new', 'price_drop')),
        price bigint NOT NULL DEFAULT 0,
        notification_id uuid REFERENCES notifications (id) ON DELETE SET NULL,
        created_at timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (saved_search_id, property_id, reason, price)
    );

    -- Where the alert scan stopped in property_history.
    CREATE TABLE saved_search_state (
        id boolean PRIMARY KEY DEFAULT true CHECK (id),
        last_history_id bigint NOT NULL DEFAULT 0,
        last_run_at timestamptz
    );
    INSERT INTO saved_search_state (id, last_history_id)
        SELECT true, COALESCE(max(id), 0) FROM property_history;
    """)


def down(migrator, db):
    db.execute_sql("""
    DROP TABLE saved_search_state; DROP TABLE saved_search_alerts; DROP TABLE saved_searches;
    DROP TABLE provider_events; DROP TABLE email_suppressions; DROP TABLE phone_verifications;
    DROP TABLE notification_preferences; DROP TABLE notification_deliveries; DROP TABLE notifications;
    DROP TABLE user_reports; DROP TABLE user_blocks;
    ALTER TABLE conversations DROP CONSTRAINT conversations_last_message_fk;
    DROP TABLE messages; DROP TABLE conversation_participants; DROP TABLE conversations;
    ALTER TABLE users DROP COLUMN phone_verified_at;
    DELETE FROM uploads WHERE purpose = 'attachment';
    ALTER TABLE uploads DROP CONSTRAINT uploads_purpose_check;
    ALTER TABLE uploads ADD CONSTRAINT uploads_purpose_check
        CHECK (purpose IN ('listing_photo', 'document', 'avatar'));
    """)
