//! PostgreSQL adapter: the `tickets` table behind the [`TicketRepository`] port, the connection
//! pool, and the migrations from the workspace's `migrations/` directory, embedded in the binary.

mod journal;
mod json;
mod migrate;
mod ops;
mod pool;
mod reads;
mod repository;
pub mod schema;

pub use journal::OperationRow;
pub use migrate::{embedded_versions, run_migrations};
pub use ops::{JournalDepths, journal_depths, pending_migrations};
pub use pool::{PgPool, Pipelined, PoolConfig, PoolStatus, connect_pool};
pub use repository::{PgTicketRepository, TicketRow};
pub use ticketd_domain::ports::TicketRepository;
