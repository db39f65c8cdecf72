-- ticketd's own record of every ticket it created in InvGate.
CREATE TABLE tickets (
    id               uuid        PRIMARY KEY,
    -- InvGate's request id; one local record per InvGate ticket.
    inv_gate_id      bigint      NOT NULL UNIQUE CHECK (inv_gate_id > 0),
    creator_email    text        NOT NULL,
    creator_id       bigint      NOT NULL,
    customer_id      bigint      NOT NULL,
    category_id      bigint      NOT NULL CHECK (category_id > 0),
    priority_id      smallint    NOT NULL CHECK (priority_id BETWEEN 1 AND 5),
    type_id          smallint    NOT NULL CHECK (type_id BETWEEN 1 AND 6),
    source_id        bigint      CHECK (source_id > 0),
    location_id      bigint      CHECK (location_id > 0),
    title            text        NOT NULL,
    description      text        NOT NULL,
    -- The spelling follows InvGate and the Go service this replaces.
    date_ocurred     timestamptz,
    related_to       bigint[]    NOT NULL DEFAULT '{}',
    -- [{"name", "size", "content_type", "sha256"}]: metadata only, never the bytes.
    attachments      jsonb       NOT NULL DEFAULT '[]',
    invgate_response jsonb       NOT NULL,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now()
);

-- "My tickets, newest first" is the read every client makes.
CREATE INDEX tickets_creator_email_created_at_idx ON tickets (lower(creator_email), created_at DESC);
