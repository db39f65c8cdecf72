//! Test-only crash points, for proving what survives a `kill -9` at the worst moment.
//!
//! With `TICKETD_FAILPOINT=freeze-after-invgate-create` the request that InvGate just answered
//! stops right there, before anything is written locally, so a test can `kill -9` the process at
//! exactly that moment: the incident exists, the journal still says "in flight". Unset (always, in
//! production) the wrapper only forwards.

use async_trait::async_trait;
use serde_json::Value;
use ticketd_domain::{
    EmailAddress, GatewayError, IncidentGateway, IncidentSummary, InvGateUserId, NewTicket,
};

const VARIABLE: &str = "TICKETD_FAILPOINT";
const FREEZE_AFTER_CREATE: &str = "freeze-after-invgate-create";

/// An [`IncidentGateway`] that may crash the process on purpose.
#[derive(Debug)]
pub(crate) struct Failpoints<G> {
    inner: G,
    freeze_after_create: bool,
}

impl<G> Failpoints<G> {
    pub(crate) fn from_env(inner: G) -> Self {
        let freeze_after_create = std::env::var(VARIABLE).is_ok_and(|v| v == FREEZE_AFTER_CREATE);
        if freeze_after_create {
            tracing::warn!(
                "failpoint armed: creates freeze after InvGate answers, waiting to be killed"
            );
        }
        Self {
            inner,
            freeze_after_create,
        }
    }
}

#[async_trait]
impl<G: IncidentGateway> IncidentGateway for Failpoints<G> {
    async fn find_user_id_by_email(
        &self,
        email: &EmailAddress,
    ) -> Result<Option<InvGateUserId>, GatewayError> {
        self.inner.find_user_id_by_email(email).await
    }

    async fn create_incident(
        &self,
        requester: InvGateUserId,
        ticket: &NewTicket,
    ) -> Result<Value, GatewayError> {
        let answer = self.inner.create_incident(requester, ticket).await;
        if self.freeze_after_create && answer.is_ok() {
            std::future::pending::<()>().await;
        }
        answer
    }

    async fn incidents_created_last_hour(&self) -> Result<Vec<IncidentSummary>, GatewayError> {
        self.inner.incidents_created_last_hour().await
    }

    async fn open_incidents_of(
        &self,
        customer: InvGateUserId,
    ) -> Result<Vec<IncidentSummary>, GatewayError> {
        self.inner.open_incidents_of(customer).await
    }

    async fn incident_status(
        &self,
        id: ticketd_domain::IncidentId,
    ) -> Result<Option<ticketd_domain::IncidentStatus>, GatewayError> {
        self.inner.incident_status(id).await
    }

    async fn comments_of(
        &self,
        id: ticketd_domain::IncidentId,
    ) -> Result<Option<Vec<ticketd_domain::Comment>>, GatewayError> {
        self.inner.comments_of(id).await
    }

    async fn add_comment(
        &self,
        id: ticketd_domain::IncidentId,
        author: InvGateUserId,
        comment: &ticketd_domain::NewComment,
    ) -> Result<Value, GatewayError> {
        self.inner.add_comment(id, author, comment).await
    }

    async fn reference_list(
        &self,
        list: ticketd_domain::ReferenceList,
    ) -> Result<Vec<ticketd_domain::Reference>, GatewayError> {
        self.inner.reference_list(list).await
    }
}
