-- The edge's certificate for each host Director serves over HTTPS, as Director last saw it:
-- from Caddy's storage (issued, and until when) and its log (why an attempt failed, when it
-- tries again). Rows of hosts no longer served are removed.
CREATE TABLE certificates (
    host TEXT PRIMARY KEY,
    -- 'pending', 'issued' or 'failed'.
    state TEXT NOT NULL,
    -- The certificate the edge holds, kept while a renewal fails.
    not_after TIMESTAMPTZ,
    -- The CA's words for the last failure; empty once issued.
    error TEXT NOT NULL DEFAULT '',
    failed_at TIMESTAMPTZ,
    -- When the next attempt starts (Caddy's own backoff, or Director's when Caddy gave none).
    retry_at TIMESTAMPTZ,
    -- Failures since the last certificate was issued.
    attempts INTEGER NOT NULL DEFAULT 0,
    -- When Director last started a handshake to get it.
    requested_at TIMESTAMPTZ,
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX certificates_expiry ON certificates (not_after);
