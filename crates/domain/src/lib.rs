//! ticketd's domain: what a ticket is, the rules it obeys, and the ports the create use case drives.
//!
//! Nothing here knows about HTTP servers, HTTP clients or databases. Adapters implement the ports in
//! [`ports`]; the `app` crate wires them to [`TicketCreator`], the one service holding the logic.
//! Turn on the `mocks` feature (in dev-dependencies only) to get mockall mocks of every port.

pub mod attachment;
pub mod breaker;
pub mod caller;
pub mod comments;
pub mod error;
pub mod operation;
pub mod ports;
pub mod queries;
pub mod reading;
pub mod service;
pub mod spool;
pub mod ticket;

pub use attachment::{Attachment, AttachmentName, Sha256Hex};
pub use breaker::{BreakerConfig, CircuitBreaker};
pub use caller::{EmailAddress, EmailAddressError, InvGateUserId};
pub use comments::{
    Comment, CommentFile, CommentText, CommentsError, NewComment, Reference, ReferenceList,
    TicketMeta,
};
pub use error::{
    CreateTicketError, FieldError, GatewayError, InvalidTicket, JournalError, StoreTicketError,
};
pub use operation::{
    Begun, Fingerprint, IdempotencyKey, IncidentSummary, LoadedFiles, MarkerTemplate, NewOperation,
    Operation, OperationFailure, OperationId, OperationState, StoredAnswer, TicketSnapshot,
};
pub use ports::{IncidentGateway, TicketQueries, TicketReadStore, TicketRepository, TicketService};
pub use queries::{MetaCacheConfig, TicketReader};
pub use reading::{
    IncidentStatus, PageCursor, ReadStoreError, ReadTicketsError, TicketDetail, TicketList,
    TicketPage, TicketView,
};
pub use service::{
    CacheStats, CreateOutcome, CreateRequest, CreatedTicket, ServiceConfig, TicketCreator,
    UserCacheConfig,
};
pub use spool::{RecordSpool, SpoolError, SpooledRecord};
pub use ticket::{
    CategoryId, IncidentId, InvGateAnswer, LocationId, NewTicket, OccurredAt, PriorityId, SourceId,
    StoredTicket, TicketDescription, TicketDraft, TicketTitle, TicketTypeId,
};
