//! The simulator's in-memory InvGate: users, reference data, incidents, comments and attachment
//! metadata (file bytes are hashed and measured on arrival, never kept).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// Statuses that count as closed for `incidents.by.customer` ("open requests only").
const CLOSED_STATUSES: [i64; 4] = [5, 6, 7, 8];

/// A user, as `user.by` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    pub id: i64,
    pub name: String,
    #[serde(default)]
    pub lastname: String,
    #[serde(default)]
    pub username: String,
    pub email: String,
    #[serde(default = "default_user_type")]
    pub user_type: i64,
    #[serde(default)]
    pub is_disabled: bool,
    #[serde(default)]
    pub is_deleted: bool,
}

fn default_user_type() -> i64 {
    1
}

/// A category of the service catalogue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Category {
    pub id: i64,
    pub name: String,
    #[serde(default)]
    pub parent_category_id: Option<i64>,
}

/// An `{id, name}` attribute (status, source, priority, type).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Named {
    pub id: i64,
    pub name: String,
}

/// What the simulator starts with: from a JSON file, or [`Seed::default`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Seed {
    pub users: Vec<User>,
    pub categories: Vec<Category>,
    pub statuses: Vec<Named>,
    pub sources: Vec<Named>,
    /// The id the first created incident gets.
    pub first_incident_id: i64,
}

impl Default for Seed {
    fn default() -> Self {
        let user = |id, name: &str, lastname: &str, email: &str| User {
            id,
            name: name.into(),
            lastname: lastname.into(),
            username: email.split('@').next().unwrap_or_default().into(),
            email: email.into(),
            user_type: 1,
            is_disabled: false,
            is_deleted: false,
        };
        let named = |id, name: &str| Named {
            id,
            name: name.into(),
        };
        let category = |id, name: &str, parent| Category {
            id,
            name: name.into(),
            parent_category_id: parent,
        };
        let mut carol = user(44, "Carol", "Disabled", "carol@example.com");
        carol.is_disabled = true;
        Self {
            users: vec![
                user(42, "Alice", "Anderson", "alice@example.com"),
                user(43, "Bob", "Brown", "bob@example.com"),
                carol,
                user(2, "ticketd", "API", "ticketd-api@example.com"),
            ],
            categories: vec![
                category(1, "Hardware", None),
                category(2, "Software", None),
                category(3, "Network", None),
                category(4, "Access and accounts", None),
                category(5, "Laptops", Some(1)),
                category(6, "Printers", Some(1)),
            ],
            statuses: vec![
                named(1, "New"),
                named(2, "Open"),
                named(3, "In progress"),
                named(4, "Waiting"),
                named(5, "Solved"),
                named(6, "Closed"),
                named(7, "Rejected"),
                named(8, "Cancelled"),
            ],
            sources: vec![
                named(1, "E-mail"),
                named(2, "Web"),
                named(3, "Phone"),
                named(8, "API"),
            ],
            first_incident_id: 1000,
        }
    }
}

/// InvGate's fixed priorities.
pub fn priorities() -> Vec<Named> {
    ["Low", "Medium", "High", "Urgent", "Critical"]
        .iter()
        .zip(1..)
        .map(|(name, id)| Named {
            id,
            name: (*name).into(),
        })
        .collect()
}

/// InvGate's fixed request types.
pub fn types() -> Vec<Named> {
    [
        "Incident",
        "Service Request",
        "Question",
        "Problem",
        "Change",
        "Major Incident",
    ]
    .iter()
    .zip(1..)
    .map(|(name, id)| Named {
        id,
        name: (*name).into(),
    })
    .collect()
}

/// A file that arrived with an incident or a comment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StoredFile {
    pub id: i64,
    pub name: String,
    pub content_type: String,
    pub size: u64,
    pub sha256: String,
}

impl StoredFile {
    fn extension(&self) -> String {
        self.name
            .rsplit_once('.')
            .map(|(_, ext)| ext.to_ascii_lowercase())
            .unwrap_or_default()
    }
}

/// An incident, with the fields `GET incident` documents.
#[derive(Debug, Clone, PartialEq)]
pub struct Incident {
    pub id: i64,
    pub title: String,
    pub description: String,
    pub category_id: i64,
    pub priority_id: i64,
    pub type_id: i64,
    pub source_id: Option<i64>,
    pub status_id: i64,
    pub customer_id: i64,
    pub creator_id: i64,
    pub location_id: Option<i64>,
    pub date_ocurred: Option<i64>,
    pub created_at: i64,
    pub last_update: i64,
    pub solved_at: Option<i64>,
    pub closed_at: Option<i64>,
    pub related_to: Vec<i64>,
    pub attachments: Vec<i64>,
}

impl Incident {
    /// The JSON `GET incident` answers with.
    #[must_use]
    pub fn to_json(&self) -> Value {
        json!({
            "id": self.id,
            "title": self.title,
            "description": self.description,
            "category_id": self.category_id,
            "priority_id": self.priority_id,
            "type_id": self.type_id,
            "source_id": self.source_id,
            "status_id": self.status_id,
            "user_id": self.customer_id,
            "creator_id": self.creator_id,
            "assigned_id": null,
            "assigned_group_id": null,
            "location_id": self.location_id,
            "date_ocurred": self.date_ocurred,
            "created_at": self.created_at,
            "last_update": self.last_update,
            "solved_at": self.solved_at,
            "closed_at": self.closed_at,
            "closed_reason": null,
            "attachments": self.attachments,
            "custom_fields": {},
            "pretty_id": format!("#{}", self.id),
            "sla_incident_first_reply": null,
            "sla_incident_resolution": null,
            "rating": null,
        })
    }

    fn is_open(&self) -> bool {
        !CLOSED_STATUSES.contains(&self.status_id)
    }
}

/// A comment on an incident.
#[derive(Debug, Clone, PartialEq)]
pub struct Comment {
    pub id: i64,
    pub request_id: i64,
    pub author_id: i64,
    pub comment: String,
    pub customer_visible: bool,
    pub is_solution: bool,
    pub created_at: i64,
    pub attachments: Vec<i64>,
}

/// A new incident, checked.
#[derive(Debug, Clone)]
pub struct NewIncident {
    pub title: String,
    pub description: String,
    pub category_id: i64,
    pub priority_id: i64,
    pub type_id: i64,
    pub source_id: Option<i64>,
    pub customer_id: i64,
    pub creator_id: i64,
    pub location_id: Option<i64>,
    pub date_ocurred: Option<i64>,
    pub related_to: Vec<i64>,
}

/// Everything the simulated instance holds.
#[derive(Debug)]
pub struct World {
    pub users: Vec<User>,
    pub categories: Vec<Category>,
    pub statuses: Vec<Named>,
    pub sources: Vec<Named>,
    pub incidents: BTreeMap<i64, Incident>,
    pub comments: Vec<Comment>,
    pub files: BTreeMap<i64, StoredFile>,
    next_incident_id: i64,
    next_file_id: i64,
    next_comment_id: i64,
}

impl World {
    #[must_use]
    pub fn new(seed: Seed) -> Self {
        Self {
            users: seed.users,
            categories: seed.categories,
            statuses: seed.statuses,
            sources: seed.sources,
            incidents: BTreeMap::new(),
            comments: Vec::new(),
            files: BTreeMap::new(),
            next_incident_id: seed.first_incident_id.max(1),
            next_file_id: 1,
            next_comment_id: 1,
        }
    }

    pub fn user_by(&self, field: &str, value: &str) -> Option<&User> {
        self.users.iter().find(|u| match field {
            "email" => u.email.eq_ignore_ascii_case(value),
            "username" => u.username == value,
            "id" => value.parse() == Ok(u.id),
            _ => false,
        })
    }

    pub fn active_user(&self, id: i64) -> Option<&User> {
        self.users.iter().find(|u| u.id == id && !u.is_deleted)
    }

    pub fn has_category(&self, id: i64) -> bool {
        self.categories.iter().any(|c| c.id == id)
    }

    pub fn has_source(&self, id: i64) -> bool {
        self.sources.iter().any(|s| s.id == id)
    }

    pub fn add_user(
        &mut self,
        name: String,
        lastname: String,
        email: String,
        username: Option<String>,
    ) -> Result<i64, String> {
        if self.user_by("email", &email).is_some() {
            return Err(format!("A user with e-mail {email} already exists"));
        }
        let id = self.users.iter().map(|u| u.id).max().unwrap_or(0) + 1;
        let username =
            username.unwrap_or_else(|| email.split('@').next().unwrap_or_default().to_owned());
        self.users.push(User {
            id,
            name,
            lastname,
            username,
            email,
            user_type: 1,
            is_disabled: false,
            is_deleted: false,
        });
        Ok(id)
    }

    pub fn store_file(
        &mut self,
        name: String,
        content_type: String,
        size: u64,
        sha256: String,
    ) -> i64 {
        let id = self.next_file_id;
        self.next_file_id += 1;
        self.files.insert(
            id,
            StoredFile {
                id,
                name,
                content_type,
                size,
                sha256,
            },
        );
        id
    }

    pub fn create_incident(&mut self, new: NewIncident, attachments: Vec<i64>, now: i64) -> i64 {
        let id = self.next_incident_id;
        self.next_incident_id += 1;
        self.incidents.insert(
            id,
            Incident {
                id,
                title: new.title,
                description: new.description,
                category_id: new.category_id,
                priority_id: new.priority_id,
                type_id: new.type_id,
                source_id: new.source_id,
                status_id: 1,
                customer_id: new.customer_id,
                creator_id: new.creator_id,
                location_id: new.location_id,
                date_ocurred: new.date_ocurred,
                created_at: now,
                last_update: now,
                solved_at: None,
                closed_at: None,
                related_to: new.related_to,
                attachments,
            },
        );
        id
    }

    pub fn add_comment(&mut self, mut comment: Comment) -> i64 {
        comment.id = self.next_comment_id;
        self.next_comment_id += 1;
        let id = comment.id;
        if let Some(incident) = self.incidents.get_mut(&comment.request_id) {
            incident.last_update = comment.created_at;
            if comment.is_solution {
                incident.status_id = 5;
                incident.solved_at = Some(comment.created_at);
            }
        }
        self.comments.push(comment);
        id
    }

    /// `{id, name, url, hash, extension}` as `incident.attachment` answers.
    pub fn file_json(&self, id: i64, base_url: &str) -> Option<Value> {
        let file = self.files.get(&id)?;
        Some(json!({
            "id": file.id,
            "name": file.name,
            "url": format!("{base_url}attachments/{}/download", file.id),
            "hash": file.sha256,
            "extension": file.extension(),
        }))
    }

    /// Open incidents of a customer, oldest first, from `after` (exclusive).
    pub fn open_incidents_of(
        &self,
        customer_id: i64,
        after: i64,
    ) -> impl Iterator<Item = &Incident> {
        self.incidents
            .range(after.saturating_add(1)..)
            .map(|(_, incident)| incident)
            .filter(move |i| i.customer_id == customer_id && i.is_open())
    }

    /// Incidents created at or after `since`, from `after` (exclusive).
    pub fn incidents_since(&self, since: i64, after: i64) -> impl Iterator<Item = &Incident> {
        self.incidents
            .range(after.saturating_add(1)..)
            .map(|(_, incident)| incident)
            .filter(move |i| i.created_at >= since)
    }
}
