DROP INDEX tickets_creator_status_idx;
DROP INDEX tickets_open_sync_idx;
ALTER TABLE tickets
    DROP COLUMN status_synced_at,
    DROP COLUMN closed_at,
    DROP COLUMN solved_at,
    DROP COLUMN last_update,
    DROP COLUMN status_id;
