//! Building the `POST incident` multipart body of a ticket, without and with spooled files.

use std::hint::black_box;
use std::io::Write as _;

use criterion::{Criterion, criterion_group, criterion_main};
use ticketd_domain::{
    Attachment, AttachmentName, InvGateUserId, NewTicket, Sha256Hex, TicketDraft,
};
use ticketd_invgate::incident_form;

fn ticket(attachments: Vec<Attachment>) -> NewTicket {
    let draft = TicketDraft {
        title: Some("VPN drops every hour".into()),
        description: Some("Since Monday the VPN disconnects on the hour.".into()),
        category_id: Some(3),
        priority_id: Some(2),
        type_id: Some(1),
        related_to: Some(vec![1040, 1041]),
        ..TicketDraft::default()
    };
    NewTicket::parse(
        draft,
        attachments,
        chrono::Utc::now(),
        chrono::Duration::seconds(60),
    )
    .expect("a valid ticket")
}

fn forms(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let requester = InvGateUserId::new(42);
    let plain = ticket(Vec::new());
    c.bench_function("incident form without files", |b| {
        b.to_async(&runtime).iter(|| async {
            incident_form(requester, black_box(&plain))
                .await
                .expect("a form")
        });
    });

    let dir = tempfile::tempdir().expect("a directory");
    let attachments = (1..=3)
        .map(|i| {
            let path = dir.path().join(format!("file{i}.txt"));
            let mut file = std::fs::File::create(&path).expect("a file");
            file.write_all(&[b'x'; 4096]).expect("written");
            Attachment {
                name: AttachmentName::sanitize(&format!("file{i}.txt")),
                content_type: "text/plain".into(),
                size: 4096,
                sha256: Sha256Hex::parse(&"ab".repeat(32)).expect("a hash"),
                path,
            }
        })
        .collect();
    let with_files = ticket(attachments);
    c.bench_function("incident form with three spooled files", |b| {
        b.to_async(&runtime).iter(|| async {
            incident_form(requester, black_box(&with_files))
                .await
                .expect("a form")
        });
    });
}

criterion_group!(benches, forms);
criterion_main!(benches);
