ALTER TABLE tickets DROP COLUMN operation_id;
DROP TABLE ticket_operations;
