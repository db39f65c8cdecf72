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
    }
}
