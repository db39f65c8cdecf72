//! The simulator's contract: every documented endpoint and every fault, exercised over HTTP —
//! through ticketd's real InvGate client where it has a method for the call.

use std::io::Write;
use std::time::{Duration, Instant};

use chrono::Utc;
use invgate_sim::{Credentials, Fault, FaultKind, RunningSimulator, Seed, Simulator, User};
use reqwest::StatusCode;
use secrecy::SecretString;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use ticketd_domain::{
    Attachment, AttachmentName, EmailAddress, GatewayError, IncidentGateway, InvGateUserId,
    NewTicket, Sha256Hex, TicketDraft,
};
use ticketd_invgate::{InvGateConfig, ReqwestInvGateClient, RetryPolicy};

fn start() -> RunningSimulator {
    RunningSimulator::start().expect("simulator starts")
}

fn client_with(sim: &RunningSimulator, password: &str, timeout: Duration) -> ReqwestInvGateClient {
    ReqwestInvGateClient::new(InvGateConfig {
        base_url: sim.base_url(),
        username: sim.sim.credentials().username.clone(),
        password: SecretString::from(password),
        timeout,
        // The contract is the simulator's: every call reaches it exactly once.
        retry: RetryPolicy::NONE,
        max_concurrent_calls: 8,
    })
    .expect("client")
}

fn client(sim: &RunningSimulator) -> ReqwestInvGateClient {
    client_with(
        sim,
        &sim.sim.credentials().password.clone(),
        Duration::from_secs(5),
    )
}

/// A raw HTTP client for the calls ticketd's client has no method for.
struct Raw {
    http: reqwest::Client,
    base: String,
    creds: Credentials,
}

impl Raw {
    fn new(sim: &RunningSimulator) -> Self {
        ticketd_invgate::install_crypto_provider();
        Self {
            http: reqwest::Client::new(),
            base: sim.base_url(),
            creds: sim.sim.credentials().clone(),
        }
    }

    async fn get(&self, endpoint_and_query: &str) -> (StatusCode, Value) {
        let response = self
            .http
            .get(format!("{}{endpoint_and_query}", self.base))
            .basic_auth(&self.creds.username, Some(&self.creds.password))
            .send()
            .await
            .expect("answers");
        (
            response.status(),
            response.json().await.unwrap_or(Value::Null),
        )
    }

    async fn post_form(&self, endpoint: &str, form: &[(&str, &str)]) -> (StatusCode, Value) {
        let response = self
            .http
            .post(format!("{}{endpoint}", self.base))
            .basic_auth(&self.creds.username, Some(&self.creds.password))
            .form(form)
            .send()
            .await
            .expect("answers");
        (
            response.status(),
            response.json().await.unwrap_or(Value::Null),
        )
    }

    async fn post_json(&self, endpoint: &str, body: &Value) -> (StatusCode, Value) {
        let response = self
            .http
            .post(format!("{}{endpoint}", self.base))
            .basic_auth(&self.creds.username, Some(&self.creds.password))
            .json(body)
            .send()
            .await
            .expect("answers");
        (
            response.status(),
            response.json().await.unwrap_or(Value::Null),
        )
    }
}

fn ticket(draft: TicketDraft, attachments: Vec<Attachment>) -> NewTicket {
    NewTicket::parse(
        draft,
        attachments,
        Utc::now(),
        chrono::Duration::seconds(60),
    )
    .expect("valid")
}

fn draft() -> TicketDraft {
    TicketDraft {
        title: Some("Printer jam".into()),
        description: Some("Tray 2".into()),
        category_id: Some(6),
        priority_id: Some(2),
        type_id: Some(1),
        ..TicketDraft::default()
    }
}

fn alice() -> InvGateUserId {
    InvGateUserId::new(42)
}

async fn create(sim: &RunningSimulator) -> i64 {
    let answer = client(sim)
        .create_incident(alice(), &ticket(draft(), vec![]))
        .await
        .expect("created");
    answer["request_id"].as_i64().expect("request_id")
}

fn the_form_values() -> [(&'static str, &'static str); 7] {
    [
        ("creator_id", "42"),
        ("customer_id", "42"),
        ("category_id", "1"),
        ("priority_id", "3"),
        ("type_id", "2"),
        ("title", "Form ticket"),
        ("description", "via form"),
    ]
}

#[tokio::test(flavor = "multi_thread")]
async fn a_multipart_create_with_files_answers_like_invgate_and_records_every_field_and_file() {
    let sim = start();
    let bytes: Vec<u8> = (0..50_000u32).map(|i| (i % 253) as u8).collect();
    let mut file = tempfile::NamedTempFile::new().expect("temp");
    file.write_all(&bytes).expect("write");
    let digest = hex::encode(Sha256::digest(&bytes));
    let attachment = Attachment {
        name: AttachmentName::sanitize("photo.JPG"),
        content_type: "image/jpeg".into(),
        size: bytes.len() as u64,
        sha256: Sha256Hex::parse(&digest).expect("hex"),
        path: file.path().to_path_buf(),
    };
    let draft = TicketDraft {
        source_id: Some(8),
        location_id: Some(4),
        date_ocurred: Some(1_700_000_000),
        ..draft()
    };

    let answer = client(&sim)
        .create_incident(alice(), &ticket(draft, vec![attachment]))
        .await
        .expect("created");

    assert_eq!(answer["status"], "OK");
    assert!(answer["info"].is_string());
    let id = answer["request_id"].as_i64().expect("request_id");
    assert_eq!(id, 1000, "the default seed numbers incidents from 1000");
    assert!(
        answer.get("id").is_none() && answer.get("incident_id").is_none(),
        "only request_id, as documented"
    );

    let recorded = sim.sim.requests_to("POST", "incident");
    assert_eq!(recorded[0].field("creator_id"), Some("42"));
    assert_eq!(recorded[0].field("date"), Some("1700000000"));
    assert_eq!(recorded[0].files[0].field, "attachments[]");
    assert_eq!(recorded[0].files[0].name, "photo.JPG");
    assert_eq!(recorded[0].files[0].size, 50_000);
    assert_eq!(recorded[0].files[0].sha256, digest);

    let (status, incident) = Raw::new(&sim).get(&format!("incident?id={id}")).await;
    assert_eq!(status, StatusCode::OK);
    for key in [
        "id",
        "title",
        "description",
        "category_id",
        "priority_id",
        "type_id",
        "source_id",
        "status_id",
        "user_id",
        "creator_id",
        "assigned_id",
        "assigned_group_id",
        "location_id",
        "date_ocurred",
        "created_at",
        "last_update",
        "solved_at",
        "closed_at",
        "closed_reason",
        "attachments",
        "custom_fields",
        "pretty_id",
        "sla_incident_first_reply",
        "sla_incident_resolution",
        "rating",
    ] {
        assert!(incident.get(key).is_some(), "GET incident lacks {key}");
    }
    assert_eq!(incident["user_id"], 42);
    assert_eq!(incident["date_ocurred"], 1_700_000_000);
    assert_eq!(incident["status_id"], 1);
    assert_eq!(incident["pretty_id"], "#1000");

    let file_id = incident["attachments"][0].as_i64().expect("attachment id");
    let (status, file) = Raw::new(&sim)
        .get(&format!("incident.attachment?id={file_id}"))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(file["name"], "photo.JPG");
    assert_eq!(file["hash"], digest);
    assert_eq!(file["extension"], "jpg");
    assert!(
        file["url"]
            .as_str()
            .expect("url")
            .starts_with("http://127.0.0.1:")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn form_urlencoded_and_json_creates_work_and_arrays_must_use_brackets() {
    let sim = start();
    let raw = Raw::new(&sim);
    let first = create(&sim).await;

    let mut form = the_form_values().to_vec();
    let related = first.to_string();
    form.push(("related_to[]", &related));
    let (status, answer) = raw.post_form("incident", &form).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let second = answer["request_id"].as_i64().expect("id");

    let mut comma = the_form_values().to_vec();
    comma.push(("related_to", "1000,1001"));
    let (status, answer) = raw.post_form("incident", &comma).await;
    assert_eq!(status, StatusCode::PRECONDITION_REQUIRED);
    assert_eq!(answer["status"], "ERROR");

    let (status, answer) = raw
        .post_json(
            "incident",
            &json!({"creator_id": 43, "customer_id": 43, "category_id": 2, "priority_id": 5, "type_id": 6, "title": "JSON", "related_to": [first, second]}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(sim.sim.incident_count(), 3);
}

#[tokio::test(flavor = "multi_thread")]
async fn missing_or_invalid_parameters_are_428_with_an_error_status() {
    let sim = start();
    let raw = Raw::new(&sim);
    let cases: Vec<(&str, &str)> = vec![
        ("title", ""),
        ("priority_id", "6"),
        ("priority_id", "0"),
        ("type_id", "7"),
        ("creator_id", "999"),
        ("customer_id", "abc"),
        ("category_id", "77"),
    ];
    for (key, value) in cases {
        let form: Vec<(&str, &str)> = the_form_values()
            .iter()
            .map(|(k, v)| if *k == key { (*k, value) } else { (*k, *v) })
            .collect();
        let (status, answer) = raw.post_form("incident", &form).await;
        assert_eq!(status, StatusCode::PRECONDITION_REQUIRED, "{key}={value}");
        assert_eq!(answer["status"], "ERROR");
        assert!(answer["info"].is_string());
    }
    let invalid = TicketDraft {
        category_id: Some(77),
        ..draft()
    };
    let err = client(&sim)
        .create_incident(alice(), &ticket(invalid, vec![]))
        .await
        .expect_err("unknown category");
    assert!(matches!(err, GatewayError::Rejected { .. }), "{err:?}");
    assert_eq!(sim.sim.incident_count(), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn wrong_credentials_are_401_for_every_endpoint() {
    let sim = start();
    let err = client_with(&sim, "wrong", Duration::from_secs(5))
        .create_incident(alice(), &ticket(draft(), vec![]))
        .await
        .expect_err("refused");
    assert!(
        matches!(err, GatewayError::Unauthorized { status: 401 }),
        "{err:?}"
    );

    ticketd_invgate::install_crypto_provider();
    let response = reqwest::get(format!("{}sd.version", sim.base_url()))
        .await
        .expect("answers");
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(sim.sim.incident_count(), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn users_are_found_by_email_created_and_disabled_ones_are_not_usable() {
    let sim = start();
    let gateway = client(&sim);
    let email = |s: &str| EmailAddress::parse(s).expect("email");

    assert_eq!(
        gateway
            .find_user_id_by_email(&email("Alice@Example.com"))
            .await
            .expect("answers"),
        Some(alice())
    );
    assert_eq!(
        gateway
            .find_user_id_by_email(&email("nobody@example.com"))
            .await
            .expect("answers"),
        None
    );
    assert_eq!(
        gateway
            .find_user_id_by_email(&email("carol@example.com"))
            .await
            .expect("answers"),
        None,
        "disabled"
    );

    let raw = Raw::new(&sim);
    let (status, user) = raw.get("user.by?email=bob@example.com").await;
    assert_eq!(status, StatusCode::OK);
    for key in [
        "id",
        "name",
        "lastname",
        "username",
        "email",
        "user_type",
        "is_disabled",
        "is_deleted",
    ] {
        assert!(user.get(key).is_some(), "user.by lacks {key}");
    }

    let (status, created) = raw
        .post_form(
            "user",
            &[
                ("name", "Dan"),
                ("lastname", "Doe"),
                ("email", "dan@example.com"),
            ],
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{created}");
    let found = gateway
        .find_user_id_by_email(&email("dan@example.com"))
        .await
        .expect("answers");
    assert_eq!(found.map(InvGateUserId::get), created["id"].as_i64());
    let (status, _) = raw
        .post_form(
            "user",
            &[
                ("name", "Dan"),
                ("lastname", "Doe"),
                ("email", "dan@example.com"),
            ],
        )
        .await;
    assert_eq!(
        status,
        StatusCode::PRECONDITION_REQUIRED,
        "e-mail addresses are unique"
    );
    let (status, _) = raw.post_form("user", &[("name", "Eve")]).await;
    assert_eq!(status, StatusCode::PRECONDITION_REQUIRED);
}

#[tokio::test(flavor = "multi_thread")]
async fn incidents_are_read_by_ids_by_customer_and_from_the_last_hour_with_paging() {
    let sim = start();
    let raw = Raw::new(&sim);
    let mut ids = Vec::new();
    for _ in 0..3 {
        ids.push(create(&sim).await);
    }

    let (status, by_ids) = raw
        .get(&format!(
            "incidents?ids[]={}&ids[]={}&ids[]=999999",
            ids[0], ids[2]
        ))
        .await;
    assert_eq!(status, StatusCode::OK);
    let keys: Vec<&String> = by_ids
        .as_object()
        .expect("object keyed by id")
        .keys()
        .collect();
    assert_eq!(keys, [&ids[0].to_string(), &ids[2].to_string()]);
    assert_eq!(
        raw.get("incidents?ids=1,2").await.0,
        StatusCode::PRECONDITION_REQUIRED
    );

    let (status, _) = raw
        .post_form("incident.cancel", &[("request_id", &ids[1].to_string())])
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, page1) = raw
        .get("incidents.by.customer?email=alice@example.com&limit=1")
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(page1["status"], "OK");
    let first_page: Vec<&String> = page1["requests"]
        .as_object()
        .expect("requests")
        .keys()
        .collect();
    assert_eq!(first_page, [&ids[0].to_string()]);
    let key = page1["next_page_key"].as_str().expect("more pages");
    let (_, page2) = raw
        .get(&format!(
            "incidents.by.customer?email=alice@example.com&limit=1&page_key={key}"
        ))
        .await;
    let second_page: Vec<&String> = page2["requests"]
        .as_object()
        .expect("requests")
        .keys()
        .collect();
    assert_eq!(
        second_page,
        [&ids[2].to_string()],
        "the cancelled one is not open"
    );
    assert!(page2["next_page_key"].is_null());
    let (_, bobs) = raw.get("incidents.by.customer?id=43").await;
    assert!(bobs["requests"].as_object().expect("requests").is_empty());

    let (status, hour) = raw.get("incidents.last.hour?limit=2").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(hour["data"].as_array().expect("data").len(), 2);
    let key = hour["next_page_key"].as_str().expect("a next page");
    let (_, rest) = raw
        .get(&format!("incidents.last.hour?limit=2&page_key={key}"))
        .await;
    assert_eq!(rest["data"].as_array().expect("data").len(), 1);
    assert!(rest["next_page_key"].is_null());

    let (status, missing) = raw.get("incident?id=424242").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(missing["status"], "ERROR");
}

#[tokio::test(flavor = "multi_thread")]
async fn comments_are_added_with_files_and_listed_with_attached_files() {
    let sim = start();
    let id = create(&sim).await;
    ticketd_invgate::install_crypto_provider();
    let form = reqwest::multipart::Form::new()
        .text("request_id", id.to_string())
        .text("comment", "Any news?")
        .text("author_id", "42")
        .text("customer_visible", "1")
        .part(
            "attachments[]",
            reqwest::multipart::Part::bytes(b"log line".to_vec()).file_name("app.log"),
        );
    let creds = sim.sim.credentials().clone();
    let response = reqwest::Client::new()
        .post(format!("{}incident.comment", sim.base_url()))
        .basic_auth(&creds.username, Some(&creds.password))
        .multipart(form)
        .send()
        .await
        .expect("answers");
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.json::<Value>().await.expect("JSON")["status"],
        "OK"
    );

    let (status, list) = Raw::new(&sim)
        .get(&format!("incident.comment?request_id={id}"))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(list[0]["comment"], "Any news?");
    assert_eq!(list[0]["customer_visible"], 1);
    assert_eq!(list[0]["attached_files"][0]["name"], "app.log");
    assert_eq!(list[0]["attached_files"][0]["extension"], "log");

    let (status, _) = Raw::new(&sim)
        .post_form(
            "incident.comment",
            &[
                ("request_id", "424242"),
                ("comment", "x"),
                ("author_id", "42"),
            ],
        )
        .await;
    assert_eq!(status, StatusCode::PRECONDITION_REQUIRED);
}

#[tokio::test(flavor = "multi_thread")]
async fn reference_data_has_the_documented_shapes() {
    let sim = start();
    let raw = Raw::new(&sim);

    let (_, version) = raw.get("sd.version").await;
    assert_eq!(version, json!({"version": "v8.15.13"}));
    let (_, priorities) = raw.get("incident.attributes.priority").await;
    assert_eq!(priorities.as_array().expect("list").len(), 5);
    assert_eq!(priorities[0], json!({"id": 1, "name": "Low"}));
    let (_, types) = raw.get("incident.attributes.type").await;
    assert_eq!(types[5], json!({"id": 6, "name": "Major Incident"}));
    let (_, statuses) = raw.get("incident.attributes.status").await;
    assert_eq!(statuses.as_array().expect("list").len(), 8);
    let (_, sources) = raw.get("incident.attributes.source").await;
    assert!(
        sources
            .as_array()
            .expect("list")
            .iter()
            .any(|s| s["name"] == "API")
    );

    let (_, categories) = raw.get("categories?page=1&page_size=4").await;
    assert_eq!(categories.as_array().expect("list").len(), 4);
    assert!(categories[0].get("parent_category_id").is_some());
    let (_, rest) = raw.get("categories?page=2&page_size=4").await;
    assert_eq!(rest[1]["parent_category_id"], 1);
    assert_eq!(
        raw.get("categories?page_size=501").await.0,
        StatusCode::PRECONDITION_REQUIRED
    );

    assert_eq!(raw.get("no.such.endpoint").await.0, StatusCode::NOT_FOUND);
    assert_eq!(raw.get("user").await.0, StatusCode::METHOD_NOT_ALLOWED);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_seed_replaces_the_built_in_users() {
    let seed = Seed {
        users: vec![User {
            id: 7,
            name: "Zed".into(),
            lastname: String::new(),
            username: "zed".into(),
            email: "zed@corp.example".into(),
            user_type: 1,
            is_disabled: false,
            is_deleted: false,
        }],
        ..Seed::default()
    };
    let seed: Seed = serde_json::from_value(serde_json::to_value(seed).expect("to JSON"))
        .expect("seed files are JSON");
    let sim =
        RunningSimulator::start_with(Simulator::new(Credentials::default(), seed)).expect("starts");
    let gateway = client(&sim);

    let zed = gateway
        .find_user_id_by_email(&EmailAddress::parse("zed@corp.example").expect("email"))
        .await
        .expect("answers");
    let alice = gateway
        .find_user_id_by_email(&EmailAddress::parse("alice@example.com").expect("email"))
        .await
        .expect("answers");

    assert_eq!((zed, alice), (Some(InvGateUserId::new(7)), None));
}

#[tokio::test(flavor = "multi_thread")]
async fn injected_statuses_error_bodies_and_garbage_reach_the_client_then_normal_service_resumes() {
    let sim = start();
    let gateway = client(&sim);
    let the_ticket = ticket(draft(), vec![]);
    let create = || gateway.create_incident(alice(), &the_ticket);

    sim.sim.inject(
        Fault::on(
            "incident",
            FaultKind::Status {
                status: 500,
                retry_after: None,
                body: None,
            },
        )
        .times(2),
    );
    assert!(matches!(create().await, Err(GatewayError::Unavailable(_))));
    assert!(matches!(create().await, Err(GatewayError::Unavailable(_))));
    assert!(create().await.is_ok(), "the fault was for two calls only");

    sim.sim.inject(Fault::on(
        "incident",
        FaultKind::Status {
            status: 429,
            retry_after: Some(7),
            body: None,
        },
    ));
    assert!(
        matches!(create().await, Err(GatewayError::RateLimited { retry_after: Some(d) }) if d == Duration::from_secs(7))
    );

    sim.sim.inject(Fault::on(
        "incident",
        FaultKind::ErrorBody {
            message: Some("Error interno".into()),
        },
    ));
    assert!(
        matches!(create().await, Err(GatewayError::Rejected { message }) if message == "Error interno")
    );

    sim.sim.inject(Fault::on("incident", FaultKind::Garbage));
    assert!(matches!(create().await, Err(GatewayError::Unavailable(_))));

    sim.sim.inject(Fault::on("incident", FaultKind::Drop));
    assert!(matches!(create().await, Err(GatewayError::Unavailable(_))));

    assert_eq!(
        sim.sim.incident_count(),
        1,
        "only the unfaulted call created an incident"
    );
    let statuses: Vec<Option<u16>> = sim
        .sim
        .requests_to("POST", "incident")
        .iter()
        .map(|r| r.status)
        .collect();
    assert_eq!(
        statuses,
        [
            Some(500),
            Some(500),
            Some(200),
            Some(429),
            Some(200),
            Some(200),
            None
        ]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn faults_can_target_one_method_of_an_endpoint() {
    let sim = start();
    let id = create(&sim).await;
    sim.sim.inject(
        Fault::on(
            "incident",
            FaultKind::Status {
                status: 503,
                retry_after: None,
                body: None,
            },
        )
        .method("post"),
    );

    assert_eq!(
        Raw::new(&sim).get(&format!("incident?id={id}")).await.0,
        StatusCode::OK,
        "GET is not affected"
    );
    assert!(
        client(&sim)
            .create_incident(alice(), &ticket(draft(), vec![]))
            .await
            .is_err()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_hang_times_the_client_out_and_a_delay_only_slows_it_down() {
    let sim = start();
    sim.sim.inject(Fault::on("incident", FaultKind::Hang));
    let quick = client_with(
        &sim,
        &sim.sim.credentials().password.clone(),
        Duration::from_millis(300),
    );
    assert!(matches!(
        quick
            .create_incident(alice(), &ticket(draft(), vec![]))
            .await,
        Err(GatewayError::Timeout)
    ));
    assert_eq!(sim.sim.incident_count(), 0);

    sim.sim
        .inject(Fault::on("incident", FaultKind::Delay { ms: 400 }));
    let started = Instant::now();
    assert!(
        client(&sim)
            .create_incident(alice(), &ticket(draft(), vec![]))
            .await
            .is_ok()
    );
    assert!(started.elapsed() >= Duration::from_millis(400));
}

#[tokio::test(flavor = "multi_thread")]
async fn answering_late_creates_the_incident_although_the_caller_timed_out() {
    let sim = start();
    sim.sim
        .inject(Fault::on("incident", FaultKind::AnswerLate { ms: 1500 }));
    let quick = client_with(
        &sim,
        &sim.sim.credentials().password.clone(),
        Duration::from_millis(300),
    );

    let err = quick
        .create_incident(alice(), &ticket(draft(), vec![]))
        .await
        .expect_err("times out");

    assert!(matches!(err, GatewayError::Timeout), "{err:?}");
    assert_eq!(
        sim.sim.incident_count(),
        1,
        "the ticket exists in InvGate all the same"
    );
    assert_eq!(sim.sim.incidents()[0]["title"], "Printer jam");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_control_api_injects_faults_and_lists_and_clears_received_requests() {
    let sim = start();
    ticketd_invgate::install_crypto_provider();
    let http = reqwest::Client::new();
    let control = format!("{}/_sim", sim.uri());

    let injected = http
        .post(format!("{control}/faults"))
        .json(&json!({"endpoint": "user.by", "kind": "status", "status": 502, "times": 1}))
        .send()
        .await
        .expect("answers");
    assert_eq!(injected.status(), StatusCode::NO_CONTENT);
    let email = EmailAddress::parse("alice@example.com").expect("email");
    assert!(client(&sim).find_user_id_by_email(&email).await.is_err());
    assert!(client(&sim).find_user_id_by_email(&email).await.is_ok());

    let listed: Value = http
        .get(format!("{control}/requests"))
        .send()
        .await
        .expect("answers")
        .json()
        .await
        .expect("JSON");
    assert_eq!(listed.as_array().expect("list").len(), 2);
    assert_eq!(listed[0]["endpoint"], "user.by");
    assert_eq!(listed[0]["fields"], json!([["email", "alice@example.com"]]));
    assert_eq!(listed[0]["status"], 502);

    http.delete(format!("{control}/requests"))
        .send()
        .await
        .expect("answers");
    http.put(format!("{control}/recording"))
        .json(&json!({"enabled": false}))
        .send()
        .await
        .expect("answers");
    assert!(client(&sim).find_user_id_by_email(&email).await.is_ok());
    let listed: Value = http
        .get(format!("{control}/requests"))
        .send()
        .await
        .expect("answers")
        .json()
        .await
        .expect("JSON");
    assert_eq!(listed, json!([]), "recording was off");
}
