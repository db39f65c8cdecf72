// @generated-style table definitions; keep in step with ../../../migrations.

diesel::table! {
    tickets (id) {
        id -> Uuid,
        inv_gate_id -> Int8,
        creator_email -> Text,
        creator_id -> Int8,
        customer_id -> Int8,
        category_id -> Int8,
        priority_id -> Int2,
        type_id -> Int2,
        source_id -> Nullable<Int8>,
        location_id -> Nullable<Int8>,
        title -> Text,
        description -> Text,
        date_ocurred -> Nullable<Timestamptz>,
        related_to -> Array<Int8>,
        attachments -> Jsonb,
        invgate_response -> Jsonb,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
        operation_id -> Nullable<Uuid>,
        status_id -> Nullable<Int8>,
        last_update -> Nullable<Timestamptz>,
        solved_at -> Nullable<Timestamptz>,
        closed_at -> Nullable<Timestamptz>,
        status_synced_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    ticket_operations (id) {
        id -> Uuid,
        caller -> Text,
        idempotency_key -> Nullable<Text>,
        fingerprint -> Text,
        state -> Text,
        retryable -> Bool,
        requester_id -> Nullable<Int8>,
        request_id -> Text,
        ticket -> Jsonb,
        inv_gate_id -> Nullable<Int8>,
        answer -> Nullable<Jsonb>,
        reason -> Nullable<Text>,
        was_queued -> Bool,
        attempts -> Int4,
        attempt_started_at -> Timestamptz,
        lease_until -> Timestamptz,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    operation_file_chunks (operation_id, position, chunk) {
        operation_id -> Uuid,
        position -> Int4,
        chunk -> Int4,
        data -> Bytea,
    }
}

diesel::joinable!(tickets -> ticket_operations (operation_id));
diesel::joinable!(operation_file_chunks -> ticket_operations (operation_id));
diesel::allow_tables_to_appear_in_same_query!(tickets, ticket_operations, operation_file_chunks);
