-- The mirror of each ticket's state in InvGate, kept current by reads and the background sync.
ALTER TABLE tickets
    ADD COLUMN status_id        bigint,
    ADD COLUMN last_update      timestamptz,
    ADD COLUMN solved_at        timestamptz,
    ADD COLUMN closed_at        timestamptz,
    -- When the fields above were last read from InvGate; NULL: never since creation.
    ADD COLUMN status_synced_at timestamptz;

-- The sync visits open tickets, least recently synced first.
CREATE INDEX tickets_open_sync_idx ON tickets (status_synced_at NULLS FIRST) WHERE closed_at IS NULL;
-- Listing "my tickets" filtered by status.
CREATE INDEX tickets_creator_status_idx ON tickets (lower(creator_email), status_id, created_at DESC);
