//! The file-system spool on a real directory.

use chrono::Utc;
use serde_json::json;
use ticketd_domain::{
    EmailAddress, IncidentId, InvGateAnswer, InvGateUserId, NewTicket, OperationId, RecordSpool,
    SpooledRecord, StoredTicket, TicketDraft,
};
use ticketd_spool::FsRecordSpool;

fn record(inv_gate_id: i64) -> SpooledRecord {
    let draft = TicketDraft {
        title: Some("t".into()),
        description: Some("d".into()),
        category_id: Some(1),
        priority_id: Some(1),
        type_id: Some(1),
        ..TicketDraft::default()
    };
    let stored = StoredTicket {
        id: uuid::Uuid::now_v7(),
        operation_id: Some(OperationId::new()),
        inv_gate_id: IncidentId::parse(inv_gate_id).expect("id"),
        creator_email: EmailAddress::parse("alice@example.com").expect("email"),
        creator_id: InvGateUserId::new(42),
        customer_id: InvGateUserId::new(42),
        ticket: NewTicket::parse(draft, vec![], Utc::now(), chrono::Duration::seconds(60))
            .expect("valid"),
        invgate_response: InvGateAnswer::new(json!({"request_id": inv_gate_id})),
        created_at: Utc::now(),
    };
    SpooledRecord::new(&stored)
}

#[tokio::test]
async fn records_survive_a_reopen_in_order_and_are_gone_once_removed() {
    let dir = tempfile::tempdir().expect("dir");
    let (first, second) = (record(1), record(2));
    {
        let spool = FsRecordSpool::open(dir.path()).expect("opens");
        spool.put(&second).await.expect("durable");
        spool.put(&first).await.expect("durable");
    }

    let spool = FsRecordSpool::open(dir.path()).expect("reopens");
    let listed = spool.list().await.expect("readable");
    assert_eq!(
        listed,
        [first.clone(), second.clone()],
        "oldest first, whatever the write order"
    );
    assert_eq!(listed[0].to_stored().expect("parses").inv_gate_id.get(), 1);

    spool.remove(first.local_id).await.expect("removed");
    spool
        .remove(first.local_id)
        .await
        .expect("removing twice is harmless");
    assert_eq!(spool.list().await.expect("readable"), [second]);
}

#[tokio::test]
async fn half_written_and_foreign_files_are_not_read_back() {
    let dir = tempfile::tempdir().expect("dir");
    let spool = FsRecordSpool::open(dir.path()).expect("opens");
    std::fs::write(
        dir.path().join("0190-partial.json.partial"),
        b"{\"local_id\":",
    )
    .expect("write");
    std::fs::write(dir.path().join("notes.txt"), b"hello").expect("write");
    std::fs::write(dir.path().join("broken.json"), b"{not json").expect("write");

    assert!(spool.list().await.expect("readable").is_empty());
}

#[test]
fn an_unwritable_directory_is_refused_at_start() {
    let file = tempfile::NamedTempFile::new().expect("file");
    assert!(FsRecordSpool::open(file.path().join("sub")).is_err());
}
