-- The journal of create operations: written before InvGate is called, settled after. It makes
-- creation exactly-once per idempotency key across instances, and lets a reconciler find incidents
-- whose creation answer was lost (each carries its operation id).
CREATE TABLE ticket_operations (
    id              uuid        PRIMARY KEY,
    -- The caller's normalized e-mail: idempotency keys are scoped to it.
    caller          text        NOT NULL,
    idempotency_key text,
    -- SHA-256 of the ticket's fields and its files' digests: "the same request".
    fingerprint     text        NOT NULL,
    state           text        NOT NULL
                    CHECK (state IN ('in_flight', 'in_doubt', 'queued', 'succeeded', 'failed')),
    -- For failed operations: true when nothing was created, so the key may be used again.
    retryable       boolean     NOT NULL DEFAULT false,
    -- The caller's InvGate user; unknown for a ticket queued while InvGate was unreachable.
    requester_id    bigint,
    -- X-Request-Id of the request that started (or last retook) the operation.
    request_id      text        NOT NULL,
    ticket          jsonb       NOT NULL,
    inv_gate_id     bigint,
    -- The first answer, replayed to retries: {"kind":"created","inv_gate_id","body"} or
    -- {"kind":"rejected","message"}.
    answer          jsonb,
    reason          text,
    -- Whether it was ever queued: its files are then in operation_file_chunks, and an interrupted
    -- attempt goes back to the queue rather than failing.
    was_queued      boolean     NOT NULL DEFAULT false,
    attempts        integer     NOT NULL DEFAULT 1,
    -- When the current attempt started: InvGate may have created the incident from then on.
    attempt_started_at timestamptz NOT NULL DEFAULT now(),
    -- Until when the instance working on it owns it; afterwards it counts as abandoned.
    lease_until     timestamptz NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    -- NULL keys never conflict: requests without a key are journaled all the same.
    UNIQUE (caller, idempotency_key)
);

-- What the reconciler and the queue worker scan.
CREATE INDEX ticket_operations_unsettled_idx ON ticket_operations (lease_until)
    WHERE state IN ('in_flight', 'in_doubt', 'queued');

-- The queue worker takes queued tickets oldest first.
CREATE INDEX ticket_operations_queued_idx ON ticket_operations (created_at) WHERE state = 'queued';

-- The files of queued tickets, in chunks (so neither writing nor reading them needs a whole file
-- in memory); any instance's worker can send them. Removed once the operation is settled.
CREATE TABLE operation_file_chunks (
    operation_id uuid    NOT NULL REFERENCES ticket_operations (id) ON DELETE CASCADE,
    -- The file's position among the ticket's attachments.
    position     integer NOT NULL,
    chunk        integer NOT NULL,
    data         bytea   NOT NULL,
    PRIMARY KEY (operation_id, position, chunk)
);

ALTER TABLE tickets ADD COLUMN operation_id uuid UNIQUE REFERENCES ticket_operations (id);
