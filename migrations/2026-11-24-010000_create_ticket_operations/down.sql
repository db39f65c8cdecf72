ALTER TABLE tickets DROP COLUMN operation_id;
DROP TABLE operation_file_chunks;
DROP TABLE ticket_operations;
