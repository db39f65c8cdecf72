//! The floor: the work of one ticket without ticketd. It sends the simulator the `POST incident`
//! ticketd would send, and runs ticketd's own database statements directly, through the
//! PostgreSQL adapter: the journal entry before the call, then the ticket row and the journal's
//! answer in one transaction after it. What is left out is what ticketd adds: HTTP serving, the
//! token, binding, file checks and spooling, logging, metrics.

use std::path::PathBuf;
use std::time::Duration;

use bytes::Bytes;
use serde_json::Value;
use ticketd_domain::InvGateAnswer;
use ticketd_domain::attachment::{Attachment, AttachmentName, Sha256Hex};
use ticketd_domain::ports::TicketRepository;
use ticketd_domain::{
    EmailAddress, Fingerprint, InvGateUserId, NewOperation, NewTicket, OperationId, OperationState,
    StoredTicket, TicketDraft, TicketSnapshot,
};
use ticketd_invgate::MultipartBody;
use ticketd_postgres::PgTicketRepository;

/// A file the scenario sends, with its hash computed once (ticketd hashes while it spools).
#[derive(Debug, Clone)]
pub struct File {
    pub name: String,
    pub bytes: Bytes,
    pub sha256: String,
}

#[derive(Clone)]
pub struct Floor {
    pub repository: PgTicketRepository,
    pub http: reqwest::Client,
    /// `…/api/v1/incident` on the simulator.
    pub incident_url: String,
    pub username: String,
    pub password: String,
    pub caller: EmailAddress,
    pub requester: InvGateUserId,
}

impl Floor {
    /// Creates one ticket the way ticketd does, minus ticketd.
    pub async fn create(
        &self,
        title: &str,
        description: &str,
        files: &[File],
    ) -> Result<(), String> {
        let attachments = files
            .iter()
            .map(|f| {
                Ok(Attachment {
                    name: AttachmentName::sanitize(&f.name),
                    content_type: "text/plain".to_owned(),
                    size: f.bytes.len() as u64,
                    sha256: Sha256Hex::parse(&f.sha256)?,
                    path: PathBuf::new(),
                })
            })
            .collect::<Result<Vec<_>, String>>()?;
        let draft = TicketDraft {
            title: Some(title.to_owned()),
            description: Some(description.to_owned()),
            category_id: Some(1),
            priority_id: Some(2),
            type_id: Some(1),
            ..TicketDraft::default()
        };
        let ticket = NewTicket::parse(
            draft,
            attachments,
            chrono::Utc::now(),
            chrono::Duration::seconds(60),
        )
        .map_err(|e| format!("{e:?}"))?;
        let operation = NewOperation {
            id: OperationId::new(),
            caller: self.caller.clone(),
            key: None,
            fingerprint: Fingerprint::of(&ticket),
            request_id: "floor".to_owned(),
            requester: Some(self.requester),
            ticket: TicketSnapshot::from(&ticket),
            lease: Duration::from_secs(60),
            state: OperationState::InFlight,
        };
        self.repository
            .begin_operation(&operation)
            .await
            .map_err(|e| format!("journal: {e}"))?;

        // The body is built the way ticketd's InvGate adapter builds it, with its own builder.
        let requester = self.requester.get().to_string();
        let mut form = MultipartBody::new()
            .text("creator_id", &requester)
            .text("customer_id", &requester)
            .text("category_id", "1")
            .text("priority_id", "2")
            .text("type_id", "1")
            .text("title", title)
            .text(
                "description",
                &format!("{description}\n\n[ticketd operation {}]", operation.id),
            );
        for file in files {
            form = form.file_bytes(
                "attachments[]",
                &file.name,
                "text/plain",
                file.bytes.clone(),
            );
        }
        let body = form.finish();
        let response = body
            .attach(
                self.http
                    .post(&self.incident_url)
                    .basic_auth(&self.username, Some(&self.password)),
            )
            .send()
            .await
            .map_err(|e| format!("incident: {e}"))?;
        if !response.status().is_success() {
            return Err(format!("incident: {}", response.status()));
        }
        let body = response.text().await.map_err(|e| e.to_string())?;
        let answer: Value = serde_json::from_str(&body).map_err(|e| e.to_string())?;
        let id = answer
            .get("request_id")
            .and_then(Value::as_i64)
            .ok_or("no request_id")?;
        let stored = StoredTicket {
            id: uuid::Uuid::now_v7(),
            operation_id: Some(operation.id),
            inv_gate_id: ticketd_domain::IncidentId::parse(id)?,
            creator_email: self.caller.clone(),
            creator_id: self.requester,
            customer_id: self.requester,
            ticket,
            invgate_response: InvGateAnswer::new(answer),
            created_at: chrono::Utc::now(),
        };
        self.repository
            .record_created(&stored)
            .await
            .map_err(|e| format!("record: {e}"))
    }
}
