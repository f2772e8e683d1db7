-- Notifications: the manager's inbox (a row per person and event), each person's choice per
-- event and channel, webhooks (a person's own, or everyone's events for admins), and the
-- durable outbox of deliveries (an email, a webhook's POST), retried with backoff for a day.
CREATE TABLE notifications (
    id         BIGINT      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id    BIGINT      NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    event      TEXT        NOT NULL,
    subject    TEXT        NOT NULL,
    body       TEXT        NOT NULL,
    link       TEXT        NOT NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    read_at    TIMESTAMPTZ
);
CREATE INDEX notifications_user_id ON notifications (user_id, id);
-- The bell counts a person's unread ones on every page.
CREATE INDEX notifications_unread ON notifications (user_id) WHERE read_at IS NULL;

-- A row overrides the default (every channel on) for one event and channel.
CREATE TABLE notification_choices (
    user_id BIGINT  NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    event   TEXT    NOT NULL,
    channel TEXT    NOT NULL CHECK (channel IN ('inbox', 'email', 'webhook')),
    enabled BOOLEAN NOT NULL,
    PRIMARY KEY (user_id, event, channel)
);

CREATE TABLE webhooks (
    id         BIGINT      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    -- NULL: a global webhook of the admins', sent every event once.
    user_id    BIGINT      REFERENCES users (id) ON DELETE CASCADE,
    url        TEXT        NOT NULL,
    secret     TEXT        NOT NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE deliveries (
    id              BIGINT      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    notification_id BIGINT      NOT NULL REFERENCES notifications (id) ON DELETE CASCADE,
    channel         TEXT        NOT NULL CHECK (channel IN ('email', 'webhook')),
    webhook_id      BIGINT      REFERENCES webhooks (id) ON DELETE CASCADE,
    state           TEXT        NOT NULL DEFAULT 'pending'
                    CHECK (state IN ('pending', 'sending', 'delivered', 'failed')),
    attempts        INTEGER     NOT NULL DEFAULT 0,
    next_attempt_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    lease_until     TIMESTAMPTZ,
    last_error      TEXT        NOT NULL DEFAULT '',
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    delivered_at    TIMESTAMPTZ
);
CREATE INDEX deliveries_due ON deliveries (next_attempt_at) WHERE state IN ('pending', 'sending');
CREATE INDEX deliveries_notification_id ON deliveries (notification_id);
